"""GraphedStep (mmoe.training.cuda_graph): its bookkeeping, on the CPU, with a stand-in for torch.cuda.graph.

The stand-in keeps a CUDA graph's contract: capturing runs nothing (here: it runs the step and puts the
state back), the outputs it returns are the ones every replay overwrites, and a replay computes on the
captured (static) inputs only. So a GraphedStep that forgot to copy a batch into the static inputs, or
counted Adam's steps wrongly, or kept a bad capture, trains differently from the eager step, and these
tests see it. The real capture runs in tests/test_gpu.py.
"""
import contextlib
import copy

import pytest
import torch

from mmoe.config import ModelConfig, TrainConfig
from mmoe.nn import build_model
from mmoe.training import TrainStep
from mmoe.training.cuda_graph import WARMUP, GraphedStep

CPU = torch.device("cpu")


class StandIn:
    """capture(fn) -> (replay, outputs), like ``cuda_graph._cuda_capture``; ``fail``: capturing raises;
    ``skew``: every replay adds this to the losses it writes (a graph that computes something else)."""

    def __init__(self, fused, *, fail: str | None = None, skew: float = 0.0):
        self.fused, self.fail, self.skew = fused, fail, skew
        self.captures = 0

    def _state(self):
        f = self.fused
        return [f.flat, f.m, f.v, f.step_t]

    def __call__(self, fn):
        self.captures += 1
        if self.fail is not None:
            raise RuntimeError(self.fail)
        saved, t = [s.clone() for s in self._state()], self.fused.t
        out = tuple(o.clone() for o in fn())          # a real capture runs nothing: put the state back
        for s, v in zip(self._state(), saved):
            s.copy_(v)
        self.fused.t = t

        def replay():
            t = self.fused.t                          # (a replay does not touch Python-side state)
            total, losses = fn()
            self.fused.t = t
            out[0].copy_(total)
            out[1].copy_(losses + self.skew)

        return replay, out


def _steps(data):
    """Two fused TrainSteps on copies of one model: one eager, one whose fused step gets wrapped."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(num_experts=3, expert_hidden=(8, 6), tower_hidden=(4,)), data)
    cfg = TrainConfig(precision="fp32", lr=1e-2, device="cpu")
    eager = TrainStep(copy.deepcopy(model), data.tasks, cfg, CPU)
    graphed = TrainStep(copy.deepcopy(model), data.tasks, cfg, CPU)
    assert eager.fused is not None and graphed.fused is not None
    return eager, graphed


def _batches(data, sizes):
    names = [t.column for t in data.tasks]
    out, start = [], 0
    for b in sizes:
        rows = torch.arange(start, start + b) % len(data.x_num)
        start += b
        codes = data.x_cat[rows]
        out.append((data.x_num[rows], codes, [data.y[n][rows] for n in names], [data.mask[n][rows] for n in names]))
    return out


def _run(step, runner, batches):
    losses = []
    for xn, xc, ys, ms in batches:
        codes = step.fused.cat_codes(xc)
        _, ls = runner(xn, None, ys, ms, codes=codes)
        losses.append(ls)
    return losses


def test_replays_train_like_the_eager_step(data):
    """Full batches replay the graph (after WARMUP eager ones and the checked capture); the last, shorter
    batch of an epoch runs eagerly, and is neither warm-up nor captured although it comes fourth here;
    losses, weights, Adam's moments and its step count match."""
    eager, graphed = _steps(data)
    standin = StandIn(graphed.fused)
    runner = GraphedStep(graphed.fused, capture=standin, side_stream=contextlib.nullcontext)
    sizes = [16, 16, 16, 5] * 3                # three epochs of three full batches and a short one
    batches = _batches(data, sizes)
    want = _run(eager, eager, batches)
    got = _run(graphed, runner, batches)
    for i, (a, b) in enumerate(zip(got, want)):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0, msg=lambda m: f"batch {i}: {m}")
    f, e = graphed.fused, eager.fused
    for name in ("flat", "m", "v", "step_t"):
        torch.testing.assert_close(getattr(f, name), getattr(e, name), atol=1e-6, rtol=0)
    assert f.t == e.t == len(sizes) and float(f.step_t) == len(sizes)
    assert standin.captures == 1 and runner.why is None
    assert runner.replays == 9 - WARMUP            # the full batches after the warm-up, the captured one included
    assert runner.describe() == f"CUDA graph, {9 - WARMUP} replays" and runner.static[0].shape[0] == 16


@pytest.mark.parametrize("fault", ["fail", "skew", "fail-silently"])
def test_a_bad_capture_is_dropped_and_training_goes_on_eagerly(data, fault):
    """A capture that raises, or whose replay disagrees with the eager step, is not used: that batch keeps
    the eager step's result and every later batch runs eagerly, with the eager step's numbers."""
    eager, graphed = _steps(data)
    standin = StandIn(graphed.fused, fail={"fail": "operation not permitted when stream is capturing",
                                           "fail-silently": ""}.get(fault), skew=0.5 if fault == "skew" else 0.0)
    runner = GraphedStep(graphed.fused, capture=standin, side_stream=contextlib.nullcontext)
    batches = _batches(data, [16] * 7)
    want = _run(eager, eager, batches)
    got = _run(graphed, runner, batches)
    for i, (a, b) in enumerate(zip(got, want)):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0, msg=lambda m: f"batch {i}: {m}")
    torch.testing.assert_close(graphed.fused.flat, eager.fused.flat, atol=1e-6, rtol=0)
    assert graphed.fused.t == eager.fused.t == 7 and float(graphed.fused.step_t) == 7
    assert standin.captures == 1 and runner.replay is None and runner.replays == 0
    assert runner.why.startswith({"fail": "the capture failed (RuntimeError: operation not permitted",
                                  "fail-silently": "the capture failed (RuntimeError: )",
                                  "skew": "its replay disagreed with the eager step (relative difference 0."}[fault])
    assert runner.describe() == f"no CUDA graph: {runner.why}"


def test_only_the_fused_step_on_cuda_is_graphed(data):
    eager, _ = _steps(data)
    assert eager.graphed is None and eager.graph_unsupported == "not on CUDA" and eager.describe() == "fused"
    cuda = torch.device("cuda")
    assert GraphedStep.unsupported(eager, cuda, None) is None
    assert GraphedStep.unsupported(eager, cuda, object()).startswith("data-parallel")
    eager.fused._fused_adam = None
    assert "no fused Adam" in GraphedStep.unsupported(eager, cuda, None)
    topk = TrainStep(build_model(ModelConfig(num_experts=3, top_k=2), data), data.tasks, TrainConfig(), CPU)
    assert GraphedStep.unsupported(topk, cuda, None) == "not the fused step"
    assert topk.describe().startswith("autograd (")
