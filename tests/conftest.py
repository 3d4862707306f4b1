"""The test session is hermetic: every run, cache and notebook run goes to a temporary folder.

``PNLIB_RUNS_DIR`` is set here, when pytest imports this file, before any test module imports pnlib
(:mod:`pnlib.config` reads it once, at import). Subprocesses (the command-line tests, nbval and its
kernels) inherit it. At the end of the session the checkout's ``runs/`` must be as it was and
``git status`` must show nothing new; otherwise the session fails, naming what a test wrote there.
"""
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_OWNER = "PNLIB_TEST_SESSION_TMP"   # set by the outermost session; a nested pytest (nbval) reuses it

if "pnlib.config" in sys.modules and _OWNER not in os.environ:
    raise RuntimeError("pnlib was imported before tests/conftest.py could set PNLIB_RUNS_DIR")
_OWN = _OWNER not in os.environ
TMP = Path(os.environ[_OWNER]) if not _OWN else Path(tempfile.mkdtemp(prefix="pnlib-tests-"))
os.environ[_OWNER] = str(TMP)
os.environ["PNLIB_RUNS_DIR"] = str(TMP / "runs")


def _checkout_state() -> tuple[set, set]:
    """(files under the checkout's runs/ with their size and mtime, the lines of `git status`)."""
    runs = ROOT / "runs"
    files = {(str(p.relative_to(ROOT)), p.stat().st_size, p.stat().st_mtime_ns)
             for p in runs.rglob("*") if p.is_file()} if runs.is_dir() else set()
    try:
        r = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=ROOT,
                           capture_output=True, text=True, timeout=60)
        status = set(r.stdout.splitlines()) if r.returncode == 0 else set()
    except (OSError, subprocess.SubprocessError):  # no git: the runs/ check still holds
        status = set()
    return files, status


_START = _checkout_state() if _OWN else None


def pytest_sessionfinish(session, exitstatus):
    if not _OWN:
        return
    files, status = _checkout_state()
    wrote = sorted({f[0] for f in files ^ _START[0]}) + sorted(status - _START[1])  # new, changed or gone
    if wrote:
        session.config._pnlib_wrote = wrote
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    wrote = getattr(config, "_pnlib_wrote", None)
    if wrote:
        terminalreporter.write_line(f"FAILED: the tests wrote into the checkout {ROOT} (they must use "
                                    f"PNLIB_RUNS_DIR or tmp_path): " + "; ".join(wrote), red=True)


def pytest_unconfigure(config):
    if _OWN:
        shutil.rmtree(TMP, ignore_errors=True)


@pytest.fixture(scope="session")
def save_model():
    """``save(G, path, step=0)``: a PaletteNet saved as pnlib saves every model (pnlib.checkpoint), with
    the `ci` preset's config for its width and head; returns the path."""
    def save(G, path, step=0):
        from pnlib.checkpoint import atomic_save, checkpoint_state
        from pnlib.config import get_config

        cfg = get_config("ci", head=G.head, width=G.width)
        return atomic_save(checkpoint_state(G.model_args, G.state_dict(), cfg, step, []), path)
    return save


@pytest.fixture(scope="session")
def two_lanes():
    """``two_lanes(lanes, run) -> {item: run(item)}``: the two lanes side by side, each lane in order.

    How the suite runs its notebooks (nbval, the solved exercises): each kernel with one torch thread
    (``ONE_THREAD`` in its environment), two at a time, so two kernels share the two cores instead of
    fighting over them: the seven nbval runs took 54 s instead of 104 s (2026-12-07, 2-core CPU).
    A notebook that loads what another trains goes in the same lane, after it. An item whose run raised
    (a timeout) has the exception as its result.
    """
    from concurrent.futures import ThreadPoolExecutor

    def attempt(run, item):   # an exception (a timeout) becomes that item's result: one test fails, not all
        try:
            return run(item)
        except Exception as e:  # noqa: BLE001 - re-raised by the test that reads it
            return e

    def run_lanes(lanes, run):
        with ThreadPoolExecutor(len(lanes)) as pool:
            parts = list(pool.map(lambda lane: {item: attempt(run, item) for item in lane}, lanes))
        return {item: result for part in parts for item, result in part.items()}
    return run_lanes


#: The environment of a notebook kernel that runs beside another one (see ``two_lanes``).
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
