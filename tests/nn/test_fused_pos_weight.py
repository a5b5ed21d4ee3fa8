"""The fused step's BCE pos_weight (``FusedStep._binary_losses``) against autograd: the same losses at
every step and the same parameters after several Adam steps, and the cases it leaves to autograd."""
from __future__ import annotations

import dataclasses

import pytest
import torch
from test_fused import CPU, FP32, _batches, _compare, _model

from mmoe.config import TaskSpec, TrainConfig
from mmoe.nn.fused import unsupported
from mmoe.training import TrainStep

BINARY = (TaskSpec("a", "binary"), TaskSpec("b", "binary"), TaskSpec("c", "binary"))


@pytest.mark.parametrize("arch", ["mmoe", "omoe", "shared-bottom"])
@pytest.mark.parametrize("pos_weight", [{"a": 15.0}, {"a": 0.25, "c": 4.0}, {"a": 1.0, "b": 2.5, "c": 9.0}])
def test_fused_pos_weight_matches_autograd(arch, pos_weight):
    model, meta = _model(BINARY, arch=arch)
    cfg = dataclasses.replace(FP32, pos_weight=pos_weight)
    _compare(model, BINARY, _batches(meta, BINARY, n=4), cfg)


def test_fused_pos_weight_with_an_unlabelled_task_matches_autograd():
    model, meta = _model(BINARY)
    cfg = dataclasses.replace(FP32, pos_weight={"b": 7.0})
    _compare(model, BINARY, _batches(meta, BINARY, n=3, empty=("b",)), cfg)


def test_pos_weight_changes_the_fused_loss_as_bce_does():
    model, meta = _model(BINARY)
    batch = _batches(meta, BINARY, n=1, missing=0.0)[0]
    plain = TrainStep(model, BINARY, FP32, CPU)
    with torch.no_grad():
        out = plain.fused.forward(batch[0], batch[1])
    weighted = TrainStep(_model(BINARY)[0], BINARY, dataclasses.replace(FP32, pos_weight={"a": 5.0}), CPU)
    assert weighted.fused is not None
    _, losses = weighted(*batch)
    z, y = out.preds["a"][:, 0], batch[2][0]
    expect = torch.nn.functional.binary_cross_entropy_with_logits(z, y, pos_weight=torch.tensor(5.0))
    torch.testing.assert_close(losses[0], expect, atol=1e-6, rtol=0)
    unweighted = torch.nn.functional.binary_cross_entropy_with_logits(z, y)
    assert float(losses[0]) > float(unweighted)       # positives weigh 5x: the loss grows
    torch.testing.assert_close(losses[1], torch.nn.functional.binary_cross_entropy_with_logits(
        out.preds["b"][:, 0], batch[2][1]), atol=1e-6, rtol=0)


def test_pos_weight_with_a_task_that_is_not_binary_trains_on_autograd():
    specs = (TaskSpec("a", "binary"), TaskSpec("r", "regression"))
    model, _ = _model(specs)
    step = TrainStep(model, specs, dataclasses.replace(FP32, pos_weight={"a": 3.0}), CPU)
    assert step.fused is None and "pos_weight" in step.fused_unsupported


def test_gradnorm_is_left_to_autograd_with_a_reason():
    model, _ = _model(BINARY)
    why = unsupported(model, TrainConfig(task_weighting="gradnorm"))
    assert why is not None and "gradnorm" in why
