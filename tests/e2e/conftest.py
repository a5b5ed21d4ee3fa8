"""Real-browser fixtures: a `streamlit run` server on a free port (own run store) and a chromium page.

Both skip with a reason when chromium or playwright is missing, so `python -m pytest -q` passes anywhere.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "tests" / "artifacts"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1400, "height": 1000}
HEALTH_TIMEOUT_S = 60


def chromium_path() -> str | None:
    if Path("/usr/bin/chromium").exists():
        return "/usr/bin/chromium"
    return shutil.which("chromium")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.read().decode().strip() == "ok"
    except OSError:
        return False


class Server:
    """A running `streamlit run dashboard/app.py`; its stdout+stderr go to ``log``."""

    def __init__(self, url: str, log: Path, home: Path, proc: subprocess.Popen):
        self.url, self.log, self.home, self.proc = url, log, home, proc

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@pytest.fixture(scope="module")
def chromium_exe() -> str:
    exe = chromium_path()
    if exe is None:
        pytest.skip("chromium is not installed (/usr/bin/chromium or `chromium` on PATH); "
                    "Debian: apt-get install chromium")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("playwright (Python) is not installed: pip install -r requirements-dev.txt")
    return exe


@pytest.fixture(scope="module")
def server(chromium_exe, tmp_path_factory) -> Server:
    """The dashboard on a free port with MMOE_HOME in a temporary folder; always stopped afterwards."""
    tmp = tmp_path_factory.mktemp("e2e")
    home, log = tmp / "runs", tmp / "streamlit.log"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    env = {**os.environ, "MMOE_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "streamlit", "run", "dashboard/app.py", "--server.port", str(port),
           "--server.headless", "true", "--server.fileWatcherType", "none",
           "--browser.gatherUsageStats", "false"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    srv = Server(f"http://localhost:{port}", log, home, proc)
    try:
        deadline = time.monotonic() + HEALTH_TIMEOUT_S
        while not _healthy(f"{srv.url}/_stcore/health"):
            if proc.poll() is not None:
                pytest.fail(f"streamlit exited with status {proc.returncode}:\n{srv.output()[-4000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"streamlit did not answer /_stcore/health within {HEALTH_TIMEOUT_S} s:\n"
                            f"{srv.output()[-4000:]}")
            time.sleep(0.25)
        yield srv
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        if log.exists():
            shutil.copyfile(log, ARTIFACTS / "streamlit.log")
    assert "Traceback" not in srv.output(), f"the server printed a traceback:\n{srv.output()[-6000:]}"


# Records every Streamlit exception box that ever appears (even one replaced by the next rerun).
_WATCH_EXCEPTIONS = """
window.__stExceptions = [];
new MutationObserver(() => {
  document.querySelectorAll('[data-testid="stException"]').forEach(e => {
    if (!e.__seen) { e.__seen = true; window.__stExceptions.push(e.innerText.slice(0, 2000)); }
  });
}).observe(document, {childList: true, subtree: true});
"""


@pytest.fixture(scope="module")
def page(chromium_exe, server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_exe, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport=VIEWPORT)
            context.add_init_script(_WATCH_EXCEPTIONS)
            pg = context.new_page()
            pg.set_default_timeout(30_000)
            yield pg
        finally:
            browser.close()


@pytest.fixture(autouse=True)
def _no_leaked_threads():
    """The suite-wide thread-leak guard, minus Playwright's event-loop executor threads (``asyncio_N``),
    which live until the module's browser closes. (Training runs in the server process, not here.)"""
    before = set(threading.enumerate())
    yield
    leaked = [t.name for t in threading.enumerate() if t not in before and t.is_alive()
              and not t.daemon and not t.name.startswith("asyncio_")]
    assert not leaked, f"test left threads running: {leaked}"
