"""Is the process that owns a run still alive? (pid + its start time, so a reused pid is not
mistaken for the original owner; Linux /proc where available.)"""
from __future__ import annotations

import os
import socket

HOST = socket.gethostname()


def proc_start(pid: int) -> str | None:
    """Start time of a process (Linux /proc), to tell a reused pid from the original."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read().decode(errors="replace")
        return stat.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _proc_state(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().decode(errors="replace").rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def pid_alive(pid: int | None, start: str | None = None) -> bool:
    """True if process ``pid`` (on this host) still runs and, when known, started at ``start``."""
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    except OSError:
        return False
    if _proc_state(pid) in ("Z", "X"):
        return False
    if start is not None:
        now = proc_start(pid)
        if now is not None and now != start:
            return False  # pid reused by another process
    return True
