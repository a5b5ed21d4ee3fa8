"""Import-time shims for peers (applied in-process, nothing in site-packages is patched).

deepctr_torch/__init__.py starts a non-daemon thread that calls
``requests.get('https://pypi.python.org/pypi/deepctr-torch/json')`` with no timeout
to check for a newer version. On a machine without network that thread can hang
and keep the benchmark process alive; with network it adds a request during the
timed region. ``import_deepctr`` makes that one call fail fast during import.
"""
from __future__ import annotations

import contextlib


@contextlib.contextmanager
def _no_version_check():
    try:
        import requests
    except ImportError:          # deepctr_torch imports requests itself; nothing to shim
        yield
        return
    real_get = requests.get

    def refuse(url, *a, **kw):
        if "pypi" in str(url):
            raise requests.ConnectionError("benchmark shim: no version check")
        return real_get(url, *a, **kw)

    requests.get = refuse
    try:
        yield
    finally:
        import threading
        import time
        # wait (briefly) for the checker thread to finish before restoring requests.get
        deadline = time.time() + 2.0
        for t in threading.enumerate():
            if t is not threading.current_thread() and not t.daemon and t.name.startswith("Thread"):
                t.join(max(0.0, deadline - time.time()))
        requests.get = real_get


def import_deepctr():
    import contextlib as _c
    import io

    with _no_version_check(), _c.redirect_stdout(io.StringIO()):
        import deepctr_torch  # noqa: F401
    return deepctr_torch
