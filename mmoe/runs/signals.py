"""Stopping a process's runs by signal: SIGTERM (``docker stop``, ``kill``, schedulers) is handled like
Ctrl-C (SIGINT): the run in progress ends ``cancelled`` with the weights of its finished epochs.

    with cancel_on_signals(threading.Event()) as cancel:   # the command line's train / experiment / paper
        run_training(..., cancel_event=cancel)

    call_forwarding_signals(cmd)     # mmoe dashboard: SIGTERM / SIGINT go to the Streamlit child, which
                                     # stops its server; its job manager then cancels running jobs (jobs.py)

Handlers can only be installed from the main thread; elsewhere these are no-ops around the work.

    exit_now(code)                   # the end of ``python -m mmoe``: flushed, exit handlers run, no teardown
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence

CANCEL_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def cancel_on_signals(cancel: threading.Event) -> Iterator[threading.Event]:
    """SIGINT and SIGTERM set ``cancel`` instead of ending the process; the old handlers come back after."""
    if threading.current_thread() is not threading.main_thread():
        yield cancel
        return
    previous = {sig: signal.signal(sig, lambda *_: cancel.set()) for sig in CANCEL_SIGNALS}
    try:
        yield cancel
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def call_forwarding_signals(cmd: Sequence[str], **popen) -> int:
    """Run ``cmd`` and wait for it; SIGTERM / SIGINT to this process are passed on to it (so it can end
    cleanly) instead of leaving it running alone. Returns its exit status."""
    proc = subprocess.Popen(list(cmd), **popen)

    def forward(sig, _frame) -> None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)

    on_main = threading.current_thread() is threading.main_thread()
    previous = {sig: signal.signal(sig, forward) for sig in CANCEL_SIGNALS} if on_main else {}
    try:
        while True:
            with contextlib.suppress(KeyboardInterrupt):
                return proc.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def exit_now(code: int) -> None:
    """End the process with ``code`` once its output is flushed and its exit handlers have run, without
    the interpreter's teardown (freeing every module and object: ~0.6 s after a training run with torch,
    pandas and pyarrow loaded, 0.3 s for torch alone). Where another thread still runs, the normal exit."""
    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        sys.exit(code)
    import atexit
    import logging

    logging.shutdown()
    getattr(atexit, "_run_exitfuncs", lambda: None)()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):       # a closed pipe (| head) or a closed stream: nothing to flush into
            pass
    os._exit(code)
