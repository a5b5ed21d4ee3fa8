"""Step benchmark: one training step (forward + backward + optimiser step) at a fixed config.

Config: 100 dense features, 8 experts of (64, 32), 2 binary tasks, towers (16,),
linear gates, Adam; batch 1024 (and 16384 on a GPU). Every contender's step is
its own training loop's inner body on a batch already in memory (see the
adapters in bench/peers/). Reported: median ms per step over interleaved
repeats, samples/s, ratio to the product, achieved GFLOP/s and the fraction of
the machine's measured fp32 GEMM rate (FLOPs per sample: bench.common.mmoe_flops_per_sample).

    python -m bench.bench_step [--device cpu|cuda] [--quick]
"""
from __future__ import annotations

import argparse
import functools
import time
from types import SimpleNamespace

import torch

from bench import common
from bench.common import log
from bench.roofline import gemm_roofline
from bench.peers import deepctr, plain_torch, product, rechub

CONFIG = dict(in_features=100, num_experts=8, expert_hidden=(64, 32), tower_hidden=(16,))
# the product as users get it (precision "auto": bf16 GEMMs on CPUs with native bf16 and on
# CUDA) and, for an apples-to-apples fraction of the fp32 GEMM rate, with precision="fp32"
product_fp32 = SimpleNamespace(NAME=f"{product.NAME} (fp32)", available=product.available, version=product.version,
                               make_step=functools.partial(product.make_step, precision="fp32"))
# on CUDA the product replays its step as a CUDA graph (mmoe.training.cuda_graph); this row is the same step
# launched op by op, so the graph's gain is measured in the same run (and the roofline, which records the
# GEMMs as they are dispatched, has a step to record: a replay dispatches none)
product_eager = SimpleNamespace(NAME=f"{product.NAME} (no CUDA graph)", version=product.version,
                                available=product.available, cuda_only=True,
                                make_step=functools.partial(product.make_step, graph=False))
CONTENDERS = (product, product_fp32, product_eager, plain_torch, deepctr, rechub)


def is_product(name: str) -> bool:
    return name.startswith(product.NAME)


def run(device: str, quick: bool, batches=None) -> dict:
    batches = batches or ([1024, 16384] if device.startswith("cuda") else [1024])
    repeats = 3 if quick else 9
    target_s = 0.15 if quick else 0.4          # seconds per timed sample
    info = common.machine_info(device)
    gemm = common.gemm_rate(device)
    log(f"fp32 GEMM rate: {gemm['gflops']:.1f} GFLOP/s (n={gemm['size']})")
    gemm_bf16 = common.gemm_rate(device, dtype=torch.bfloat16)
    log(f"bf16 GEMM rate: {gemm_bf16['gflops']:.1f} GFLOP/s (n={gemm_bf16['size']})")
    from mmoe.training import use_bf16
    product_bf16 = use_bf16("auto", torch.device(device))
    flops = common.mmoe_flops_per_sample(CONFIG["in_features"], CONFIG["num_experts"], CONFIG["expert_hidden"],
                                         2, CONFIG["tower_hidden"])
    out = {"machine": info, "gemm": gemm, "gemm_bf16": gemm_bf16, "product_bf16": product_bf16,
           "flops_per_sample": flops, "config": CONFIG, "batches": {},
           "versions": {}, "skipped": {}}
    for bs in batches:
        steps, iters = {}, {}
        for m in CONTENDERS:
            if getattr(m, "cuda_only", False) and not device.startswith("cuda"):
                continue
            why = m.available()
            if why:
                out["skipped"][m.NAME] = why
                continue
            out["versions"][m.NAME] = m.version()
            st = m.make_step(batch_size=bs, device=device, **CONFIG)
            for _ in range(5):                          # warm-up
                st()
            t = common.time_per_iter(st, 3, device)
            steps[m.NAME] = st
            iters[m.NAME] = max(3, int(target_s / max(t, 1e-5)))
        meas = {n: (lambda s=steps[n], k=iters[n]: common.time_per_iter(s, k, device)) for n in steps}
        samples = common.interleaved(meas, repeats, log)
        rows = {}
        for n, ts in samples.items():
            med = common.median(ts)
            rate = bs / med
            rows[n] = {"ms_per_step": med * 1e3, "samples_per_second": rate, "repeats": ts,
                       "gflops": rate * flops["train"] / 1e9,
                       "fraction_of_gemm": rate * flops["train"] / 1e9 / gemm["gflops"],
                       "fraction_of_gemm_strict": rate * flops["train_strict"] / 1e9 / gemm["gflops"]}
        # the step's own limit: its GEMMs, each timed alone at its shapes and strides (bench/roofline.py)
        for n, st in steps.items():
            if is_product(n):
                roof = gemm_roofline(st, device)
                if not roof["calls"]:     # a CUDA graph's replay (see product_eager)
                    continue
                rows[n].update(roofline_ms=roof["seconds"] * 1e3, roofline_gflops=roof["gflops"],
                               not_gemm_share=1 - roof["seconds"] * 1e3 / rows[n]["ms_per_step"],
                               gemms=roof["gemms"])
                log(f"  {n}: its GEMMs alone {roof['seconds'] * 1e3:.3f} ms of {rows[n]['ms_per_step']:.3f} ms "
                    f"({100 * rows[n]['not_gemm_share']:.1f}% not GEMM)")
        out["batches"][str(bs)] = rows
    out["load_after"] = common.load_1min()
    return out


def render(res: dict) -> str:
    f = res["flops_per_sample"]
    g = res["gemm"]
    lines = ["## Step: forward + backward + optimiser step",
             "",
             f"Config: {res['config']['in_features']} dense features, {res['config']['num_experts']} experts of "
             f"{tuple(res['config']['expert_hidden'])}, 2 tasks, towers {tuple(res['config']['tower_hidden'])}, "
             "linear gates, Adam. Median of interleaved repeats.",
             "",
             f"Machine fp32 GEMM rate (median `torch.mm`, best of n in {list(g['per_size'])}): "
             f"**{g['gflops']:.1f} GFLOP/s** (n={g['size']}). FLOPs per sample: forward {f['forward']:,} "
             f"(= 2 x {f['macs']:,} MACs), training {f['train']:,} (= 3 x forward); the strict count without "
             f"the unneeded input-gradient of the input layers is {f['train_strict']:,}.",
             ""]
    gb = res.get("gemm_bf16")
    if gb:
        lines += [f"Machine bf16 GEMM rate: **{gb['gflops']:.1f} GFLOP/s** (n={gb['size']}). The product's default "
                  f"precision (`auto`) {'runs its GEMMs in bf16 here (native AVX512-BF16/AMX or CUDA)' if res.get('product_bf16') else 'is fp32 here'}"
                  "; the `(fp32)` row is the same product with `precision=\"fp32\"`, the like-for-like "
                  "comparison with the fp32 peers and the fp32 GEMM rate. `% of bf16 rate` applies to bf16 runs.",
                  ""]
    for bs, rows in res["batches"].items():
        ref = rows.get(product.NAME)
        ref32 = rows.get(product_fp32.NAME)
        best_peer = max((r["samples_per_second"] for n, r in rows.items() if not is_product(n)), default=None)
        table = []
        for n, r in sorted(rows.items(), key=lambda kv: -kv[1]["samples_per_second"]):
            bf16_row = n == product.NAME and res.get("product_bf16") and gb
            table.append([n, f"{r['ms_per_step']:.2f}", f"{r['samples_per_second']:,.0f}",
                          f"{ref['samples_per_second'] / r['samples_per_second']:.2f}x" if ref else "n/a",
                          f"{r['gflops']:.1f}", f"{100 * r['fraction_of_gemm']:.1f}%",
                          f"{100 * r['fraction_of_gemm_strict']:.1f}%",
                          f"{100 * r['gflops'] / gb['gflops']:.1f}%" if bf16_row else "—"])
        lines += [f"Batch {bs}:", "",
                  common.md_table(["implementation", "ms / step (median)", "samples/s", "product speed-up",
                                   "GFLOP/s", "% of fp32 GEMM rate (3x fwd)", "% (strict count)",
                                   "% of bf16 rate"], table), ""]
        if ref and best_peer:
            lines.append(f"Product vs best peer: **{ref['samples_per_second'] / best_peer:.2f}x**; "
                         f"product at **{100 * ref['fraction_of_gemm']:.1f}%** of the fp32 GEMM rate"
                         + (f" (its GEMMs run in bf16: {100 * ref['gflops'] / gb['gflops']:.1f}% of the bf16 rate)"
                            if res.get("product_bf16") and gb else "") + ".")
            if ref32:
                lines.append(f"Product in fp32: **{ref32['samples_per_second'] / best_peer:.2f}x** the best peer, "
                             f"**{100 * ref32['fraction_of_gemm']:.1f}%** of the fp32 GEMM rate.")
            for n in (product.NAME, product_fp32.NAME):
                r = rows.get(n)
                if r and "roofline_ms" in r:
                    lines.append(f"Roofline of {n} (`bench/roofline.py`: the step's {sum(g['calls'] for g in r['gemms'])} "
                                 f"GEMMs, each timed alone at its own shapes): **{r['roofline_ms']:.3f} ms** "
                                 f"({r['roofline_gflops']:.1f} GFLOP/s) of its {r['ms_per_step']:.3f} ms step; "
                                 f"everything that is not a GEMM is **{100 * r['not_gemm_share']:.1f}%** of the step "
                                 "(target <= 25%).")
            lines.append("")
    if res.get("skipped"):
        lines.append("Skipped: " + "; ".join(f"{k} ({v})" for k, v in res["skipped"].items()))
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-write", action="store_true", help="do not update bench/RESULTS.md")
    ap.add_argument("--no-bf16", action="store_true", help="run as on a CPU without native bf16 (see bench_census)")
    a = ap.parse_args(argv)
    if a.no_bf16:
        common.emulate_no_bf16()
    common.seed_all(0)
    t0 = time.perf_counter()
    res = run(a.device, a.quick)
    res["seconds"] = time.perf_counter() - t0
    common.write_json("step", res)
    md = render(res)
    print(md)
    if not a.no_write:
        common.update_results_md("step", md)


if __name__ == "__main__":
    main()
