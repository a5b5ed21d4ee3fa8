"""Shared fixtures: tiny frames, temporary stores, a thread-leak guard, owned job managers.

No global seeding: every test that needs a seed sets it through the product's own settings
(``TrainConfig.seed``, ``DataConfig.seed``, ``--seed``) or explicitly, so a seeding bug in the
product is not hidden by the suite. Training threads are fixed through the product's public
``MMOE_THREADS`` setting (inherited by CLI subprocesses too), not by patching internals.
"""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

# Tests use tiny tensors: one intra-op thread is faster and immune to CPU oversubscription.
# Set before torch is imported anywhere, and inherited by every subprocess a test starts.
os.environ.setdefault("MMOE_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402
from frames import make_tiny_frame  # noqa: E402

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CENSUS = SHARED_DATA / "census-income.csv.gz"
REPO = Path(__file__).resolve().parents[1]

torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    skip_gpu = pytest.mark.skip(reason="no CUDA device on this machine")
    for item in items:
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(skip_gpu)


@pytest.fixture(autouse=True)
def _no_leaked_threads():
    """Fail a test that leaves a non-daemon or job thread running."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 5.0
    while True:
        leaked = [t for t in threading.enumerate() if t not in before and t.is_alive()
                  and (t.name.startswith("mmoe-") or not t.daemon)]
        if not leaked or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not leaked, f"test left threads running: {[t.name for t in leaked]}"


@pytest.fixture
def process_manager():
    """The process-wide job manager the dashboard uses, owned by the test: shut down (its running
    jobs cancelled, its threads joined) when the test ends, so the next test gets a fresh one."""
    from mmoe.runs.jobs import get_manager

    m = get_manager()
    yield m
    get_manager().shutdown(wait=True, cancel=True, timeout=30)


@pytest.fixture
def mmoe_home(tmp_path, monkeypatch):
    home = tmp_path / "runs"
    monkeypatch.setenv("MMOE_HOME", str(home))
    return home


@pytest.fixture
def tiny_frame() -> pd.DataFrame:
    """200 rows: two numeric, one categorical feature; binary, regression, multiclass targets."""
    return make_tiny_frame()


@pytest.fixture
def census_path() -> Path:
    if not CENSUS.exists():
        pytest.skip(f"real data not present at {CENSUS} (only beside the dev checkout / CI)")
    return CENSUS
