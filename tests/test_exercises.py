"""The fill-in exercises (pnlib.exercises): every solution passes its check, a wrong or missing one is
caught with a one-line reason, the committed notebooks hold only stubs, solve and release are inverses,
and the solved notebooks run under nbval at the `ci` preset with every check passing."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import ONE_THREAD
from torch import nn

from pnlib import exercises as X
from pnlib import losses
from pnlib.color import hsv_to_rgb, rgb_to_hsv, rgb_to_lab
from pnlib.model import ConvNormAct, tile_palette

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
#: At least the exercises the course promises (notebooks 02-04), each with its paper reference.
PROMISED = {"tile_palette", "ResidualDown", "rd_forward", "e_loss", "train_phase1", "discriminator_loss",
            "phase2_step"}


def _cells():
    """(notebook, exercise name, cell source) for every exercise cell of the committed notebooks."""
    out = []
    for path in NOTEBOOKS:
        for cell in json.loads(path.read_text())["cells"]:
            src = "".join(cell["source"])
            if cell["cell_type"] == "code" and (name := X.exercise_name(src)):
                out.append((path.name, name, src))
    return out


def _namespace():
    """What the notebooks import before their exercise cells."""
    return {"torch": torch, "nn": nn, "ConvNormAct": ConvNormAct, "tile_palette": tile_palette,
            "rgb_to_lab": rgb_to_lab, "rgb_to_hsv": rgb_to_hsv, "hsv_to_rgb": hsv_to_rgb,
            "losses": losses, "e_loss": losses.e_loss,
            "discriminator_loss": losses.discriminator_loss}


def test_every_promised_exercise_is_in_a_notebook_and_has_a_solution():
    names = [name for _, name, _ in _cells()]
    assert PROMISED <= set(names), f"missing: {PROMISED - set(names)}"
    assert len(names) == len(set(names)), "one cell per exercise"
    assert set(names) <= set(X.SOLUTIONS) and set(names) <= set(X.CHECKS)


@pytest.mark.parametrize("nb,name,src", _cells(), ids=lambda v: v if isinstance(v, str) and len(v) < 40 else "")
def test_solution_passes_its_check_and_stub_falls_back(nb, name, src, capsys):
    assert X.release_source(src) == src, f"{nb} commits a solution for {name}: only the stub belongs there"
    assert X.STUB.splitlines()[-1] in src and src.count(X.BEGIN) == src.count(X.END) == 1
    ns = _namespace()
    exec(compile(src, f"<{nb}:{name} stub>", "exec"), ns)
    fallback = X.check(name, ns[name])
    assert "not yet written: pnlib's version is used from here" in capsys.readouterr().out
    assert fallback is not ns[name]
    ns = _namespace()
    exec(compile(X.solve_source(src), f"<{nb}:{name} solved>", "exec"), ns)
    mine = ns[name]
    assert X.check(name, mine) is mine
    assert capsys.readouterr().out.startswith(f"✓ {name}")


WRONG = {
    "hue_shift_eq10": ("def hue_shift_eq10(rgb, degrees):\n"   # the naive shift: L not kept
                       "    h, s, v = rgb_to_hsv(rgb)\n"
                       "    return rgb_to_lab(hsv_to_rgb(torch.stack([(h + degrees / 360) % 1, s, v])))\n"),
    "tile_palette": "def tile_palette(P, like):\n    return P.reshape(P.shape[0], -1, 1, 1)\n",
    "e_loss": "def e_loss(a, t):\n    return (a - t).square().mean()\n",   # a per-pixel mean, not eq. (3)'s sum
    "discriminator_loss": (   # eq. (5) only: the anti-cheat pairs of eq. (6) forgotten
        "def discriminator_loss(D, I_hat, P_t, I_o, P_o):\n"
        "    bce = torch.nn.functional.binary_cross_entropy_with_logits\n"
        "    f, r = D(I_hat.detach(), P_t), D(I_o, P_o)\n"
        "    return bce(f, torch.zeros_like(f)) + bce(r, torch.ones_like(r))\n"),
    "rd_forward": ("def rd_forward(rd, c, P_t, I_s):\n"   # forgets the tanh
                   "    c1, c2, c3, c4 = c\n"
                   "    d1 = rd.up1(torch.cat([tile_palette(P_t, c1), c1], 1))\n"
                   "    d2 = rd.up2(torch.cat([c2, d1], 1))\n"
                   "    d3 = rd.up3(torch.cat([tile_palette(P_t, c3), c3, d2], 1))\n"
                   "    d4 = rd.up4(torch.cat([tile_palette(P_t, c4), c4, d3], 1))\n"
                   "    return rd.to_ab(torch.cat([I_s[:, :1], d4], 1))\n"),
}


@pytest.mark.parametrize("name", sorted(WRONG))
def test_wrong_solution_is_caught_in_one_line(name, capsys):
    ns = _namespace()
    exec(WRONG[name], ns)
    got = X.check(name, ns[name])
    out = capsys.readouterr().out.strip()
    assert got is not ns[name], "a wrong solution must not be used"
    assert out.startswith(f"✗ {name}: ") and out.endswith("pnlib's version is used from here")
    assert "\n" not in out


def test_detached_discriminator_loss_is_required(capsys):
    """D's loss that lets a gradient reach Î_t would train G in D's step: the check names it."""
    src = X.solve_source(next(s for _, n, s in _cells() if n == "discriminator_loss"))
    ns = _namespace()
    exec(src.replace("I_hat = I_hat.detach()", "pass"), ns)
    X.check("discriminator_loss", ns["discriminator_loss"])
    assert "detach" in capsys.readouterr().out


def _stubs(path):
    return sum("".join(c["source"]).count(X.STUB.splitlines()[-1]) for c in json.loads(path.read_text())["cells"])


def test_solve_and_release_are_inverse_on_every_notebook(tmp_path):
    for path in NOTEBOOKS:
        solved, back = tmp_path / "s" / path.name, tmp_path / "r" / path.name
        X.solve_notebook(path, solved)
        X.release_notebook(solved, back)
        assert back.read_text() == path.read_text()
        assert _stubs(solved) == 0 and _stubs(path) == len(X.exercises_in(path))
        cells = [c for c in json.loads(path.read_text())["cells"] if X.exercise_name("".join(c["source"]))]
        assert all(c["metadata"]["nbgrader"]["solution"] for c in cells), "nbgrader's solution-cell metadata"


def test_cli_writes_solved_notebooks(tmp_path):
    r = subprocess.run([sys.executable, "-m", "pnlib", "exercises", "--out", str(tmp_path)], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in tmp_path.glob("*.ipynb")) == [p.name for p in NOTEBOOKS]
    solved = json.loads((tmp_path / "02_architecture.ipynb").read_text())
    assert not any(X.STUB.splitlines()[-1] in "".join(c["source"]) for c in solved["cells"])


def _run_solved(path, tmp):
    """The instructor's copy of ``path``, executed at `ci` by papermill -> (process, executed copy)."""
    from pnlib.config import default_out

    solved, executed = tmp / path.name, default_out("ci") / path.name
    executed.parent.mkdir(parents=True, exist_ok=True)
    X.solve_notebook(path, solved)
    env = {**os.environ, "PNLIB_PRESET": "ci", **ONE_THREAD}
    env.pop("MPLBACKEND", None)
    r = subprocess.run([sys.executable, "-m", "papermill", str(solved), str(executed), "-p", "PRESET", "ci",
                        "--cwd", str(ROOT / "notebooks")], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=900)
    return r, executed


WITH_EXERCISES = [p for p in NOTEBOOKS if X.exercises_in(p)]


@pytest.fixture(scope="module")
def solved_runs(two_lanes, tmp_path_factory):
    """The solved notebooks, two at a time (03, which trains what 04 loads, before 04 in one lane)."""
    lanes = [[p for p in WITH_EXERCISES if p.name[:2] < "03"], [p for p in WITH_EXERCISES if p.name[:2] >= "03"]]
    return two_lanes(lanes, lambda p: _run_solved(p, tmp_path_factory.mktemp(p.stem)))


@pytest.mark.parametrize("path", WITH_EXERCISES, ids=lambda p: p.name)
def test_solved_notebook_runs_and_every_check_passes(path, solved_runs):
    """The instructor's copy, executed at `ci` (papermill, from notebooks/ as the README runs them).

    The executed copy is left where `run-notebooks --preset ci` puts its own (the session's temporary
    runs folder): tests/test_site.py builds its site from there and runs only the notebooks still missing.
    """
    if isinstance(solved_runs[path], Exception):
        raise solved_runs[path]
    r, executed = solved_runs[path]
    assert r.returncode == 0, r.stderr[-4000:]
    out = "".join("".join(o.get("text", "")) for c in json.loads(executed.read_text())["cells"]
                  if c["cell_type"] == "code" for o in c.get("outputs", []))
    for name in X.exercises_in(path):
        assert f"✓ {name}: matches pnlib's" in out, f"{name}'s check did not pass in the solved notebook"
    assert "✗" not in out and "not yet written" not in out
