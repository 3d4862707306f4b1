"""Experiments on the training of the paper's model: the anti-cheat discriminator experiment (§3.2,
eq. 5-6), the phase-2 ablation (ours), and the best paper's model at hand for a preset.

Above :mod:`pnlib.train` in the layering: it runs training's steps, never the other way round.
"""
from __future__ import annotations

import json

import torch

from . import losses as Ls
from .checkpoint import read_checkpoint
from .config import default_out, get_config
from .data import PairSampler
from .model import Discriminator, PaletteNet
from .train import Run, _adam, freeze_encoder, load_or_train, phase2_step, validate


def anticheat_experiment(G: PaletteNet, sampler: PairSampler, steps: int = 150, d_width: int = 16,
                         anticheat: bool = True, eval_every: int = 10, seed: int = 0, lr: float = 2e-4) -> list:
    """Train a fresh D for ``steps`` on a frozen G, with or without the anti-cheat terms of eq. (6).

    Every ``eval_every`` steps, on a fresh batch, records how often D calls each pair "real" (share of
    patches with logit > 0): the real pair (I_o, P_o), the generated (Î_t, P_t), the anti-cheat pairs
    (I_o, P_t) and (Î_t, P_o), and the cheat test ``real_Io_Pother``: a real photo with the untouched
    palette of *another* real photo. Both are genuine; only their pairing is wrong. A D that memorised
    the real photos and palettes instead of checking that they belong together calls it real.
    """
    torch.manual_seed(seed)
    device = next(G.parameters()).device
    D = Discriminator(d_width).to(device)
    opt = torch.optim.Adam(D.parameters(), lr=lr, betas=(0.5, 0.999))
    G.eval()
    rows = []
    for step in range(steps + 1):
        b = sampler.sample()
        with torch.no_grad():
            I_hat = G.recolor_lab(b["I_s"], b["P_t"], b.get("P_s"))
        if step % eval_every == 0:
            with torch.no_grad():
                terms = Ls.discriminator_terms(D, I_hat, b["P_t"], b["I_o"], b["P_o"], anticheat=True)
                other = b["o"].roll(1) != b["o"]  # rows whose rolled palette is another photo's
                cheat = D(b["I_o"], b["P_o"].roll(1, 0))[other]
            rows.append({"step": step, **{f"real_{k}": float((v > 0).float().mean()) for k, v in terms.items()},
                         "real_Io_Pother": float((cheat > 0).float().mean()) if other.any() else float("nan")})
        if step == steps:
            break
        loss = Ls.discriminator_loss(D, I_hat, b["P_t"], b["I_o"], b["P_o"], anticheat=anticheat)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return rows


def phase2_variants(size) -> dict:
    """The phase-2 ablation's variants, name -> (λ, weight of L_Adv), for images of ``size = (H, W)``.

    The paper's L_G = λ L_E + L_Adv (eq. 9) with L_E summed over the 2·H·W ab values (eq. 3); the same
    steps with L_Adv = 0; and the adversarial term given real weight: λ = 10 / (2HW), which is λ = 10
    on a per-pixel *mean* L_E (ours: the paper writes the sum).
    """
    H, W = size
    return {"paper's phase 2 (λ = 10, L_E summed)": (10.0, 1.0),
            "E-loss only (L_Adv = 0)": (10.0, 0.0),
            "L_Adv weighted (λ = 10 on a per-pixel L_E)": (10.0 / (2 * H * W), 1.0)}


def phase2_ablation(G1: PaletteNet, cfg: dict, sampler: PairSampler, val: dict, steps: int,
                    variants: dict | None = None, eval_every: int | None = None, seed: int = 0) -> dict:
    """Phase 2 (§3.2) from the same phase-1 G, once per variant, on the same batches: does L_Adv matter?

    Each variant gets a copy of ``G1`` (FE frozen), a fresh D (``cfg``'s ``d_width``), fresh Adam
    optimisers (``cfg``'s lr and β), the sampler rewound to the same state, and ``steps`` phase-2 steps
    (:func:`phase2_step`). Every ``eval_every`` steps it records the held-out ΔE00 on ``val``
    (:func:`validate`) and D's accuracy per pair of eq. (7). Returns name -> {lam, adv_weight, history,
    G}. ``variants``: name -> (λ, weight of L_Adv), default :func:`phase2_variants`.
    """
    import copy

    device = next(G1.parameters()).device
    variants = variants or phase2_variants(tuple(cfg["size"]))
    eval_every = eval_every or max(1, steps // 6)
    start = sampler.state_dict()
    results = {}
    for name, (lam, w) in variants.items():
        torch.manual_seed(seed)
        sampler.load_state_dict(start)
        G, D = copy.deepcopy(G1).to(device), Discriminator.from_config(cfg).to(device)
        freeze_encoder(G)
        run = Run({**cfg, "lam": lam}, None, device, G, D, None, _adam(G.decoder.parameters(), cfg, device),
                  _adam(D.parameters(), cfg, device), sampler, val)
        rows = [{"step": 0, "val_de00": validate(G, val)}]
        for step in range(1, steps + 1):
            out = phase2_step(run, sampler.sample(), with_accuracy=step % eval_every == 0, adv_weight=w)
            if step % eval_every == 0 or step == steps:
                rows.append({"step": step, "val_de00": validate(G, val),
                             **{k: float(v) for k, v in out.items()}})
        results[name] = {"lam": lam, "adv_weight": w, "history": rows, "G": G.eval()}
    sampler.load_state_dict(start)
    return results


def paper_model(preset: str = "quick", device=None):
    """The best model of the paper's (``head="direct"``) at hand for ``preset``; returns ``(G, note)``.

    The shipped paper's checkpoint (``pnlib.load_model("paper")``, trained on a CPU) when it
    exists and the preset trains at no larger a size than it was trained at (``ci``, ``quick``);
    otherwise the preset's own run of notebooks 03-04 (``runs/<preset>-direct/``, loaded, or trained
    when missing). ``note`` says which, for the notebooks to print.
    """
    return _best_model("paper", preset, "direct", device)


def our_model(preset: str = "quick", device=None):
    """Our model (``head="palette"``, not in the paper) at hand for ``preset``; returns ``(G, note)``.

    As :func:`paper_model`: the shipped ``palettenet.pt`` at ``ci`` and ``quick``, else the preset's
    own run (``runs/<preset>/``, loaded, or trained when missing).
    """
    return _best_model("ours", preset, "palette", device)


def _best_model(name: str, preset: str, head: str, device):
    from .config import SHIPPED_MODELS
    from .inference import load_model
    from .protocols import LABELS

    label = LABELS[name]
    cfg = get_config(preset, head=head)
    device = device or cfg["device"]
    path = SHIPPED_MODELS[name]
    if path.is_file():
        state = read_checkpoint(path)
        if list(cfg["size"])[0] <= list(state["config"]["size"])[0]:
            info = path.with_suffix(".json")
            n = ""
            if info.is_file():
                n = ", photos: " + " + ".join(d["name"] for d in json.loads(info.read_text()).get("data_sources", []))
            return load_model(path, device), (f"{label}: the shipped checkpoint {path.name} "
                                              f"(width {state['config']['width']}, step {state['step']}{n})")
    G, history = load_or_train(preset, head=head, progress=False)
    run = default_out(preset, head)
    return G, f"{label}: this preset's run {run} (step {history[-1]['step']})"
