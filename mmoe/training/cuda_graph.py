"""The fused step on CUDA captured once as a CUDA graph and replayed for every full batch (``GraphedStep``).

A small model's step on a GPU is about 90 kernel launches of a few microseconds of work each, so the
launches, not the arithmetic, set its speed. A CUDA graph records the launches once and replays them as
one. What makes the fused step capturable: no host synchronisation inside it, fixed shapes for a full
batch, and Adam's step count kept as a tensor (``kernels.fused_adam``), so the replays keep counting.

How it runs, per ``TrainStep``:

* the first ``WARMUP`` full batches run eagerly, on a side stream (what capture needs: cuBLAS handles and
  workspaces made before it);
* the next full batch is run eagerly as the reference, the state put back, the step captured on copies of
  that batch (static inputs) and replayed once: the replay must give the reference's losses and weights,
  else the graph is dropped and the reference kept (``why`` says so). A capture that fails is dropped the
  same way; training goes on eagerly, with the same numbers;
* then each full batch is copied into the static inputs and the graph replayed. A full batch is one of
  the size of the first batch (every epoch starts with one); a batch of another size (the last of an
  epoch) runs eagerly, and never counts towards the warm-up or becomes the captured one.

``GraphedStep.unsupported(step, device, world)`` says why a step is not graphed (CPU, autograd step,
data-parallel: its gradient all-reduce is not captured, no fused Adam kernel in this torch).
"""
from __future__ import annotations

import contextlib
from typing import Callable, Sequence

import torch
from torch import Tensor

WARMUP = 3     # eager full batches before the capture (the PyTorch CUDA-graph recipe uses a few)


def _cuda_capture(fn: Callable[[], tuple[Tensor, Tensor]]):
    """Record ``fn()`` as a CUDA graph (nothing runs); (replay, the outputs the replays write). Capture errors
    are checked in this thread only ("thread_local"): the dashboard trains in a background thread, and with
    torch's default ("global") a CUDA call of its other threads during the capture would fail there."""
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, capture_error_mode="thread_local"):
        out = fn()
    return graph.replay, out


class GraphedStep:
    """Calls like ``FusedStep``: ``(x_num, x_cat, ys, masks, codes=...) -> (total, losses)``."""

    def __init__(self, fused, *, capture=_cuda_capture, side_stream: Callable | None = None,
                 tolerance: float = 1e-6):
        self.fused = fused
        self.capture = capture
        self.side_stream = side_stream if side_stream is not None else _side_stream
        self.tolerance = tolerance
        self.size: int | None = None     # rows of a full batch (the first batch's)
        self.warm = 0                    # eager full batches run so far, before the capture
        self.replay: Callable | None = None
        self.static: list[Tensor] = []   # the captured inputs: x_num, codes (or x_cat), ys..., masks...
        self.out: tuple[Tensor, Tensor] | None = None
        self.replays = 0
        self.why: str | None = None      # why no graph is used (None: in use, or not captured yet)

    @staticmethod
    def unsupported(step, device: torch.device, world) -> str | None:
        if device.type != "cuda":
            return "not on CUDA"
        if step.fused is None:
            return "not the fused step"
        if world is not None:
            return "data-parallel (the gradient all-reduce is not captured)"
        if step.fused._fused_adam is None:
            return "this torch has no fused Adam kernel (the step count must be a tensor)"
        return None

    def describe(self) -> str:
        if self.replay is not None:
            return f"CUDA graph, {self.replays} replays"
        return f"no CUDA graph: {self.why}" if self.why else "no CUDA graph yet"

    def __call__(self, x_num: Tensor, x_cat: Tensor | None, ys: Sequence[Tensor], masks: Sequence[Tensor], *,
                 codes: Tensor | None = None) -> tuple[Tensor, Tensor]:
        f = self.fused
        inputs = [x_num, codes if codes is not None else x_cat, *ys, *masks]
        if self.size is None:
            self.size = x_num.shape[0]
        if self.why is not None or x_num.shape[0] != self.size:
            return f(x_num, x_cat, ys, masks, codes=codes)         # (another batch size: eagerly)
        if self.replay is not None:
            if not all(a.shape == s.shape for a, s in zip(inputs, self.static)):
                return f(x_num, x_cat, ys, masks, codes=codes)
            for s, a in zip(self.static, inputs):
                s.copy_(a)
            self.replay()
            self.replays += 1
            f.t += 1
            return self.out[0].clone(), self.out[1].clone()
        if self.warm < WARMUP:
            self.warm += 1
            with self.side_stream():
                return f(x_num, x_cat, ys, masks, codes=codes)   # (the outputs: tiny, kept alive by the caller)
        return self._capture(inputs, codes is not None)

    def _state(self) -> list[Tensor]:
        f = self.fused
        return [f.flat, f.m, f.v, f.step_t]

    def _capture(self, inputs: list[Tensor], as_codes: bool) -> tuple[Tensor, Tensor]:
        """The reference step on this batch, then the capture, checked against it by one replay."""
        f = self.fused
        t = len(f.names)

        def call(xs: list[Tensor]):
            x_num, second, ys, masks = xs[0], xs[1], xs[2:2 + t], xs[2 + t:]
            return f(x_num, None if as_codes else second, ys, masks, codes=second if as_codes else None)

        before = [s.clone() for s in self._state()]
        t0 = f.t
        ref = [r.clone() for r in call(inputs)]
        after = [s.clone() for s in self._state()]

        def keep_reference(why: str):
            for s, a in zip(self._state(), after):
                s.copy_(a)
            f.t = t0 + 1
            self.why = why
            return ref[0], ref[1]

        for s, b in zip(self._state(), before):
            s.copy_(b)
        static = [a.clone() for a in inputs]
        try:
            replay, out = self.capture(lambda: call(static))    # (torch.cuda.graph captures on a stream of its own)
            f.t = t0
            replay()
        except Exception as e:   # noqa: BLE001 (whatever capture refuses, training goes on eagerly)
            first = (str(e).splitlines() or [""])[0][:200]
            return keep_reference(f"the capture failed ({type(e).__name__}: {first})")
        f.t = t0 + 1
        # |replay - eager| / (1 + |eager|): absolute for small values, relative for large ones (expected: 0)
        diffs = [float(((a.float() - b.float()).abs() / (1 + b.float().abs())).max()) if a.numel() else 0.0
                 for a, b in zip([*out, *self._state()], [*ref, *after])]
        if max(diffs) > self.tolerance:
            return keep_reference(f"its replay disagreed with the eager step (relative difference {max(diffs):.3g})")
        self.replay, self.static, self.out, self.replays = replay, static, out, 1
        return out[0].clone(), out[1].clone()


@contextlib.contextmanager
def _side_stream():
    """Run on a fresh CUDA stream that waits for the current one, which then waits for it."""
    main = torch.cuda.current_stream()
    side = torch.cuda.Stream()
    side.wait_stream(main)
    with torch.cuda.stream(side):
        yield
    main.wait_stream(side)
