"""benchmarks/gpu_check.sh --dry-run: every step of the GPU script, on the CPU at the `ci` preset.

A GPU is lent rarely and briefly; this test keeps the script from rotting between loans (a bug found
here costs seconds of CPU, not minutes of a 15-minute GPU lease).
"""
import os
import subprocess
import tarfile

from pnlib.config import REPO_ROOT


def test_gpu_check_dry_run_runs_every_step(tmp_path):
    out, work = tmp_path / "out", tmp_path / "work"
    env = {**os.environ, "OUT": str(out), "WORK": str(work), "PNLIB_RUNS_DIR": str(tmp_path / "runs"),
           "PHOTOS": str(tmp_path / "no-photos"), "BUDGET_S": "280"}
    proc = subprocess.run(["bash", str(REPO_ROOT / "benchmarks" / "gpu_check.sh"), "--dry-run"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    log = (out / "log.txt").read_text()
    for step in ("0. run-notebooks --preset ci", "1. bench train", "2-4 start together", "done:"):
        assert step in log, f"step {step!r} missing from the log:\n{log}"
    assert "notebooks ci: rc 0" in log and "bench: rc 0" in log and "profile: rc 0" in log, log
    assert "2-4 ended: notebooks rc 0" in log and "paper-all rc 0" in log and "scaling rc 0" in log, log
    with tarfile.open(out / "results.tgz") as t:
        names = t.getnames()
    assert any(n.endswith("scaling/n2-s0.json") for n in names), names
    assert any(n.endswith("logs/bench_train.json") for n in names), names
    assert (out / "paper_all.json").is_file() and (out / "paper_all.pt.part00").is_file()
