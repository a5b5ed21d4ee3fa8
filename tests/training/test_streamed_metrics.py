"""A streamed table's validation metrics, accumulated block by block in constant memory, are the in-memory
metrics (scikit-learn's, ``mmoe.tasks.compute_metrics``) of the same predictions; AUC from the score
histogram within 1e-5."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mmoe.config import TaskSpec
from mmoe.tasks import compute_metrics, masked_loss, transform
from mmoe.training.streamed import _TaskScore


@pytest.mark.parametrize("kind,k", [("binary", 1), ("regression", 1), ("multiclass", 4)])
def test_block_by_block_metrics_equal_the_in_memory_ones(kind, k):
    rng = np.random.default_rng(0)
    n = 50_000
    raw = torch.from_numpy(rng.normal(size=(n, k)).astype(np.float32))
    if kind == "binary":
        y = torch.from_numpy((rng.random(n) < torch.sigmoid(raw[:, 0]).numpy()).astype(np.float32))
    elif kind == "regression":
        y = raw[:, 0] + torch.from_numpy(rng.normal(size=n).astype(np.float32))
    else:
        y = torch.from_numpy(rng.integers(0, k, n))
    m = torch.from_numpy(rng.random(n) > 0.1)
    scale = (3.0, 2.0) if kind == "regression" else (0.0, 1.0)
    score = _TaskScore(TaskSpec("t", kind), k if kind == "multiclass" else 2, scale)
    for s in range(0, n, 7_000):                                   # uneven blocks
        score.add(raw[s:s + 7000], y[s:s + 7000], m[s:s + 7000])
    got = score.result()
    y_true = y[m].numpy().astype(np.float64)
    if kind == "regression":
        y_true = y_true * scale[1] + scale[0]
    want = {"loss": float(masked_loss(kind, raw, y, m)),
            **compute_metrics(kind, y_true, transform(kind, raw[m], scale).numpy(), k)}
    assert set(got) == set(want)
    for key, v in want.items():
        assert got[key] == pytest.approx(v, rel=1e-5, abs=1e-5 if key == "auc" else 1e-9), key
