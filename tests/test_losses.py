"""Losses (§3.1, §3.2): eq. (3) by hand, the four pairs of eq. (7), eq. (8), eq. (9)."""
import math

import pytest
import torch

from pnlib.losses import (
    LAMBDA,
    adversarial_loss,
    bce,
    discriminator_accuracy,
    discriminator_loss,
    discriminator_terms,
    e_loss,
    generator_loss,
    gradient_loss,
)
from pnlib.model import Discriminator


def test_e_loss_by_hand():
    # Îab_t = [[0.5, -0.5]] (a) and [[0.0, 1.0]] (b); Iab_t = [[0.0, 0.0]] and [[0.0, 0.5]].
    # squared errors: 0.25, 0.25, 0, 0.25 -> the paper's sum over pixels and ab: 0.75 (batch of one)
    pred = torch.tensor([[[[0.5, -0.5]], [[0.0, 1.0]]]])
    target = torch.tensor([[[[0.0, 0.0]], [[0.0, 0.5]]]])
    assert pred.shape == (1, 2, 1, 2)
    assert e_loss(pred, target).item() == pytest.approx(0.75)
    # a batch of two: the mean over images of the per-image sums (0.75 and 0 for a perfect prediction)
    assert e_loss(torch.cat([pred, target]), torch.cat([target, target])).item() == pytest.approx(0.375)


class PairD:
    """A stub D: records each call and returns the logit set for that (image, palette) pair.

    Pairs are recognised by storage (data_ptr), which detach() keeps, so Î_t is found after detaching.
    """

    def __init__(self, logits):
        self.logits, self.calls = logits, []  # logits: {(image, palette): float}

    def __call__(self, I, P):
        self.calls.append((I, P))
        for (img, pal), v in self.logits.items():
            if img.data_ptr() == I.data_ptr() and pal.data_ptr() == P.data_ptr():
                return torch.full((I.shape[0], 1, 2, 3), v)
        raise AssertionError("D called with an unexpected pair")


def tensors():
    I_hat = torch.rand(2, 3, 32, 48, requires_grad=True)
    return I_hat, torch.rand(2, 6, 3), torch.rand(2, 3, 32, 48), torch.rand(2, 6, 3)


def softplus(x):
    return math.log1p(math.exp(x))


def test_gradient_loss_charges_speckle_not_offsets():
    """Ours: the E-loss of the ab gradients; zero for an equal or uniformly offset output, large for speckle."""
    t = torch.rand(2, 2, 8, 12)
    assert gradient_loss(t, t) == 0
    assert gradient_loss(t + 0.1, t) < 1e-10                     # a uniform offset has the target's gradients
    d = torch.zeros(2, 2, 8, 12)
    d[..., 3, 5] = 0.5                                           # one flipped pixel: four edges of 0.5
    torch.testing.assert_close(gradient_loss(t + d, t), torch.tensor(2 * 4 * 0.25))
    torch.testing.assert_close(e_loss(t + d, t), torch.tensor(2 * 0.25))


def test_discriminator_loss_is_the_four_pairs_of_eq7():
    I_hat, P_t, I_o, P_o = tensors()
    logits = {(I_hat, P_t): 0.3, (I_o, P_t): -1.2, (I_hat, P_o): 0.7, (I_o, P_o): 2.0}
    D = PairD(logits)
    loss = discriminator_loss(D, I_hat, P_t, I_o, P_o)
    called = {(i.data_ptr(), p.data_ptr()) for i, p in D.calls}
    assert len(D.calls) == 4 and called == {(i.data_ptr(), p.data_ptr()) for i, p in logits}
    assert all(not i.requires_grad for i, _ in D.calls)  # Î_t detached: D's step leaves G alone
    # −log D_fake(x) = −log(1 − σ(x)) = softplus(x); −log D_real(x) = −log σ(x) = softplus(−x)
    by_hand = softplus(0.3) + softplus(-1.2) + softplus(0.7) + softplus(-2.0)
    assert loss.item() == pytest.approx(by_hand, rel=1e-6)
    # each pair counts: moving any one of its logits changes L_D
    for pair in logits:
        D.logits = {**logits, pair: logits[pair] + 1.0}
        assert discriminator_loss(D, I_hat, P_t, I_o, P_o).item() != pytest.approx(by_hand)


def test_without_anticheat_only_eq5():
    I_hat, P_t, I_o, P_o = tensors()
    D = PairD({(I_hat, P_t): 0.3, (I_o, P_o): 2.0})  # any other pair raises
    loss = discriminator_loss(D, I_hat, P_t, I_o, P_o, anticheat=False)
    assert len(D.calls) == 2
    assert loss.item() == pytest.approx(softplus(0.3) + softplus(-2.0), rel=1e-6)


def test_discriminator_accuracy():
    I_hat, P_t, I_o, P_o = tensors()
    D = PairD({(I_hat, P_t): -1.0, (I_o, P_t): 1.0, (I_hat, P_o): -1.0, (I_o, P_o): 1.0})
    acc = discriminator_accuracy(discriminator_terms(D, I_hat, P_t, I_o, P_o))
    assert acc == {"Ihat_Pt": 1.0, "Io_Pt": 0.0, "Ihat_Po": 1.0, "Io_Po": 1.0}


def test_adversarial_loss_by_hand():
    I_hat, P_t, _, _ = tensors()
    D = PairD({(I_hat, P_t): 0.0})
    assert adversarial_loss(D, I_hat, P_t).item() == pytest.approx(math.log(2))  # −log σ(0)
    x = torch.tensor([-2.0, 0.5, 3.0])
    assert bce(x, 1.0).item() == pytest.approx(-torch.log(torch.sigmoid(x)).mean().item())


def test_adversarial_loss_reaches_generator_output():
    D = Discriminator(4)
    I_hat, P_t, _, _ = tensors()
    adversarial_loss(D, I_hat, P_t).backward()
    assert I_hat.grad is not None and I_hat.grad.abs().sum() > 0


def test_bce_float32_under_bf16():
    assert bce(torch.tensor([0.5], dtype=torch.bfloat16), 0.0).dtype == torch.float32


def test_generator_loss():
    assert LAMBDA == 10.0
    assert generator_loss(torch.tensor(0.3), torch.tensor(2.0)).item() == pytest.approx(5.0)
