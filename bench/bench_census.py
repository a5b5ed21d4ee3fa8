"""Census-income benchmark: the paper's two tasks, 5 epochs, batch 1024, 8 experts of (16,),
towers (8,), Adam 1e-3 -- training throughput and validation AUC per task, peers vs product.

Every contender trains on the same seeded 80/20 split of ../shared/data/census-income.csv.gz
(income_50k == '50000+.', marital_stat == 'Never married'; instance_weight dropped) with its
own preprocessing and its own training loop. ``train s`` is the wall time of the whole
training call (including any per-epoch evaluation the implementation does inside it);
samples/s = epochs x training rows / train s. Preparation (encoding, tensors, loaders) is
timed separately; reading the CSV is common to all and reported once. Repeats are
interleaved (rotated order) with seed = repeat index; medians are reported.

    python -m bench.bench_census [--device cpu|cuda] [--quick] [--epochs N] [--no-bf16]
"""
from __future__ import annotations

import argparse
import functools
import time
from types import SimpleNamespace

import torch

from bench import common
from bench.common import log
from bench.peers import deepctr, plain_torch, product, rechub
from bench.peers.census_data import load_census

# the product as users get it (precision "auto": bf16 on CPUs with native bf16 and on CUDA) and, where
# that is bf16, also with precision="fp32": what a CPU without bf16 runs, like for like with the fp32 peers
product_fp32 = SimpleNamespace(NAME=f"{product.NAME} (fp32)", available=product.available, version=product.version,
                               train_census=functools.partial(product.train_census, precision="fp32"))
CONTENDERS = (product, product_fp32, plain_torch, deepctr, rechub)


def is_product(name: str) -> bool:
    return name.startswith(product.NAME)
MODEL = dict(num_experts=8, expert_hidden=(16,), tower_hidden=(8,))


def run(device: str, quick: bool, epochs: int) -> dict:
    repeats = 1 if quick else 5      # the product's fit is short, so one noisy second moves it most
    split = load_census()
    out = {"machine": common.machine_info(device), "epochs": epochs, "batch_size": 1024, "lr": 1e-3,
           "model": MODEL, "rows": len(split.frame), "n_train": len(split.train_idx), "n_val": len(split.val_idx),
           "read_seconds": split.read_seconds, "repeats": repeats, "results": {}, "versions": {}, "skipped": {},
           "load_before": common.load_1min()}
    live = []
    from mmoe.training import use_bf16
    out["product_bf16"] = use_bf16("auto", torch.device(device))
    for m in CONTENDERS:
        if m is product_fp32 and not out["product_bf16"]:
            continue            # "auto" is fp32 here already
        why = m.available()
        if why:
            out["skipped"][m.NAME] = why
        else:
            live.append(m)
            out["versions"][m.NAME] = m.version()
    runs: dict[str, list[dict]] = {m.NAME: [] for m in live}
    for r in range(repeats):
        k = r % len(live)
        for m in live[k:] + live[:k]:
            res = m.train_census(split, epochs=epochs, batch_size=1024, lr=1e-3, device=device, seed=r, **MODEL)
            runs[m.NAME].append(res)
            log(f"  repeat {r + 1}/{repeats} {m.NAME}: {res['train_seconds']:.2f} s, "
                f"{res['samples_per_second']:,.0f} samples/s, AUC {res['auc_income']:.4f} / {res['auc_marital']:.4f}")
    for name, rs in runs.items():
        agg = {key: common.median([x[key] for x in rs]) for key in rs[0] if isinstance(rs[0][key], (int, float))}
        agg["runs"] = rs
        out["results"][name] = agg
    out["load_after"] = common.load_1min()
    return out


def headline(res: dict) -> dict:
    r = res["results"]
    p = r.get(product.NAME)
    peers = {n: v for n, v in r.items() if not is_product(n)}
    if not p or not peers:
        return {}
    fastest = max(peers, key=lambda n: peers[n]["samples_per_second"])
    best_auc = max(v["auc_income"] for v in peers.values())
    h = {"speedup_vs_fastest_peer": p["samples_per_second"] / peers[fastest]["samples_per_second"],
         "fastest_peer": fastest, "auc_income_delta_vs_best_peer": p["auc_income"] - best_auc,
         "product_auc_income": p["auc_income"], "best_peer_auc_income": best_auc}
    p32 = r.get(product_fp32.NAME)
    if p32:     # what a CPU without bf16 gets: the product in fp32 against the same fp32 peers
        h.update(fp32_speedup_vs_fastest_peer=p32["samples_per_second"] / peers[fastest]["samples_per_second"],
                 fp32_auc_income_delta_vs_best_peer=p32["auc_income"] - best_auc)
    return h


def render(res: dict) -> str:
    r = res["results"]
    p = r.get(product.NAME)
    rows = []
    for n, v in sorted(r.items(), key=lambda kv: -kv[1]["samples_per_second"]):
        rows.append([n, f"{v['prep_seconds']:.2f}", f"{v['train_seconds']:.2f}", f"{v['samples_per_second']:,.0f}",
                     f"{p['samples_per_second'] / v['samples_per_second']:.2f}x" if p else "n/a",
                     f"{v['auc_income']:.4f}", f"{v['auc_marital']:.4f}"])
    h = headline(res)
    lines = ["## Census-income: training throughput and validation AUC", "",
             f"{res['rows']:,} rows ({res['n_train']:,} train / {res['n_val']:,} validation, the same seeded split "
             f"for everyone), {res['epochs']} epochs, batch {res['batch_size']}, {MODEL['num_experts']} experts of "
             f"{MODEL['expert_hidden']}, towers {MODEL['tower_hidden']}, Adam {res['lr']:g}. Median of "
             f"{res['repeats']} interleaved repeat(s) (seed = repeat). Reading the CSV (common to all): "
             f"{res['read_seconds']:.2f} s. Machine: {common.machine_line(res['machine'])}.", "",
             common.md_table(["implementation", "prep s", "train s (whole fit)", "samples/s", "product speed-up",
                              "AUC income", "AUC never-married"], rows), ""]
    if h:
        lines.append(f"Product vs fastest peer ({h['fastest_peer']}): **{h['speedup_vs_fastest_peer']:.2f}x** "
                     f"training throughput; income AUC {h['product_auc_income']:.4f} vs best peer "
                     f"{h['best_peer_auc_income']:.4f} ({h['auc_income_delta_vs_best_peer']:+.4f}).")
        if "fp32_speedup_vs_fastest_peer" in h:
            lines.append(f"The product's default precision (`auto`) trains in bf16 on this CPU; in fp32 (what a CPU "
                         f"without bf16 runs) it is **{h['fp32_speedup_vs_fastest_peer']:.2f}x** the fastest peer, "
                         f"income AUC {h['fp32_auc_income_delta_vs_best_peer']:+.4f} vs the best peer.")
    if p and "fit_reported_samples_per_second" in p:
        lines.append(f"(The product's own `fit` reports {p['fit_reported_samples_per_second']:,.0f} samples/s: "
                     "training steps only, without its per-epoch evaluation.)")
    if res.get("skipped"):
        lines.append("Skipped: " + "; ".join(f"{k} ({v})" for k, v in res["skipped"].items()))
    lines.append(f"Load average before / after: {res['load_before']} / {res['load_after']}.")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--epochs", type=int, default=None, help="default 5 (10 on cuda)")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--no-bf16", action="store_true",
                    help="run as on a CPU without native bf16: the product's auto precision is fp32 (with "
                         "ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 "
                         "also without AVX512: an emulation of such a CPU, recorded with the result)")
    a = ap.parse_args(argv)
    if a.no_bf16:
        common.emulate_no_bf16()
    epochs = a.epochs or (10 if a.device.startswith("cuda") else 5)
    t0 = time.perf_counter()
    res = run(a.device, a.quick, epochs)
    res["seconds"] = time.perf_counter() - t0
    common.write_json("census", res)
    md = render(res)
    print(md)
    if not a.no_write:
        common.update_results_md("census", md)


if __name__ == "__main__":
    main()
