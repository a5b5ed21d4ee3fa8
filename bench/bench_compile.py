"""torch.compile of the product's fused step: compile time, steady-state step time, and the not-GEMM share.

The fused step (``mmoe.nn.fused.FusedStep``) runs without autograd, so dynamo traces one call of it as one
graph, and inductor fuses its elementwise work around extern GEMM calls (C++ with OpenMP on the CPU). Two
operations of the eager step cannot be traced here: oneDNN's first-layer matmul and torch's one-kernel Adam.
The compiled step is therefore ``TraceableStep``: the same step with ``torch.mm`` and Adam as tensor operations
with a tensor step count. Its eager form is timed too, so the table separates what the compiler gains from what
the two substitutions cost. Each step's not-GEMM share is 1 - (its GEMMs alone, ``bench/roofline.py``) / step.

    python -m bench.bench_compile [--rounds 12] [--warm-cache] [--no-write]

The first compile runs against an empty inductor cache (a fresh ``TORCHINDUCTOR_CACHE_DIR``), as a user's first
run would; ``--warm-cache`` keeps the default cache. A second compile of a fresh step after ``torch._dynamo.reset()``
is timed with the cache the first one filled.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

import torch

from bench import common
from bench.bench_step import CONFIG
from bench.common import log
from bench.roofline import gemm_roofline
from bench.peers import product
from mmoe.config import TaskSpec, TrainConfig
from mmoe.nn.fused import FusedStep

TASKS = [TaskSpec("a"), TaskSpec("b")]


class TraceableStep(FusedStep):
    """``FusedStep`` with the two untraceable operations replaced: the first layer by ``torch.mm``, Adam by tensor
    operations whose bias corrections read the tensor step count (a Python count would recompile every step)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._mm = torch.mm
        self._fused_adam = None

    def _adam(self, g):
        b1, b2 = self.betas
        self.step_t.add_(1)
        self.m.lerp_(g, 1.0 - b1)
        self.v.mul_(b2).addcmul_(g, g, value=1.0 - b2)
        denom = self.v.sqrt().div_((1 - b2 ** self.step_t).sqrt()).add_(self.eps)
        self.flat.sub_(self.m / denom * (self.lr / (1 - b1 ** self.step_t)))


def _make(cls, batch_size: int, seed: int = 0):
    """(the step object, a closure running it on the next batch slice, as ``product.make_step`` does)."""
    torch.manual_seed(seed)
    model = product.build_dense_model(**CONFIG)
    step = cls(model, TASKS, TrainConfig(lr=1e-3, precision="fp32"), torch.device("cpu"), bf16=False)
    g = torch.Generator().manual_seed(seed)
    n = 8 * batch_size
    x = torch.rand(n, CONFIG["in_features"], generator=g)
    xc = torch.zeros(n, 0, dtype=torch.long)
    ys = [(torch.rand(n, generator=g) < 0.5).float() for _ in TASKS]
    ms = [torch.ones(n, dtype=torch.bool) for _ in TASKS]
    pos = [0]

    def run(fn=step):
        s = pos[0]
        sl = slice(s, s + batch_size)
        pos[0] = (s + batch_size) % (n - batch_size + 1)
        total, losses = fn(x[sl], xc[sl], [y[sl] for y in ys], [m[sl] for m in ms])
        float(total)
        return losses

    return step, run


def _compiled(batch_size: int):
    """A fresh ``TraceableStep`` compiled, and the seconds its first call took (the compile)."""
    step, run = _make(TraceableStep, batch_size)
    fn = torch.compile(step.__call__, dynamic=False)
    t0 = time.perf_counter()
    first = run(fn)
    return step, (lambda: run(fn)), time.perf_counter() - t0, first


def run_bench(batch_size: int, rounds: int, warm_cache: bool) -> dict:
    if not warm_cache:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="mmoe-inductor-")
    out = {"machine": common.machine_info("cpu"), "config": CONFIG, "batch_size": batch_size,
           "cache": "warm (default cache)" if warm_cache else "cold (empty cache dir)"}
    # numbers: the compiled step against its eager form, from one seed, over the same 5 batches
    comp, comp_run, out["compile_s"], first = _compiled(batch_size)
    ref, ref_run = _make(TraceableStep, batch_size)
    d_loss = max([float((ref_run() - first).abs().max())] + [float((ref_run() - comp_run()).abs().max())
                                                             for _ in range(4)])
    out["check"] = {"steps": 5, "max_abs_loss_diff": d_loss,
                    "max_abs_weight_diff": float((ref.flat - comp.flat).abs().max())}
    log(f"compile (first call): {out['compile_s']:.1f} s; after 5 steps |d loss| {d_loss:.2e}, "
        f"|d weights| {out['check']['max_abs_weight_diff']:.2e}")
    torch._dynamo.reset()
    _, comp_run, out["compile_again_s"], _ = _compiled(batch_size)
    log(f"compile of a fresh step after dynamo.reset (cache filled): {out['compile_again_s']:.1f} s")

    _, eager_run = _make(FusedStep, batch_size)
    _, twin_run = _make(TraceableStep, batch_size)
    steps = {"eager (the product)": eager_run, "eager, traceable form": twin_run, "compiled": comp_run}
    for st in steps.values():
        for _ in range(10):
            st()
    iters = max(5, int(0.3 / max(common.time_per_iter(eager_run, 5), 1e-5)))
    samples = common.interleaved({k: (lambda s=s: common.time_per_iter(s, iters)) for k, s in steps.items()},
                                 rounds, log)
    roof = {"eager (the product)": gemm_roofline(eager_run)["seconds"],
            "eager, traceable form": gemm_roofline(twin_run)["seconds"]}
    roof["compiled"] = roof["eager, traceable form"]          # the same GEMMs, called from the compiled code
    rows = {}
    for k, ts in samples.items():
        med = common.median(ts)
        rows[k] = {"ms_per_step": med * 1e3, "repeats": ts, "roofline_ms": roof[k] * 1e3,
                   "not_gemm_share": 1 - roof[k] / med}
    base = rows["eager (the product)"]["ms_per_step"]
    pairs = [c / e for c, e in zip(samples["compiled"], samples["eager (the product)"])]
    out.update(rows=rows, compiled_vs_eager=common.median(pairs))
    saved = (base - rows["compiled"]["ms_per_step"]) / 1e3
    out["break_even_steps"] = {k: (out[k] / saved if saved > 0 else None) for k in ("compile_s", "compile_again_s")}
    return out


def render(res: dict) -> str:
    rows = [[k, f"{r['ms_per_step']:.3f}", f"{r['roofline_ms']:.3f}", f"{100 * r['not_gemm_share']:.1f}%"]
            for k, r in res["rows"].items()]
    be = res["break_even_steps"]

    def steps(x):
        return "never" if x is None else f"{x:,.0f} steps"

    return "\n".join([
        "## torch.compile of the fused step",
        "",
        f"`python -m bench.bench_compile` — {common.machine_line(res['machine'])}; step config of `bench_step`, "
        f"batch {res['batch_size']}, fp32, median of interleaved repeats.",
        "",
        common.md_table(["step", "ms / step", "its GEMMs alone, ms", "not GEMM"], rows),
        "",
        f"Compiled vs the product's eager step: **{res['compiled_vs_eager']:.3f}x** the time (per-round median). "
        f"Compile, {res['cache']}: **{res['compile_s']:.1f} s**; again with the cache it filled: "
        f"{res['compile_again_s']:.1f} s. The compile pays after {steps(be['compile_s'])} "
        f"({steps(be['compile_again_s'])} with a filled cache). Numbers: after {res['check']['steps']} steps from one "
        f"seed the compiled step and its eager form differ by {res['check']['max_abs_loss_diff']:.1e} in the "
        f"losses and "
        f"{res['check']['max_abs_weight_diff']:.1e} in the weights (inductor sums in another order).",
    ])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch-size", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--warm-cache", action="store_true", help="use the default inductor cache (not an empty one)")
    ap.add_argument("--no-write", action="store_true", help="do not update bench/RESULTS.md")
    a = ap.parse_args(argv)
    common.seed_all(0)
    t0 = time.perf_counter()
    res = run_bench(a.batch_size, a.rounds, a.warm_cache)
    res["seconds"] = time.perf_counter() - t0
    common.write_json("compile", res)
    md = render(res)
    print(md)
    if not a.no_write:
        common.update_results_md("compile", md)


if __name__ == "__main__":
    main()
