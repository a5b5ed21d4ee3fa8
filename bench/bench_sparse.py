"""Sparse top-k gating: 16 wide experts (hidden 512), top-1 and top-2 vs dense gating.

The product's ``MMoE(in_features=100, tasks={a, b}, num_experts=16, expert_hidden=(512,),
tower_hidden=(16,), top_k=k)``; forward + backward (summed BCE + the balance loss) at
batch 1024 on a resident batch. With two tasks a row is computed by the union of the
experts its two gates pick (at most 2 of 16 for top-1, 4 of 16 for top-2), so the
ideal expert-compute ratios are 8x (top-1) and 4x (top-2). Median of interleaved repeats.

    python -m bench.bench_sparse [--device cpu|cuda] [--quick]
"""
from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from bench import common
from bench.common import log

CONFIG = dict(in_features=100, num_experts=16, expert_hidden=(512,), tower_hidden=(16,))


def make(top_k, batch_size, device, seed=0):
    from mmoe import MMoE

    torch.manual_seed(seed)
    model = MMoE(CONFIG["in_features"], {"a": 1, "b": 1}, num_experts=CONFIG["num_experts"],
                 expert_hidden=CONFIG["expert_hidden"], tower_hidden=CONFIG["tower_hidden"], top_k=top_k).to(device)
    model.train()
    x = torch.randn(batch_size, CONFIG["in_features"], device=device)
    y = (torch.rand(batch_size, 2, device=device) < 0.5).float()
    stats = {}

    def step():
        model.zero_grad(set_to_none=True)
        out = model(x)
        loss = sum(F.binary_cross_entropy_with_logits(out.preds[k][:, 0], y[:, i]) for i, k in enumerate("ab"))
        (loss + out.aux_loss).backward()
        if "experts_per_row" not in stats:
            stats["experts_per_row"] = float((out.gates > 0).any(0).sum(-1).float().mean())
        return loss

    return step, stats


def run(device: str, quick: bool, batch_size: int = 1024) -> dict:
    repeats = 3 if quick else 9
    target_s = 0.15 if quick else 0.4
    variants = {"dense": None, "top-2": 2, "top-1": 1}
    steps, iters, stats = {}, {}, {}
    for name, k in variants.items():
        st, s = make(k, batch_size, device)
        for _ in range(5):
            st()
        t = common.time_per_iter(st, 3, device)
        steps[name], stats[name], iters[name] = st, s, max(3, int(target_s / max(t, 1e-5)))
    meas = {n: (lambda s=steps[n], k=iters[n]: common.time_per_iter(s, k, device)) for n in steps}
    samples = common.interleaved(meas, repeats, log)
    rows = {n: {"ms": common.median(ts) * 1e3, "repeats": ts, **stats[n]} for n, ts in samples.items()}
    return {"machine": common.machine_info(device), "config": CONFIG, "batch_size": batch_size, "rows": rows}


def render(res: dict) -> str:
    rows = res["rows"]
    dense = rows["dense"]["ms"]
    table = [[n, f"{r['ms']:.2f}", f"{r['experts_per_row']:.2f}", f"{dense / r['ms']:.2f}x",
              f"{16 / r['experts_per_row']:.1f}x"] for n, r in rows.items()]
    c = res["config"]
    return "\n".join([
        "## Sparse top-k gating vs dense", "",
        f"Product `MMoE`, {c['num_experts']} experts of {c['expert_hidden']}, {c['in_features']} inputs, 2 tasks, "
        f"towers {c['tower_hidden']}, batch {res['batch_size']}; forward + backward, median of interleaved repeats.",
        "",
        common.md_table(["gating", "ms fwd+bwd (median)", "experts run per row", "speed-up vs dense",
                         "ideal (16 / experts per row)"], table), "",
        f"Top-1 vs dense: **{dense / rows['top-1']['ms']:.2f}x**; top-2 vs dense: "
        f"**{dense / rows['top-2']['ms']:.2f}x**."])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-write", action="store_true")
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    res = run(a.device, a.quick)
    res["seconds"] = time.perf_counter() - t0
    common.write_json("sparse", res)
    md = render(res)
    print(md)
    if not a.no_write:
        common.update_results_md("sparse", md)


if __name__ == "__main__":
    main()
