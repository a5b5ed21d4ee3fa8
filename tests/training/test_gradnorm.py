"""GradNorm task weighting (``mmoe.training.gradnorm``): weights that sum to the number of tasks, a task
whose loss is on a far larger scale is weighted down, masked batches, the shared layer it reads, the
per-epoch record in the history, and one seed giving one result."""
from __future__ import annotations

import copy
import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn
from training_helpers import TASKS, _fit

from mmoe.config import ConfigError, ModelConfig, TaskSpec, TrainConfig
from mmoe.nn import build_model
from mmoe.training import TrainStep, fit
from mmoe.training.gradnorm import GradNorm, shared_layer

CPU = torch.device("cpu")
REG = (TaskSpec("small", "regression"), TaskSpec("huge", "regression"))


def _model(specs, arch="mmoe", seed=0):
    torch.manual_seed(seed)
    meta = SimpleNamespace(num_numeric=6, cardinalities=[], embedding_dims=[],
                           task_dims={t.column: 1 for t in specs})
    return build_model(ModelConfig(arch=arch, num_experts=3, expert_hidden=(8,), tower_hidden=(4,)), meta)


def _batch(seed, b=64, scale=1.0, empty=()):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, 6, generator=g)
    y_small = x[:, 0] + 0.1 * torch.randn(b, generator=g)
    y_huge = scale * (x[:, 1] - x[:, 2])
    masks = [torch.ones(b, dtype=torch.bool) if n not in empty else torch.zeros(b, dtype=torch.bool)
             for n in ("small", "huge")]
    return x, torch.zeros(b, 0, dtype=torch.long), [y_small, y_huge], masks


def _cfg(**kw):
    return TrainConfig(**{"task_weighting": "gradnorm", "lr": 1e-2, "precision": "fp32", "device": "cpu", **kw})


def test_weights_start_at_one_and_always_sum_to_the_number_of_tasks():
    step = TrainStep(_model(REG), REG, _cfg(), CPU)
    assert step.fused is None and "gradnorm" in step.fused_unsupported
    assert step.gradnorm.values() == [1.0, 1.0]
    for s in range(20):
        step(*_batch(s, scale=10.0))
        w = step.gradnorm.values()
        assert sum(w) == pytest.approx(2.0, abs=1e-5) and min(w) > 0
    assert step.gradnorm.values() != [1.0, 1.0]


def test_a_task_with_a_far_larger_loss_scale_is_weighted_down():
    """Task "huge" has targets 100x larger, so its loss (MSE) is ~10^4 times the other's and its gradient
    at the shared layer dominates; GradNorm moves weight from it to the small task."""
    step = TrainStep(_model(REG), REG, _cfg(), CPU)
    for s in range(40):
        _, losses = step(*_batch(s, scale=100.0))
    w_small, w_huge = step.gradnorm.values()
    assert w_huge < 0.5 * w_small, (w_small, w_huge)
    assert float(losses[1]) > 100 * float(losses[0])


def test_the_model_loss_is_the_weighted_sum_with_the_weights_constant():
    step = TrainStep(_model(REG), REG, _cfg(), CPU)
    step(*_batch(0, scale=10.0))
    w = step.gradnorm.values()
    total, losses = step(*_batch(1, scale=10.0))
    assert float(total) == pytest.approx(w[0] * float(losses[0]) + w[1] * float(losses[1]), rel=1e-5)
    assert all(p is not step.gradnorm.weights for g in step.optimizer.param_groups for p in g["params"])


def test_a_task_without_labelled_rows_is_skipped_and_keeps_its_weight():
    specs = (*REG, TaskSpec("third", "regression"))
    step = TrainStep(_model(specs), specs, _cfg(), CPU)

    def batch(seed, empty=()):
        x, c, ys, ms = _batch(seed, scale=30.0)
        b = len(x)
        third = torch.ones(b, dtype=torch.bool) if "third" not in empty else torch.zeros(b, dtype=torch.bool)
        ms = [m if n not in empty else torch.zeros(b, dtype=torch.bool) for n, m in zip(("small", "huge"), ms)]
        return x, c, [*ys, x[:, 3]], [*ms, third]

    total, losses = step(*batch(0, empty=("third",)))          # its first batch has no labels at all
    assert torch.isfinite(total) and float(losses[2]) == 0.0
    assert math.isnan(float(step.gradnorm.initial_losses[2]))  # no L(0) yet
    w = step.gradnorm.values()
    assert w[2] == pytest.approx(1.0) and sum(w) == pytest.approx(3.0, abs=1e-5)
    for s in range(1, 4):
        step(*batch(s))
    before = step.gradnorm.values()
    step(*batch(9, empty=("huge",)))
    after = step.gradnorm.values()
    assert after[1] == pytest.approx(before[1], abs=1e-7)     # skipped: unchanged
    assert sum(after) == pytest.approx(3.0, abs=1e-5)
    # one task labelled alone: nothing to balance, no weight moves
    step(*batch(10, empty=("small", "huge")))
    assert step.gradnorm.values() == pytest.approx(after, abs=1e-7)
    assert all(math.isfinite(v) for v in step.gradnorm.values())


@pytest.mark.parametrize("arch,where", [("mmoe", "core.experts.weights.0"), ("omoe", "core.experts.weights.0"),
                                        ("shared-bottom", "core.bottom.weights.0")])
def test_the_shared_layer_is_the_last_layer_every_task_depends_on(arch, where):
    model = _model(REG, arch)
    names = {id(p): n for n, p in model.named_parameters()}
    (param, rows), = shared_layer(model)
    assert names[id(param)] == where and rows is None


def test_the_shared_layer_of_custom_experts_is_each_experts_last_weight():
    from mmoe.nn.model import MixtureOfExperts

    experts = [nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 5)) for _ in range(2)]
    core = MixtureOfExperts(4, {"a": 1, "b": 1}, experts=experts)
    got = [p for p, _ in shared_layer(core)]
    assert [id(p) for p in got] == [id(e[2].weight) for e in experts]


def test_no_shared_layer_is_refused_clearly():
    with pytest.raises(ValueError, match="no shared layer"):
        shared_layer(nn.Linear(2, 2))


def test_fit_records_the_weights_per_epoch_and_one_seed_gives_one_result(data):
    m1, cfg = _fit(data, task_weighting="gradnorm")
    m2 = copy.deepcopy(m1)
    r1, r2 = fit(m1, data, cfg), fit(m2, data, cfg)
    assert r1.status == "finished" and r1.step.startswith("autograd (gradnorm")
    assert r1.history == r2.history
    for p, q in zip(m1.parameters(), m2.parameters()):
        assert torch.equal(p, q)
    for epoch in r1.history:
        w = [epoch["train"][t.column]["task_weight"] for t in TASKS]
        assert sum(w) == pytest.approx(len(TASKS), abs=1e-5)
        assert all("task_weight" not in m for m in epoch["val"].values())   # a training-side record
    assert r1.history[0]["train"]["click"]["task_weight"] != r1.history[-1]["train"]["click"]["task_weight"]


def test_only_learned_weightings_record_weights(data):
    model, cfg = _fit(data)
    fixed = fit(model, data, cfg)
    assert all("task_weight" not in m and "uncertainty_log_var" not in m for m in fixed.history[-1]["train"].values())
    model, cfg = _fit(data, task_weighting="uncertainty")
    unc = fit(model, data, cfg)
    assert all("uncertainty_log_var" in m for m in unc.history[-1]["train"].values())


def test_alpha_lifts_the_task_whose_loss_falls_slowly_and_is_validated():
    """Equal gradient norms, but task 0's loss has fallen to 3/4 of its start and task 1's to 1/4 (r = 1.5,
    0.5): with alpha 0 the norms are on target and nothing moves; with alpha 3 the slow task 0 gains."""
    finals = {}
    for alpha in (0.0, 3.0):
        gn = GradNorm(2, [(nn.Parameter(torch.ones(2, 2)), None)], alpha=alpha, lr=0.1)
        gn.update(torch.tensor([1.0, 1.0]), torch.tensor([1.0, 1.0]), [True, True])    # L(0); on target
        gn.update(torch.tensor([0.75, 0.25]), torch.tensor([1.0, 1.0]), [True, True])
        finals[alpha] = gn.values()
    assert finals[0.0] == pytest.approx([1.0, 1.0])
    assert finals[3.0][0] > 1.0 > finals[3.0][1] and sum(finals[3.0]) == pytest.approx(2.0)
    for bad in (-0.1, 11):
        with pytest.raises(ConfigError, match="GradNorm alpha"):
            TrainConfig(gradnorm_alpha=bad)
    assert TrainConfig().gradnorm_alpha == 1.5


def test_gradnorm_update_alone_follows_the_paper():
    """Two tasks, equal loss ratios (r = 1): the target is the mean gradient norm, so the task whose
    weighted norm is above it loses weight and the other gains; the sum stays 2."""
    w_param = nn.Parameter(torch.ones(3, 3))
    gn = GradNorm(2, [(w_param, None)], alpha=1.5, lr=0.1)
    losses = torch.tensor([1.0, 1.0])
    gn.update(losses, torch.tensor([4.0, 1.0]), [True, True])
    w = gn.values()
    assert w[0] < 1.0 < w[1] and sum(w) == pytest.approx(2.0)
