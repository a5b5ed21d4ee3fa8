"""Shared fixtures: seeding, tiny frames, temporary stores, a thread-leak guard."""
from __future__ import annotations

import os
import random
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CENSUS = SHARED_DATA / "census-income.csv.gz"
REPO = Path(__file__).resolve().parents[1]

# Tests use tiny tensors: one intra-op thread is faster and immune to CPU oversubscription.
torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    skip_gpu = pytest.mark.skip(reason="no CUDA device on this machine")
    for item in items:
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(skip_gpu)


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch):
    """Training in tests always uses one CPU thread (deterministic, no oversubscription)."""
    import mmoe.train

    monkeypatch.setattr(mmoe.train, "auto_threads", lambda: 1)


@pytest.fixture(autouse=True)
def _seed():
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    yield


@pytest.fixture(autouse=True)
def _no_leaked_threads():
    """Fail a test that leaves a non-daemon or job thread running."""
    before = set(threading.enumerate())
    yield
    deadline = time.time() + 5.0
    while True:
        leaked = [t for t in threading.enumerate() if t not in before and t.is_alive()
                  and (t.name.startswith("mmoe-") or not t.daemon)]
        if not leaked or time.time() > deadline:
            break
        time.sleep(0.05)
    assert not leaked, f"test left threads running: {[t.name for t in leaked]}"


@pytest.fixture
def mmoe_home(tmp_path, monkeypatch):
    home = tmp_path / "runs"
    monkeypatch.setenv("MMOE_HOME", str(home))
    return home


@pytest.fixture
def tiny_frame() -> pd.DataFrame:
    """200 rows: two numeric, one categorical feature; binary, regression, multiclass targets."""
    rng = np.random.default_rng(0)
    n = 200
    a = rng.normal(size=n)
    b = rng.normal(size=n)
    color = rng.choice(["red", "green", "blue"], size=n)
    click = np.where(a + 0.5 * (color == "red") + 0.3 * rng.normal(size=n) > 0, "yes", "no")
    score = 2.0 * b - a + 0.1 * rng.normal(size=n)
    kind = np.select([a > 0.5, a < -0.5], ["hi", "lo"], "mid")
    return pd.DataFrame({"a": a, "b": b, "color": color, "click": click, "score": score, "kind": kind})


@pytest.fixture
def census_path() -> Path:
    if not CENSUS.exists():
        pytest.skip(f"real data not present at {CENSUS} (only beside the dev checkout / CI)")
    return CENSUS
