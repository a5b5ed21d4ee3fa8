"""Where the product's time goes: torch.profiler summaries of the census fit and the step config.

census: one ``mmoe.training.fit`` (2 epochs, the census config) split into training steps,
per-epoch evaluation (``mmoe.training.evaluate``) and the rest, plus the top operators by
self CPU time. step: 20 steps of the step config (bench_step) by operator and input shape.

    python -m bench.bench_profile [--device cpu|cuda] [--quick]
"""
from __future__ import annotations

import argparse
import time

from torch.profiler import ProfilerActivity, profile

from bench import common


def _top(prof, n=12, by_shape=False) -> list[dict]:
    rows = []
    avgs = prof.key_averages(group_by_input_shape=by_shape)
    total = sum(e.self_cpu_time_total for e in avgs) or 1
    for e in sorted(avgs, key=lambda e: -e.self_cpu_time_total)[:n]:
        rows.append({"op": e.key, "shapes": str(e.input_shapes)[:80] if by_shape else "",
                     "self_ms": e.self_cpu_time_total / 1e3, "share": e.self_cpu_time_total / total,
                     "calls": e.count})
    return rows


def census(device: str, epochs: int) -> dict:
    import mmoe.training.loop as T   # fit looks evaluate up here
    from mmoe.data import prepare
    from mmoe.nn import build_model
    from bench.peers import product
    from bench.peers.census_data import load_census

    split = load_census()
    dc, mc, tc = product.census_configs(epochs=epochs, device=device)
    data = prepare(split.frame, dc)
    T.fit(build_model(mc, data), data, tc)                      # warm-up
    spent = {"evaluate": 0.0}
    real_eval = T.evaluate

    def timed_eval(*a, **k):
        t0 = time.perf_counter()
        try:
            return real_eval(*a, **k)
        finally:
            spent["evaluate"] += time.perf_counter() - t0

    T.evaluate = timed_eval
    try:
        model = build_model(mc, data)
        t0 = time.perf_counter()
        res = T.fit(model, data, tc)
        wall = time.perf_counter() - t0
    finally:
        T.evaluate = real_eval
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        T.fit(build_model(mc, data), data, tc)
    return {"epochs": epochs, "fit_wall": wall, "steps": res.train_seconds, "evaluate": spent["evaluate"],
            "other": wall - res.train_seconds - spent["evaluate"], "inputs": data.num_numeric + sum(data.embedding_dims),
            "numeric": data.num_numeric, "categorical": len(data.cardinalities), "top": _top(prof)}


def step(device: str) -> dict:
    from bench.bench_step import CONFIG
    from bench.peers import product

    st = product.make_step(device=device, **CONFIG)
    for _ in range(10):
        st()
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        for _ in range(20):
            st()
    return {"top": _top(prof, 14, by_shape=True)}


def render(res: dict) -> str:
    c, s = res["census"], res["step"]
    def tab(rows, shapes=False):
        return common.md_table(["op"] + (["input shapes"] if shapes else []) + ["self ms", "share", "calls"],
                               [[r["op"]] + ([r["shapes"].replace("|", "/")] if shapes else []) +
                                [f"{r['self_ms']:.1f}", f"{100 * r['share']:.1f}%", str(r["calls"])] for r in rows])
    return "\n".join([
        "## Profile of the product", "",
        f"Census `fit` ({c['epochs']} epochs, {c['inputs']} model inputs = {c['numeric']} numeric + embeddings of "
        f"{c['categorical']} categorical columns): wall {c['fit_wall']:.2f} s = training steps {c['steps']:.2f} s "
        f"({100 * c['steps'] / c['fit_wall']:.0f}%) + per-epoch evaluation {c['evaluate']:.2f} s "
        f"({100 * c['evaluate'] / c['fit_wall']:.0f}%) + other {c['other']:.2f} s.", "",
        "Top operators, census fit (self CPU time):", "", tab(c["top"]), "",
        "Top operators, step config (20 steps, batch 1024), by input shape:", "", tab(s["top"], True)])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-write", action="store_true")
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    res = {"machine": common.machine_info(a.device), "census": census(a.device, 2), "step": step(a.device)}
    res["seconds"] = time.perf_counter() - t0
    common.write_json("profile", res)
    md = render(res)
    print(md)
    if not a.no_write:
        common.update_results_md("profile", md)


if __name__ == "__main__":
    main()
