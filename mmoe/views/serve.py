"""How ``mmoe dashboard`` starts the packaged dashboard: its ``streamlit run`` command line and the
security defaults of a single-user local tool (no Streamlit is imported here).

    dashboard_app()                       the installed app.py (None when the dashboard is not installed)
    dashboard_command(port, extra, env)   the command line: bound to 127.0.0.1, error details kept to the
                                          terminal, unless ``extra`` or a STREAMLIT_* variable says otherwise
    launch_message(cmd, port, env)        the line printed before it starts: where to open it

The repository's ``.streamlit/config.toml`` sets the same for ``streamlit run dashboard/app.py``;
``MMOE_DEV=1`` shows full error details in the browser (``dashboard/app.py``); the Dockerfile binds
every interface on purpose (a container is reached through its published port).
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Mapping, Sequence

# what the repository's .streamlit/config.toml sets, passed as flags so it holds from any folder
DASHBOARD_FLAGS = ("--browser.gatherUsageStats=false", "--server.headless=true", "--client.toolbarMode=minimal",
                   "--server.maxUploadSize=1024", "--theme.base=light")
LOCAL_ADDRESS = "127.0.0.1"
# this machine only, and no tracebacks in the browser (the terminal has them); each unless the user's
# environment sets the option (a flag would override it), and options given to ``mmoe dashboard``
# come after these, so ``--server.address 0.0.0.0`` wins (streamlit takes an option's last value)
LOCAL_ONLY = {"STREAMLIT_SERVER_ADDRESS": f"--server.address={LOCAL_ADDRESS}",
              "STREAMLIT_CLIENT_SHOW_ERROR_DETAILS": "--client.showErrorDetails=type"}
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def dashboard_app() -> Path | None:
    """The installed dashboard's entry script (the package ``mmoe_dashboard``; ``dashboard/`` in a checkout),
    found through the import system without importing it; None when it is not installed."""
    spec = importlib.util.find_spec("mmoe_dashboard")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "app.py"


def dashboard_command(port: int, extra: Sequence[str], env: Mapping[str, str]) -> list[str] | None:
    """``python -m streamlit run <app.py>`` on ``port`` with the defaults above, then ``extra``."""
    app = dashboard_app()
    if app is None:
        return None
    local = [flag for var, flag in LOCAL_ONLY.items() if var not in env]
    return [sys.executable, "-m", "streamlit", "run", str(app), f"--server.port={port}", *DASHBOARD_FLAGS,
            *local, *extra]


def option(cmd: Sequence[str], name: str) -> str | None:
    """The value of the last ``--name=value`` or ``--name value`` in ``cmd`` (the one streamlit uses)."""
    value = None
    for i, arg in enumerate(cmd):
        if arg.startswith(name + "="):
            value = arg.split("=", 1)[1]
        elif arg == name and i + 1 < len(cmd):
            value = cmd[i + 1]
    return value


def launch_message(cmd: Sequence[str], port: int, env: Mapping[str, str]) -> str:
    """Where to open the dashboard, where its runs are, and a warning when other machines can reach it."""
    address = option(cmd, "--server.address") or env.get("STREAMLIT_SERVER_ADDRESS") or ""
    shared = address not in LOOPBACK
    host = address if shared and address not in ("", "0.0.0.0", "::") else "localhost"
    home = env.get("MMOE_HOME") or Path("runs").resolve()
    return (f"MMoE Lab on http://{host}:{port} (runs in {home}); Ctrl-C stops it"
            + ("; other machines can reach it too: put it behind authentication (README, Security posture)"
               if shared else ""))
