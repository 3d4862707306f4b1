"""Notebook 05's palette widget in a real browser: JupyterLab + headless Chromium (Playwright).

Runs every cell of notebooks/05_palette_control.ipynb on the `ci` preset in a JupyterLab server, waits
for the widget, changes one colour picker as a user would, and checks that the recolored image changes.
A screenshot of the widget goes to the test's tmp folder, and to figures/widget_screenshot.png only when
PNLIB_SAVE_SCREENSHOT=1 (so an ordinary test run never modifies the repository).

Skipped unless /usr/bin/chromium exists and `playwright` is importable (CI installs both).
"""
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = "notebooks/05_palette_control.ipynb"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]

if not Path(CHROMIUM).is_file():
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_server(url: str, proc, log: Path, timeout: float = 120) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"jupyter lab exited with code {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"jupyter lab did not answer {url} within {timeout} s:\n{log.read_text()[-3000:]}")


def _wait_for_kernel_idle(base: str, token: str, timeout: float = 120) -> None:
    """Until the server reports a session for the notebook whose kernel is idle (started and ready)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        with urllib.request.urlopen(f"{base}/api/sessions?token={token}", timeout=5) as r:
            sessions = json.load(r)
        if any(s.get("path", "").endswith(NOTEBOOK.split("/")[-1]) and
               (s.get("kernel") or {}).get("execution_state") == "idle" for s in sessions):
            return
        time.sleep(0.5)
    raise TimeoutError(f"no idle kernel for {NOTEBOOK} within {timeout} s")


@pytest.fixture
def lab(tmp_path):
    """A JupyterLab server on the repo (PNLIB_PRESET=ci, autosave off); yields (base url, token)."""
    port, token = _free_port(), secrets.token_hex(16)
    settings = tmp_path / "lab-settings"
    (settings / "@jupyterlab" / "docmanager-extension").mkdir(parents=True)
    # Never write the executed notebook back into the repository.
    (settings / "@jupyterlab" / "docmanager-extension" / "plugin.jupyterlab-settings").write_text(
        json.dumps({"autosave": False}))
    # No "official Jupyter news?" toast over the widget, no update checks (no network use).
    (settings / "@jupyterlab" / "apputils-extension").mkdir(parents=True)
    (settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    env = {**os.environ, "PNLIB_PRESET": "ci", "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("MPLBACKEND", None)
    log = open(tmp_path / "jupyter.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.ip=127.0.0.1",
         f"--ServerApp.port={port}", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={ROOT}",
         "--ServerApp.port_retries=0", "--ServerApp.allow_root=True", "--ServerApp.terminals_enabled=False",
         "--LabApp.extension_manager=readonly", f"--LabApp.user_settings_dir={settings}",
         f"--LabApp.workspaces_dir={tmp_path / 'workspaces'}",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    before = (ROOT / NOTEBOOK).read_bytes()
    # JupyterLab writes a checkpoint copy when it opens a notebook; remove what this test creates.
    ckpt_dir = (ROOT / NOTEBOOK).parent / ".ipynb_checkpoints"
    ckpt_file = ckpt_dir / (Path(NOTEBOOK).stem + "-checkpoint.ipynb")
    had_dir, had_file = ckpt_dir.exists(), ckpt_file.exists()
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_for_server(f"{base}/api/status?token={token}", proc, tmp_path / "jupyter.log")
        yield base, token
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)  # the server and the kernel it started (its own session)
            proc.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=10)
        log.close()
        if not had_file:
            ckpt_file.unlink(missing_ok=True)
        if not had_dir and ckpt_dir.is_dir() and not any(ckpt_dir.iterdir()):
            ckpt_dir.rmdir()
        changed = (ROOT / NOTEBOOK).read_bytes() != before
        if changed:
            (ROOT / NOTEBOOK).write_bytes(before)
        assert not changed, "the browser session wrote the notebook; restored it"


def test_widget_recolors_live_in_jupyterlab(lab, tmp_path):
    base, token = lab
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 1100})
            page.goto(f"{base}/lab/tree/{NOTEBOOK}?token={token}", timeout=120_000)
            page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=120_000)
            _wait_for_kernel_idle(base, token)
            page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=120_000)
            page.click("li.lm-MenuBar-item:has-text('Run')")
            page.click("li.lm-Menu-item:has-text('Run All Cells')")
            # Should JupyterLab still ask which kernel to use (it does when Run All races the kernel's
            # start), accept its proposal: the notebook's own python3.
            try:
                page.locator(".jp-Dialog .jp-mod-accept").click(timeout=5_000)
            except sync_api.TimeoutError:
                pass

            picker = page.locator(".pn-palette-control input[type=color]").first
            try:
                picker.wait_for(state="attached", timeout=300_000)
            except sync_api.TimeoutError:
                page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
                errors = page.locator("[data-mime-type='application/vnd.jupyter.error']")
                text = errors.first.inner_text() if errors.count() else "(no error output in the page)"
                raise AssertionError(f"no widget after Run All; see {tmp_path / 'failure.png'}:\n{text}") from None
            page.wait_for_function("document.querySelector('.pn-result') && "
                                   "document.querySelector('.pn-result').src", timeout=60_000)
            # Wait for the last cell too (the kernel goes idle): the widget has finished its first update.
            page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=300_000)
            errors = page.locator("[data-mime-type='application/vnd.jupyter.error']")
            assert errors.count() == 0, errors.first.inner_text()
            before = page.get_attribute(".pn-result", "src")
            old_value = picker.input_value()

            new_value = "#1e90ff" if old_value.lower() != "#1e90ff" else "#ff4500"
            picker.scroll_into_view_if_needed()
            picker.evaluate("""(el, v) => { el.value = v;
                el.dispatchEvent(new Event('input', {bubbles: true}));
                el.dispatchEvent(new Event('change', {bubbles: true})); }""", new_value)
            page.wait_for_function("old => document.querySelector('.pn-result').src !== old", arg=before,
                                   timeout=60_000)
            assert page.locator(".pn-error").inner_text().strip() == ""
            assert picker.input_value().lower() == new_value

            control = page.locator(".pn-palette-control")
            control.scroll_into_view_if_needed()
            page.wait_for_timeout(500)  # let the new image paint
            shot = tmp_path / "widget_screenshot.png"
            control.screenshot(path=str(shot))
            assert shot.stat().st_size > 10_000
            if os.environ.get("PNLIB_SAVE_SCREENSHOT") == "1":
                (ROOT / "figures").mkdir(exist_ok=True)
                shutil.copyfile(shot, ROOT / "figures" / "widget_screenshot.png")
        finally:
            browser.close()
