"""Losses of PaletteNet: E-loss (§3.1) and the adversarial losses of G and D (§3.2).

    L_E   = Σ_H Σ_W (Îab_t − Iab_t)²                                                (3)
    L_D   = −E[log D_fake(Î_t, P_t)] − E[log D_fake(I_o, P_t)]
            −E[log D_fake(Î_t, P_o)] − E[log D_real(I_o, P_o)]                      (7)
    L_Adv = −E[log D_real(Î_t, P_t)]                                                (8)
    L_G   = λ L_E + L_Adv,   λ = 10                                                 (9)

D outputs logits; D_real = sigmoid(logit) ("the pair is related"), D_fake = 1 − D_real, so the two sum
to 1 (§3.2). −log D_real(x) is BCE with target 1 and −log D_fake(x) BCE with target 0; E averages over
the batch and D's H/16 × W/16 patch map. BCE is computed from logits in float32: stable where log(sigmoid(·))
would underflow to log 0, and safe under bf16 autocast.

Eq. (5) alone (D_real(I_o, P_o), D_fake(Î_t, P_t)) lets D "cheat": it memorises the few originals
(I_o, P_o) ∈ D_orig instead of judging whether image and palette match. The two extra fake pairs of
eq. (6), an original with the wrong palette (I_o, P_t) and the output with the original's palette
(Î_t, P_o), force D to look at the pairing (§3.2).
"""
import torch.nn.functional as F

from .config import COMMON

LAMBDA = COMMON["lam"]  # λ of eq. (9), §3.2: a shared setting of pnlib.config

# The pairs of eq. (7): name -> (image, palette, target); target 1 = real (related), 0 = fake.
PAIRS = {"Ihat_Pt": ("I_hat", "P_t", 0.0),  # eq. (5): the generator's output with its palette
         "Io_Pt": ("I_o", "P_t", 0.0),      # eq. (6): original image, wrong palette
         "Ihat_Po": ("I_hat", "P_o", 0.0),  # eq. (6): output, the original's palette
         "Io_Po": ("I_o", "P_o", 1.0)}      # eq. (5): a genuine pair from D_orig
NO_ANTICHEAT = ("Ihat_Pt", "Io_Po")         # eq. (5) only


def bce(logits, target):
    """Mean BCE of logits against a constant target (1 real, 0 fake), in float32."""
    logits = logits.float()
    return F.binary_cross_entropy_with_logits(logits, logits.new_full(logits.shape, target))


def e_loss(ab_pred, ab_target):
    """E-loss, eq. (3): L_E = Σ_H Σ_W (Îab_t − Iab_t)², summed over pixels and the 2 ab channels of
    normalised ab (§4.2), as the paper writes it, then averaged over the batch.

    The sum matters in phase 2: L_G = λ L_E + L_Adv (eq. 9) weighs a per-image *sum* against L_Adv, a
    mean over D's patches, so L_E dominates and the adversarial term only nudges RD. With a per-pixel
    mean instead, L_Adv is 2·H·W times stronger: at 64×96 phase 2 then drives the held-out ΔE00 from
    11 to 20 within a few hundred steps (measured). Adam is invariant to the loss scale, so phase 1
    is unaffected by the choice. Scale: a per-pixel mean equals L_E / (2·H·W).
    """
    diff = ab_pred.float() - ab_target.float()
    return diff.square().sum(dim=(-3, -2, -1)).mean()


def gradient_loss(ab_pred, ab_target):
    """Ours, not in the paper: the E-loss of the ab *gradients*, Σ_H Σ_W |∇Îab_t − ∇Iab_t|² (forward
    differences along H and W, normalised ab), averaged over the batch; on the scale of :func:`e_loss`.

    The E-loss charges a pixel's colour once; an output that flips between two palette colours from one
    pixel to the next (speckle, bands: the stray edges of :func:`pnlib.metrics.stray_edges`) where the
    target is smooth is charged once more per edge it makes. Weighted by the ``grad_loss`` setting.
    """
    d = ab_pred.float() - ab_target.float()
    dx, dy = d[..., :, 1:] - d[..., :, :-1], d[..., 1:, :] - d[..., :-1, :]
    return dx.square().sum(dim=(-3, -2, -1)).mean() + dy.square().sum(dim=(-3, -2, -1)).mean()


def discriminator_terms(D, I_hat, P_t, I_o, P_o, anticheat=True):
    """D's logit maps for the pairs of eq. (7) (or eq. (5) only), keyed as in PAIRS.

    I_hat = Î_t = [I^L_s, Îab_t] is detached: D's step must not push gradients into G.
    """
    inputs = {"I_hat": I_hat.detach(), "P_t": P_t, "I_o": I_o, "P_o": P_o}
    names = PAIRS if anticheat else NO_ANTICHEAT
    return {name: D(inputs[PAIRS[name][0]], inputs[PAIRS[name][1]]) for name in names}


def discriminator_loss(D, I_hat, P_t, I_o, P_o, anticheat=True):
    """L_D, eq. (7): sum of the four mean BCE terms; anticheat=False keeps eq. (5)'s two."""
    return terms_loss(discriminator_terms(D, I_hat, P_t, I_o, P_o, anticheat))


def terms_loss(terms):
    """L_D from the logit maps of discriminator_terms: each pair's mean BCE against its label, summed."""
    return sum(bce(logits, PAIRS[name][2]) for name, logits in terms.items())


def discriminator_accuracy(terms):
    """Fraction of D's patches right for each pair of discriminator_terms (logit > 0 means real)."""
    return {name: ((logits > 0).float() == PAIRS[name][2]).float().mean().item()
            for name, logits in terms.items()}


def adversarial_loss(D, I_hat, P_t):
    """L_Adv, eq. (8): −E[log D_real(Î_t, P_t)], the non-saturating generator loss of GAN [4].

    Gradients reach G through I_hat; step only G's optimizer with it (phase 2 trains RD, §3.2).
    """
    return bce(D(I_hat, P_t), 1.0)


def generator_loss(l_e, l_adv, lam=LAMBDA):
    """L_G, eq. (9): λ L_E + L_Adv."""
    return lam * l_e + l_adv
