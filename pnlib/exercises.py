"""Fill-in exercises: the learner writes a core piece of PaletteNet, and :func:`check` compares it at once
with pnlib's own on the same inputs and weights (§2, §3, eq. 1-3, eq. 5-10).

In a notebook an exercise is a code cell that defines one function or class; the part the learner
writes sits between nbgrader's markers, ``### BEGIN SOLUTION`` and ``### END SOLUTION``. The committed
notebooks hold the *stub* there (``raise NotImplementedError``), so they run end to end unsolved: the
check cell after the exercise says "not yet written" and hands back pnlib's version, which the notebook
uses from there on. The solutions live here, once (:data:`SOLUTIONS`); :func:`solve_notebook` writes
them between the markers (the instructor's solved notebooks, ``python -m pnlib exercises``), and
:func:`release_notebook` puts the stubs back. ``tests/test_exercises.py`` runs every solution through
its check, and the solved notebooks under nbval, so a solution can never drift from pnlib.

Each check runs the learner's code and pnlib's on the same seeded inputs (the same weights where there
are weights) and compares outputs, and gradients where the piece is trained, with
``torch.testing.assert_close``; it prints one line, saying what is wrong when something is.
"""
from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from types import SimpleNamespace

import torch

from . import losses as Ls
from .color import hue_shift
from .model import Discriminator, RecoloringDecoder, ResidualDown, tile_palette
from .train import phase2_step

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
#: nbgrader's own code stub (its ``ClearSolutions`` default), so that nbgrader, given the solved notebooks,
#: writes exactly the cells committed here.
STUB = "# YOUR CODE HERE\nraise NotImplementedError()"
#: The cell metadata nbgrader reads (a solution cell, not graded); plain Jupyter ignores it.
NBGRADER = {"grade": False, "locked": False, "schema_version": 3, "solution": True, "task": False}

#: The code between the markers, per exercise (the name the cell defines), indented as in its cell.
SOLUTIONS = {
    "hue_shift_eq10": """\
    L = rgb_to_lab(rgb)[:1]                                              # RGB -> LAB and cache L
    h, s, v = rgb_to_hsv(rgb)                                            # RGB -> HSV
    shifted = hsv_to_rgb(torch.stack([(h + degrees / 360) % 1, s, v]))   # -hue-shift-> H*SV
    return torch.cat([L, rgb_to_lab(shifted)[1:]])                       # -> L*A*B*; final: L A*B*""",
    "tile_palette": """\
    h, w = like.shape[-2:]
    return P.reshape(P.shape[0], -1, 1, 1).expand(-1, -1, h, w)""",
    "ResidualDown": """\
        self.body = nn.Sequential(ConvNormAct(cin, cout, 3, stride=2, padding=1),
                                  ConvNormAct(cout, cout, 3, padding=1))
        self.skip = ConvNormAct(cin, cout, 1, stride=2)""",
    "rd_forward": """\
    c1, c2, c3, c4 = c
    d1 = rd.up1(torch.cat([tile_palette(P_t, c1), c1], 1))
    d2 = rd.up2(torch.cat([c2, d1], 1))
    d3 = rd.up3(torch.cat([tile_palette(P_t, c3), c3, d2], 1))
    d4 = rd.up4(torch.cat([tile_palette(P_t, c4), c4, d3], 1))
    return torch.tanh(rd.to_ab(torch.cat([I_s[:, :1], d4], 1)))""",
    "e_loss": """\
    return (ab_pred - ab_target).square().sum(dim=(1, 2, 3)).mean()""",
    "discriminator_loss": """\
    I_hat = I_hat.detach()                       # D's step must not reach G
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    loss = 0.0
    for I, P, label in ((I_hat, P_t, 0.0), (I_o, P_t, 0.0), (I_hat, P_o, 0.0), (I_o, P_o, 1.0)):
        logits = D(I, P)
        loss = loss + bce(logits, torch.full_like(logits, label))
    return loss""",
    "phase2_step": """\
    with torch.no_grad():
        c = G.encoder(b["I_s"])                  # FE is frozen in phase 2
    ab = G.decoder(c, b["P_t"], b["I_s"])
    I_hat = torch.cat([b["I_s"][:, :1], ab], 1)  # Î_t = [I^L_s, Îab_t]
    loss_d = discriminator_loss(D, I_hat, b["P_t"], b["I_o"], b["P_o"])
    opt_d.zero_grad()
    loss_d.backward()
    opt_d.step()
    logits = D(I_hat, b["P_t"])
    loss_adv = torch.nn.functional.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
    loss_g = lam * losses.e_loss(ab, b["I_t"][:, 1:]) + loss_adv
    opt_rd.zero_grad()
    D.requires_grad_(False)                      # G's step leaves no gradient on D
    loss_g.backward()
    D.requires_grad_(True)
    opt_rd.step()
    return {"loss_d": loss_d.item(), "loss_g": loss_g.item()}""",
    "train_phase1": """\
    opt = torch.optim.Adam(G.parameters(), lr=lr, betas=(0.5, 0.999))
    losses = []
    for _ in range(steps):
        b = sampler.sample()
        loss = e_loss(G(b["I_s"], b["P_t"]), b["I_t"][:, 1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses""",
}


# ---------------------------------------------------------------------------------------------- checks
def _inputs(seed: int = 0, n: int = 2, h: int = 32, w: int = 48, width: int = 8) -> dict:
    """Seeded normalised-LAB tensors of the shapes the networks take."""
    g = torch.Generator().manual_seed(seed)

    def r(*shape):
        return torch.rand(*shape, generator=g) * 2 - 1
    return {"I_s": r(n, 3, h, w), "I_t": r(n, 3, h, w), "I_o": r(n, 3, h, w), "P_t": r(n, 6, 3),
            "P_o": r(n, 6, 3), "width": width}


def _close(name: str, what: str, got, want, atol: float = 1e-5) -> str | None:
    """None when ``got`` matches ``want``; else one line naming what differs."""
    if not isinstance(got, torch.Tensor):
        return f"{what} is a {type(got).__name__}, expected a tensor"
    if tuple(got.shape) != tuple(want.shape):
        return f"{what} has shape {tuple(got.shape)}, expected {tuple(want.shape)}"
    try:
        torch.testing.assert_close(got.float(), want.float(), rtol=1e-4, atol=atol)
    except AssertionError:
        err = (got.detach().float() - want.detach().float()).abs()
        return f"{what}: up to {float(err.max()):.3g} away from pnlib's (mean {float(err.mean()):.3g})"
    return None


def _check_hue(fn) -> str | None:
    rgb = (_inputs()["I_s"][0] + 1) / 2                     # a (3, 32, 48) image in [0, 1]
    for degrees in (20.0, 180.0, 300.0):
        got = fn(rgb, degrees)
        bad = _close("hue_shift_eq10", f"the LAB image at +{degrees:.0f}°", got, hue_shift(rgb, degrees), atol=1e-3)
        if bad:
            return bad + " (eq. 10: L from the source, a and b from the HSV-shifted RGB)"
    return None


def _check_tile(fn) -> str | None:
    x = _inputs()
    like = torch.zeros(2, 5, 4, 6)
    return _close("tile_palette", "tile_palette(P, like)", fn(x["P_t"], like), tile_palette(x["P_t"], like))


def _check_residual(cls) -> str | None:
    torch.manual_seed(0)
    ref = ResidualDown(8, 16)
    mine = cls(8, 16)
    try:
        mine.load_state_dict(ref.state_dict())
    except RuntimeError as e:
        first = str(e).split("\n")[1].strip() if "\n" in str(e) else str(e)
        return f"its layers are not pnlib's (same names and shapes needed): {first[:160]}"
    x = _inputs()["I_s"].repeat(1, 3, 1, 1)[:, :8].requires_grad_(True)
    x2 = x.detach().clone().requires_grad_(True)
    out, want = mine(x), ref(x2)
    bad = _close("ResidualDown", "the output", out, want)
    if bad:
        return bad
    out.square().sum().backward()
    want.square().sum().backward()
    return _close("ResidualDown", "the gradient on its input", x.grad, x2.grad)


def _check_rd(fn) -> str | None:
    from .model import FeatureEncoder

    x = _inputs()
    torch.manual_seed(0)
    fe, rd = FeatureEncoder(8), RecoloringDecoder(8, "direct")
    c = fe(x["I_s"])
    return _close("rd_forward", "rd_forward(rd, c, P_t, I_s)", fn(rd, c, x["P_t"], x["I_s"]),
                  rd(c, x["P_t"], x["I_s"]))


def _check_e_loss(fn) -> str | None:
    x = _inputs()
    pred = x["I_s"][:, 1:].clone().requires_grad_(True)
    pred2 = pred.detach().clone().requires_grad_(True)
    got, want = fn(pred, x["I_t"][:, 1:]), Ls.e_loss(pred2, x["I_t"][:, 1:])
    bad = _close("e_loss", "the loss", torch.as_tensor(got).reshape(()), want)
    if bad:
        return bad + " (eq. 3 sums over pixels and both ab channels, then averages over the batch)"
    got.backward()
    want.backward()
    return _close("e_loss", "the gradient", pred.grad, pred2.grad)


def _check_d_loss(fn) -> str | None:
    x = _inputs()
    torch.manual_seed(0)
    D = Discriminator(8)
    D2 = copy.deepcopy(D)
    I_hat = x["I_s"].clone().requires_grad_(True)
    got = fn(D, I_hat, x["P_t"], x["I_o"], x["P_o"])
    want = Ls.discriminator_loss(D2, I_hat.detach(), x["P_t"], x["I_o"], x["P_o"])
    bad = _close("discriminator_loss", "L_D", torch.as_tensor(got).reshape(()), want)
    if bad:
        return bad + " (eq. 7: four pairs, each a mean BCE, summed)"
    got.backward()
    want.backward()
    if I_hat.grad is not None and I_hat.grad.abs().sum() > 0:
        return "a gradient reached Î_t: detach it, D's step must not train G"
    for (name, p), p2 in zip(D.named_parameters(), D2.parameters(), strict=True):
        bad = _close("discriminator_loss", f"the gradient on D.{name}", p.grad, p2.grad)
        if bad:
            return bad
    return None


def _phase2_setup(seed: int = 0):
    from .model import PaletteNet
    from .train import _adam, freeze_encoder

    x = _inputs(seed)
    torch.manual_seed(seed)
    G, D = PaletteNet(8, "direct"), Discriminator(8)
    freeze_encoder(G)
    cfg = {"lr": 1e-3, "betas": (0.5, 0.999), "lam": Ls.LAMBDA}
    dev = torch.device("cpu")
    run = SimpleNamespace(G=G, D=D, dec=G.decoder, disc=D, cfg=cfg, device=dev,
                          opt_rd=_adam(G.decoder.parameters(), cfg, dev), opt_d=_adam(D.parameters(), cfg, dev))
    b = {k: x[k] for k in ("I_s", "I_t", "I_o", "P_t", "P_o")}
    return run, b


def _check_phase2(fn) -> str | None:
    mine, b = _phase2_setup()
    ref, _ = _phase2_setup()
    fn(mine.G, mine.D, mine.opt_rd, mine.opt_d, b, Ls.LAMBDA)
    phase2_step(ref, b)
    parts = (("D", mine.D, ref.D), ("RD", mine.G.decoder, ref.G.decoder), ("FE", mine.G.encoder, ref.G.encoder))
    for part, a, r in parts:
        for (name, p), p2 in zip(a.named_parameters(), r.parameters(), strict=True):
            bad = _close("phase2_step", f"{part}.{name} after the step", p.detach(), p2.detach())
            if bad:
                hint = " (FE must stay frozen)" if part == "FE" else ""
                return bad + hint
    return None


class _Batches:
    """A stand-in sampler: seeded random batches, the same sequence for every instance with one seed."""

    def __init__(self, seed: int = 0):
        self.seed = seed

    def sample(self) -> dict:
        self.seed += 1
        return {k: v for k, v in _inputs(self.seed).items() if k != "width"}


def _check_train(fn, steps: int = 3) -> str | None:
    from .model import PaletteNet

    torch.manual_seed(0)
    G = PaletteNet(8, "direct")
    G2 = copy.deepcopy(G)
    got = fn(G, _Batches(), steps, 1e-3)
    want = _reference_train_phase1(G2, _Batches(), steps, 1e-3)
    if not isinstance(got, (list, tuple)) or len(got) != steps:
        return f"it should return the {steps} losses as a list, got {type(got).__name__}"
    bad = _close("train_phase1", "the losses", torch.tensor([float(v) for v in got]), torch.tensor(want))
    if bad:
        return bad + " (one Adam step, betas (0.5, 0.999), on eq. (3) per batch)"
    for (name, p), p2 in zip(G.named_parameters(), G2.parameters(), strict=True):
        bad = _close("train_phase1", f"{name} after training", p.detach(), p2.detach())
        if bad:
            return bad
    return None


def _reference_train_phase1(G, sampler, steps, lr):
    from .train import phase1_step

    run = SimpleNamespace(enc=G.encoder, dec=G.decoder, device=torch.device("cpu"), cfg={},   # the paper's loss only
                          opt_g=torch.optim.Adam(G.parameters(), lr=lr, betas=(0.5, 0.999)))
    return [float(phase1_step(run, sampler.sample())["loss_e"]) for _ in range(steps)]


#: Per exercise: the reference the notebook falls back to, and the comparison.
CHECKS = {
    "hue_shift_eq10": (lambda: hue_shift, _check_hue),
    "tile_palette": (lambda: tile_palette, _check_tile),
    "ResidualDown": (lambda: ResidualDown, _check_residual),
    "rd_forward": (lambda: _reference_rd_forward, _check_rd),
    "e_loss": (lambda: Ls.e_loss, _check_e_loss),
    "discriminator_loss": (lambda: Ls.discriminator_loss, _check_d_loss),
    "phase2_step": (lambda: _reference_phase2_step, _check_phase2),
    "train_phase1": (lambda: _reference_train_phase1, _check_train),
}


def _reference_rd_forward(rd, c, P_t, I_s):
    return rd(c, P_t, I_s)


def _reference_phase2_step(G, D, opt_rd, opt_d, b, lam):
    run = SimpleNamespace(G=G, D=D, dec=G.decoder, disc=D, cfg={"lam": lam}, device=torch.device("cpu"),
                          opt_rd=opt_rd, opt_d=opt_d)
    return {k: float(v) for k, v in phase2_step(run, b).items()}


def check(name: str, mine, quiet: bool = False):
    """Compare the learner's ``mine`` with pnlib's version of exercise ``name``; print one line.

    Returns what the notebook should use from here: ``mine`` when it matches, else pnlib's version (so a
    notebook with an unsolved or wrong exercise still runs to the end).
    """
    reference, compare = CHECKS[name]
    try:
        problem = compare(mine)
    except NotImplementedError:
        problem = "not yet written"
    except Exception as e:  # the learner's code failed: say where, in one line
        problem = f"raised {type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}"
    if problem is None:
        if not quiet:
            print(f"✓ {name}: matches pnlib's on the same inputs and weights")
        return mine
    if not quiet:
        print(f"✗ {name}: {problem}; pnlib's version is used from here" if problem != "not yet written"
              else f"… {name}: not yet written: pnlib's version is used from here")
    return reference()


# ------------------------------------------------------------------------------- solve and release
_REGION = re.compile(rf"^([ \t]*){re.escape(BEGIN)}[^\n]*\n(.*?)^[ \t]*{re.escape(END)}", re.M | re.S)
_NAME = re.compile(r"^(?:def|class)\s+(\w+)", re.M)


def exercise_name(source: str) -> str | None:
    """The exercise a code cell holds: the first function or class it defines, when it has markers."""
    if BEGIN not in source:
        return None
    m = _NAME.search(source)
    return m.group(1) if m else None


def _fill(source: str, body) -> str:
    name = exercise_name(source)
    if name is None:
        return source

    def sub(m):
        indent = m.group(1)
        text = body(name, indent)
        return f"{indent}{BEGIN}\n{text}\n{indent}{END}"
    return _REGION.sub(sub, source, count=1)


def solve_source(source: str) -> str:
    """A cell's code with the solution between its markers."""
    def body(name, indent):
        if name not in SOLUTIONS:
            raise KeyError(f"no solution for exercise {name!r}: add it to pnlib.exercises.SOLUTIONS")
        return SOLUTIONS[name]
    return _fill(source, body)


def release_source(source: str) -> str:
    """A cell's code with the stub between its markers (what the committed notebooks hold)."""
    return _fill(source, lambda name, indent: "\n".join(indent + line for line in STUB.splitlines()))


def _map_notebook(src: Path, dst: Path, fn) -> int:
    """Apply ``fn`` to every exercise cell's code (marking the cell as nbgrader's solution cell)."""
    nb = json.loads(Path(src).read_text())
    n = 0
    for cell in nb["cells"]:
        text = "".join(cell["source"])
        if cell["cell_type"] == "code" and (name := exercise_name(text)):
            n += 1
            cell["source"] = fn(text).splitlines(keepends=True)
            cell["metadata"]["nbgrader"] = {**NBGRADER, "grade_id": name}
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    Path(dst).write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    return n


def solve_notebook(src, dst) -> int:
    """Write ``src`` with every exercise solved to ``dst``; returns how many cells were filled."""
    return _map_notebook(src, dst, solve_source)


def release_notebook(src, dst) -> int:
    """Write ``src`` with every exercise's stub to ``dst`` (the inverse of :func:`solve_notebook`)."""
    return _map_notebook(src, dst, release_source)


def exercises_in(path) -> list[str]:
    """The exercises a notebook holds, in order."""
    nb = json.loads(Path(path).read_text())
    return [n for c in nb["cells"] if c["cell_type"] == "code" and (n := exercise_name("".join(c["source"])))]


def write_notebooks(out=None, release: bool = False, src=None) -> list[tuple[Path, int]]:
    """Every numbered notebook of ``src`` (default ``notebooks/``) with its exercises solved (or, with
    ``release``, stubbed) into ``out`` (default ``runs/solved/`` or ``runs/released/``).

    The solved copies keep their names, so they run from ``notebooks/`` like the originals
    (``papermill runs/solved/03_….ipynb out.ipynb --cwd notebooks``). Returns (path, cells filled).
    """
    from .config import NOTEBOOK_DIR, RUNS_DIR

    src = Path(src) if src else NOTEBOOK_DIR
    out = Path(out) if out else RUNS_DIR / ("released" if release else "solved")
    paths = sorted(src.glob("[0-9][0-9]_*.ipynb"))
    if not paths:
        raise FileNotFoundError(f"no numbered notebooks (01_….ipynb) in {src}")
    fn = release_notebook if release else solve_notebook
    return [(out / p.name, fn(p, out / p.name)) for p in paths]
