"""Training engine on the `ci` preset (seconds each): phases, checkpoints, resume, determinism."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from pnlib import checkpoint as CK
from pnlib import config as C
from pnlib import train as T

ROOT = Path(__file__).resolve().parent.parent


def _strip_time(history):
    return [{k: v for k, v in r.items() if k != "elapsed_s"} for r in history]


@pytest.fixture(scope="module")
def ci_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ci")
    G1, h1 = T.train("ci", out=out, until_phase=1, progress=False)
    fe_after_phase1 = {k: v.clone() for k, v in G1.encoder.state_dict().items()}
    rd_after_phase1 = {k: v.clone() for k, v in G1.decoder.state_dict().items()}
    G2, h2 = T.train("ci", out=out, until_phase=2, progress=False)
    return out, h1, h2, fe_after_phase1, rd_after_phase1, G2


def test_papers_head_phase1_e_loss_falls(tmp_path):
    _, h = T.train("ci", out=tmp_path, progress=False, steps2=0, head="direct")
    e1 = [r["loss_e"] for r in h if r["phase"] == 1]
    assert len(e1) >= 3 and e1[-1] < e1[0]


def test_losses_finite_and_the_palette_head_beats_the_unchanged_source(ci_run):
    _, h1, h2, *_ = ci_run
    val = [r for r in h1 if "val_de00" in r]
    assert val and all(r["val_de00"] < 0.5 * r["identity_de00"] for r in val)
    for r in h2:
        for k, v in r.items():
            if isinstance(v, float):
                assert torch.isfinite(torch.tensor(v)), (k, r)
    p2 = [r for r in h2 if r["phase"] == 2]
    assert p2 and all(k in p2[-1] for k in ("loss_d", "loss_adv", "loss_g", "val_de00", "identity_de00"))
    assert any("acc_Io_Pt" in r for r in p2)  # D's accuracy on each kind of pair is logged


def test_phase2_leaves_FE_unchanged_and_trains_RD(ci_run):
    _, _, _, fe1, rd1, G2 = ci_run
    for k, v in G2.encoder.state_dict().items():
        assert torch.equal(v, fe1[k]), k
    assert any(not torch.equal(v, rd1[k]) for k, v in G2.decoder.state_dict().items())


def test_checkpoint_holds_plain_config_and_loads_weights_only(ci_run):
    out = ci_run[0]
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["step"] == C.PRESETS["ci"]["steps1"] + C.PRESETS["ci"]["steps2"]
    assert state["config"]["preset"] == "ci" and isinstance(state["config"]["size"], list)
    assert {"G", "D", "opt_g", "opt_rd", "opt_d", "rng"} <= set(state)
    hist = json.loads((out / "history.json").read_text())["history"]
    assert hist[-1]["step"] == state["step"]


def test_every_file_a_run_writes_has_one_layout(ci_run, tmp_path):
    """checkpoint.pt, phase1.pt and an exported model: one format (with its version), the model's
    constructor arguments, and the same keys (checkpoint.pt adds D, the optimisers, the random state)."""
    out, *_, G2 = ci_run
    files = {"run": out / "checkpoint.pt", "phase1": out / "phase1.pt",
             "export": CK.export_model(out / "checkpoint.pt", tmp_path / "m.pt")}
    states = {k: CK.read_checkpoint(p) for k, p in files.items()}
    common = {"format", "model_args", "config", "step", "history", "G"}
    for name, state in states.items():
        assert state["format"] == CK.FORMAT and state["model_args"] == G2.model_args == {"width": 8, "head": "palette"}
        assert set(state) - common == ({"D", "opt_g", "opt_rd", "opt_d", "rng"} if name == "run" else set()), name


def test_load_or_train_loads_a_finished_run(ci_run, capsys):
    out = ci_run[0]
    G, hist = T.load_or_train("ci", out=out, progress=False)
    assert "loaded" in capsys.readouterr().out
    assert len(hist) == len(ci_run[2])


def test_wrong_checkpoint_is_refused_with_what_differs(ci_run):
    out = ci_run[0]
    with pytest.raises(CK.CheckpointMismatch, match=r"preset: checkpoint has 'ci', this run wants 'quick'.*width"):
        T.load_or_train("quick", out=out, progress=False)
    bad = out.parent / "notackpt"
    bad.mkdir(exist_ok=True)
    (bad / "checkpoint.pt").write_bytes(b"garbage")
    with pytest.raises(CK.CheckpointMismatch, match="not a readable pnlib checkpoint"):
        CK.read_checkpoint(bad / "checkpoint.pt")


def test_a_run_trained_with_other_settings_is_not_loaded_as_this_one(ci_run):
    """lr, batch, λ... are compared too: a finished run at the preset's lr must not stand in for lr=2e-3."""
    out = ci_run[0]
    with pytest.raises(CK.CheckpointMismatch, match=r"lr: checkpoint has 0.0002, this run wants 0.002.*out="):
        T.load_or_train("ci", out=out, progress=False, lr=2e-3)
    with pytest.raises(CK.CheckpointMismatch, match=r"batch: checkpoint has 4, this run wants 8"):
        T.load_or_train("ci", out=out, progress=False, batch=8)
    T.load_or_train("ci", out=out, progress=False, lr=C.get_config("ci")["lr"])   # the same value: loads


def test_head_differences_name_the_heads():
    """A checkpoint from before the head setting counts as the paper's direct head, and says so."""
    old = {k: v for k, v in C.get_config("ci").items() if k != "head"}
    assert CK.config_differences(old, C.get_config("ci", head="direct")) == []
    assert CK.config_differences(old, C.get_config("ci")) == [
        "head: checkpoint has 'direct', this run wants 'palette'"]


def test_same_seed_same_history(tmp_path):
    _, a = T.train("ci", out=tmp_path / "a", progress=False, steps2=0)
    _, b = T.train("ci", out=tmp_path / "b", progress=False, steps2=0)
    assert _strip_time(a) == _strip_time(b)


def test_nan_loss_stops_naming_step_and_keeps_last_checkpoint(tmp_path, monkeypatch):
    real = T.Ls.e_loss
    calls = {"n": 0}

    def flaky(a, b):
        calls["n"] += 1
        loss = real(a, b)
        return loss * float("nan") if calls["n"] == 15 else loss

    monkeypatch.setattr(T.Ls, "e_loss", flaky)
    with pytest.raises(FloatingPointError, match=r"loss_e is nan at step 15 .*last good checkpoint"):
        T.train("ci", out=tmp_path, progress=False)
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True)["step"] == 10


def test_resume_after_sigkill(tmp_path):
    cmd = [sys.executable, "-m", "pnlib", "train", "--preset", "ci", "--out", str(tmp_path),
           "--steps1", "400", "--steps2", "0", "--no-progress"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ck = tmp_path / "checkpoint.pt"
    deadline = time.time() + 120
    while not ck.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert ck.exists(), proc.stderr.read().decode() if proc.poll() is not None else "no checkpoint in time"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = torch.load(ck, weights_only=True)["step"]
    assert 0 < killed_at < 400
    cmd[cmd.index("400")] = "60"  # finish sooner: same run, shorter phase 1
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"resuming {ck} from step {killed_at}" in done.stdout
    steps = [r["step"] for r in json.loads((tmp_path / "history.json").read_text())["history"]]
    assert steps == sorted(set(steps)) and steps[-1] == 60  # continuous, no step repeated
    assert steps == list(range(10, 61, 10))


def test_plot_history_names_the_model_it_was_given():
    """The validation curve's legend names the model (every figure says whose model made it)."""
    import matplotlib

    matplotlib.use("Agg")   # this test process only: no notebook runs here
    from pnlib.viz import plot_history

    history = [{"step": 50, "phase": 1, "loss_e": 900.0}, {"step": 100, "phase": 1, "loss_e": 500.0,
                                                           "val_de00": 12.0, "identity_de00": 17.0},
               {"step": 150, "phase": 2, "loss_e": 400.0, "loss_d": 1.4, "loss_adv": 3.0,
                "val_de00": 11.5, "identity_de00": 17.0}]
    ax = plot_history(history, label="PaletteNet (the paper's)")
    left = [t.get_text() for t in ax[0].get_legend().get_texts()]
    right = [t.get_text() for t in ax[1].get_legend().get_texts()]
    assert left == ["L_E (eq. 3)", "L_D (eq. 7)", "L_Adv (eq. 8)"]
    assert right[0] == "PaletteNet (the paper's)" and right[1].startswith("identity")
