"""mmoe.nn.projection.CategoryProjection: scoring's first layer per category equals the per-row GEMM."""
from __future__ import annotations

import copy
from types import SimpleNamespace

import pytest
import torch

from mmoe.config import ModelConfig, TaskSpec, TrainConfig
from mmoe.nn import build_model
from mmoe.nn.fused import FusedStep
from mmoe.nn.projection import CategoryProjection

CPU = torch.device("cpu")
TASKS = [TaskSpec("a", "binary"), TaskSpec("b", "regression")]


def _model(num_numeric=3, cards=(4, 9, 2), dims=(3, 5, 1), seed=0):
    torch.manual_seed(seed)
    meta = SimpleNamespace(num_numeric=num_numeric, cardinalities=list(cards), embedding_dims=list(dims),
                           task_dims={"a": 1, "b": 1})
    return build_model(ModelConfig(arch="mmoe", num_experts=3, expert_hidden=(6,), tower_hidden=(4,)), meta)


def _codes(cards, b, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randint(0, c, (b,), generator=g) for c in cards], 1)


@pytest.mark.parametrize("num_numeric", [0, 3])
def test_projection_equals_the_gathered_product(num_numeric):
    """P's rows summed per batch row = W_cat @ [embeddings of the row]; the table's padding never counts,
    even where it is not zero (here it is set to 100)."""
    cards, dims = (4, 9, 2), (3, 5, 1)
    model = _model(num_numeric, cards, dims)
    enc = model.encoder
    with torch.no_grad():
        for i, d in enumerate(dims):       # padding past each column's width: must be masked out
            r0 = int(enc.offsets[i])
            enc.table.weight[r0:r0 + cards[i], d:] = 100.0
    f_rows, d_in = 7, num_numeric + sum(dims)
    w0t = torch.randn(f_rows, d_in)
    x_cat = _codes(cards, 50)
    emb = torch.cat([enc.table.weight[x_cat[:, i] + enc.offsets[i], :d] for i, d in enumerate(dims)], 1)
    want = emb @ w0t[:, num_numeric:].t()                                             # [b, F]
    proj = CategoryProjection(cards, dims, enc.width, num_numeric, CPU)
    p = proj.table(enc.table.weight.detach(), w0t)
    assert p.shape == (sum(cards), f_rows)
    got = proj.batch(p, x_cat + enc.offsets)
    torch.testing.assert_close(got, want.detach(), atol=1e-4, rtol=1e-5)


def test_worth_it_follows_the_cost():
    """Few categories against a large batch: project; a column with many categories, or a tiny batch: GEMM."""
    few = CategoryProjection([10, 18, 4, 25], [6, 8, 3, 10], 10, 0, CPU)
    assert few.worth_it(1024) and few.worth_it(4096)
    assert not few.worth_it(8)
    many = CategoryProjection([5000, 3], [16, 2], 16, 0, CPU)
    assert not many.worth_it(1024)


def test_scoring_takes_either_route_with_the_same_numbers(monkeypatch):
    """``FusedStep.forward`` (scoring) projects where it pays and gathers where not: equal outputs and gates,
    both the model's own; the training step never projects (it needs the gathered embeddings)."""
    model = _model()
    x_num = torch.randn(300, 3, generator=torch.Generator().manual_seed(2))
    x_cat = _codes((4, 9, 2), 300)
    model.eval()
    with torch.no_grad():
        want = model(x_num, x_cat)
    step = FusedStep(copy.deepcopy(model), TASKS, TrainConfig(precision="fp32"), CPU, bf16=False)
    calls = []
    real = step.proj.table
    monkeypatch.setattr(step.proj, "table", lambda *a: calls.append(1) or real(*a))
    projected = step.forward(x_num, x_cat)
    assert calls, "a 300-row batch of 15 categories should be projected"
    monkeypatch.setattr(step.proj, "worth_it", lambda b: False)
    gathered = step.forward(x_num, x_cat)
    assert len(calls) == 1
    for name in want.preds:
        torch.testing.assert_close(projected.preds[name], want.preds[name], atol=1e-5, rtol=0)
        torch.testing.assert_close(gathered.preds[name], want.preds[name], atol=1e-5, rtol=0)
    torch.testing.assert_close(projected.gates, want.gates, atol=1e-6, rtol=0)
    monkeypatch.setattr(step.proj, "worth_it", lambda b: True)
    ys = [torch.zeros(300), torch.zeros(300)]
    ms = [torch.ones(300, dtype=torch.bool)] * 2
    step(x_num, x_cat, ys, ms)
    assert len(calls) == 1


def test_no_projection_in_bf16():
    model = _model()
    assert FusedStep(copy.deepcopy(model), TASKS, TrainConfig(), CPU, bf16=True).proj is None
    assert FusedStep(copy.deepcopy(model), TASKS, TrainConfig(), CPU, bf16=False).proj is not None
