"""The step's real limit: the GEMMs it runs, each timed alone at its own shapes and strides.

A training step is GEMMs plus everything else (gathers, elementwise work, reductions, the
optimiser). ``gemm_roofline(step)`` runs one step under a ``TorchDispatchMode`` that records
every matrix product the step calls (``mm``, ``addmm``, ``bmm``, ``baddbmm`` and their ``out=``
forms, and oneDNN's ``mkldnn::_linear_pointwise``, which the fp32 CPU step uses for its first layer) with copies of its operands at their exact sizes, strides and dtypes; then it replays
each recorded call alone, warm, and takes the median time. The sum of those medians is the
time this computation needs if nothing but its GEMMs cost anything: a roofline of *this*
computation, at its own (small, oddly shaped) GEMMs, which is tighter and fairer than the
2048 x 2048 GEMM rate. ``step time - roofline`` is the part that is not a GEMM.

    python -m bench.roofline            # the step config of bench_step, the product in fp32 and default precision
"""
from __future__ import annotations

import time
from collections import Counter

import torch
from torch.utils._python_dispatch import TorchDispatchMode

GEMMS = {"mm", "addmm", "bmm", "baddbmm", "_linear_pointwise"}


def _copy(t):
    if not isinstance(t, torch.Tensor):
        return t
    c = torch.empty_strided(t.shape, t.stride(), dtype=t.dtype, device=t.device)
    c.copy_(t)
    return c


def _flops(name: str, args) -> int:
    if name == "_linear_pointwise":                    # input [n, k] @ weight [o, k].T
        return 2 * args[0].shape[0] * args[0].shape[1] * args[1].shape[0]
    a, b = (args[0], args[1]) if name in ("mm", "bmm") else (args[1], args[2])
    if a.dim() == 2:
        return 2 * a.shape[0] * a.shape[1] * b.shape[1]
    return 2 * a.shape[0] * a.shape[1] * a.shape[2] * b.shape[2]


def _key(name, args) -> tuple:
    return (name,) + tuple((tuple(x.shape), tuple(x.stride()), str(x.dtype)) for x in args
                           if isinstance(x, torch.Tensor))


class _Recorder(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.calls: list[tuple[str, tuple, dict]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = func.overloadpacket.__name__
        if name in GEMMS:
            self.calls.append((name, tuple(_copy(a) for a in args), {k: _copy(v) for k, v in kwargs.items()}))
        return func(*args, **kwargs)


def record_gemms(step) -> list[tuple[str, tuple, dict]]:
    """The matrix products one call of ``step()`` runs, with copies of their operands."""
    rec = _Recorder()
    with rec:
        step()
    return rec.calls


def _time(fn, sync, target_s: float = 0.02, repeats: int = 7) -> float:
    fn()
    sync()
    t0 = time.perf_counter()
    fn()
    sync()
    once = max(time.perf_counter() - t0, 1e-6)
    iters = max(1, int(target_s / once))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(iters):
            fn()
        sync()
        times.append((time.perf_counter() - t0) / iters)
    times.sort()
    return times[len(times) // 2]


def gemm_roofline(step, device: str = "cpu") -> dict:
    """Seconds the GEMMs of one ``step()`` take when each runs alone (median of warm repeats), their
    FLOPs, and one row per distinct GEMM (op, shapes, strides, dtype, calls per step, us per call)."""
    calls = record_gemms(step)
    sync = torch.cuda.synchronize if str(device).startswith("cuda") else (lambda: None)
    counts = Counter(_key(n, a) for n, a, _ in calls)
    seen: dict[tuple, dict] = {}
    for name, args, kwargs in calls:
        k = _key(name, args)
        if k in seen:
            continue
        ns = torch.ops.mkldnn if name == "_linear_pointwise" else torch.ops.aten
        fn = getattr(ns, name).default if "out" not in kwargs else getattr(ns, name).out
        sec = _time(lambda: fn(*args, **kwargs), sync)
        seen[k] = {"op": name, "shapes": [list(x.shape) for x in args if isinstance(x, torch.Tensor)],
                   "dtype": str(args[-1].dtype if isinstance(args[-1], torch.Tensor) else args[0].dtype),
                   "calls": counts[k], "us": sec * 1e6, "flops": _flops(name, args)}
    rows = sorted(seen.values(), key=lambda r: -r["us"] * r["calls"])
    total = sum(r["us"] * r["calls"] for r in rows) / 1e6
    flops = sum(r["flops"] * r["calls"] for r in rows)
    return {"seconds": total, "flops": flops, "gflops": flops / total / 1e9 if total else 0.0, "gemms": rows,
            "calls": len(calls)}


def main(argv=None) -> None:
    import argparse

    from bench import common
    from bench.bench_step import CONFIG
    from bench.peers import product

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch-size", type=int, default=1024)
    a = ap.parse_args(argv)
    print(common.machine_line(common.machine_info(a.device)))
    for precision in ("fp32", "auto"):
        st = product.make_step(device=a.device, batch_size=a.batch_size, precision=precision, **CONFIG)
        for _ in range(20):
            st()
        step_s = common.median([common.time_per_iter(st, 50, a.device) for _ in range(7)])
        roof = gemm_roofline(st, a.device)
        print(f"\nproduct, precision {precision}: step {step_s * 1e3:.3f} ms, its {roof['calls']} GEMMs alone "
              f"{roof['seconds'] * 1e3:.3f} ms ({roof['gflops']:.1f} GFLOP/s); not GEMM "
              f"{100 * (1 - roof['seconds'] / step_s):.1f}% of the step")
        for r in roof["gemms"]:
            print(f"  {r['op']:8s} x{r['calls']} {r['us']:8.1f} us  {r['dtype']:14s} {r['shapes']}")


if __name__ == "__main__":
    main()
