"""The tests never touch the checkout's runs/: tests/conftest.py points PNLIB_RUNS_DIR at a temporary folder."""
import os
import subprocess
import sys
from pathlib import Path

from pnlib import config as C
from pnlib import palette as P

ROOT = Path(__file__).resolve().parent.parent


def test_runs_and_caches_live_in_the_sessions_temporary_folder():
    runs = Path(os.environ["PNLIB_RUNS_DIR"]).resolve()
    assert C.RUNS_DIR == runs and not runs.is_relative_to(ROOT)
    for path in (C.CACHE_DIR, P.DEFAULT_CACHE_DIR, C.default_out("ci"), C.default_out("quick", "direct")):
        assert Path(path).is_relative_to(runs), path


def test_a_subprocess_inherits_the_runs_folder():
    """The command-line tests and nbval's kernels run in child processes: they read the same setting."""
    r = subprocess.run([sys.executable, "-c", "from pnlib.config import RUNS_DIR; print(RUNS_DIR)"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert Path(r.stdout.strip()) == C.RUNS_DIR
