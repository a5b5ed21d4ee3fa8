"""Scaling: the product's training time and peak memory as rows and columns grow.

Synthetic data from ``mmoe.synthetic.paper_synthetic`` (two regression tasks);
model 8 experts of (64, 32), towers (16,), batch 1024, 1 epoch. Rows sweep at 10
columns: 10k -> 100k -> 1M; column sweep at 20k rows: 10 -> 100 -> 1,000. Every
point runs in its own subprocess so its peak RSS (``ru_maxrss``) is its own;
times are medians of 3 fits in that process (1 with --quick). ``fit s`` is the
whole ``mmoe.training.fit`` call (steps + its per-epoch evaluation); ``us / row``
divides the training-step time by the training rows, so a flat column means
linear cost.

    python -m bench.bench_scaling [--device cpu|cuda] [--quick]
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

from bench import common
from bench.common import log

ROWS = [10_000, 100_000, 1_000_000]
COLS = [10, 100, 1000]
COL_SWEEP_ROWS = 20_000


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def point(rows: int, cols: int, device: str, repeats: int) -> dict:
    """One scaling point (runs inside its own process)."""
    import torch

    from mmoe.config import DataConfig, ModelConfig, TaskSpec, TrainConfig
    from mmoe.data import prepare
    from mmoe.nn import build_model
    from mmoe.synthetic import paper_synthetic
    from mmoe.training import fit

    base = rss_mib()
    t0 = time.perf_counter()
    frame = paper_synthetic(n_rows=rows, n_features=cols, seed=0, decimals=None)
    gen = time.perf_counter() - t0
    dc = DataConfig(tasks=(TaskSpec("y1", "regression"), TaskSpec("y2", "regression")), val_fraction=0.2, seed=0)
    t0 = time.perf_counter()
    data = prepare(frame, dc)
    prep = time.perf_counter() - t0
    del frame
    after_data = rss_mib()
    mc = ModelConfig(num_experts=8, expert_hidden=(64, 32), tower_hidden=(16,))
    tc = TrainConfig(epochs=1, batch_size=1024, device=device, seed=0)
    fits, steps = [], []
    for r in range(repeats):
        torch.manual_seed(r)
        model = build_model(mc, data)
        t0 = time.perf_counter()
        res = fit(model, data, tc)
        common.sync(device)
        fits.append(time.perf_counter() - t0)
        steps.append(res.train_seconds)
    n_train = int(data.splits["train"].numel())
    out = {"rows": rows, "cols": cols, "n_train": n_train, "gen_seconds": gen, "prep_seconds": prep,
           "fit_seconds": common.median(fits), "step_seconds": common.median(steps),
           "us_per_row": common.median(steps) / n_train * 1e6,
           "data_mib": (data.x_num.numel() * 4 + data.x_cat.numel() * 8) / 2 ** 20,
           "rss_base_mib": base, "rss_after_data_mib": after_data, "rss_peak_mib": rss_mib()}
    if device.startswith("cuda"):
        out["cuda_peak_mib"] = __import__("torch").cuda.max_memory_allocated() / 2 ** 20
    return out


def run(device: str, quick: bool) -> dict:
    rows_sweep = ROWS[:2] if quick else ROWS
    repeats = 1 if quick else 3
    pts = [(r, 10) for r in rows_sweep] + [(COL_SWEEP_ROWS, c) for c in COLS]
    results = []
    for rows, cols in pts:
        cmd = [sys.executable, "-m", "bench.bench_scaling", "--point", f"{rows},{cols}", "--device", device,
               "--repeats", str(repeats)]
        p = subprocess.run(cmd, capture_output=True, text=True, cwd=str(common.REPO))
        if p.returncode != 0:
            raise RuntimeError(f"scaling point {rows}x{cols} failed:\n{p.stderr[-3000:]}")
        res = json.loads(p.stdout.strip().splitlines()[-1])
        log(f"  {rows:>9,} rows x {cols:>4} cols: fit {res['fit_seconds']:.2f} s, {res['us_per_row']:.2f} us/row, "
            f"peak RSS {res['rss_peak_mib']:.0f} MiB")
        results.append(res)
    return {"machine": common.machine_info(device), "points": results, "repeats": repeats}


def render(res: dict) -> str:
    def table(pts, key):
        ref = pts[0]
        rows = []
        for p in pts:
            rows.append([f"{p['rows']:,}", str(p["cols"]), f"{p['prep_seconds']:.2f}", f"{p['fit_seconds']:.2f}",
                         f"{p['step_seconds']:.2f}", f"{p['us_per_row']:.2f}",
                         f"{p['step_seconds'] / ref['step_seconds']:.1f}x",
                         f"{p[key] / ref[key]:.0f}x", f"{p['data_mib']:.1f}",
                         f"{p['rss_peak_mib']:.0f}", f"{p['rss_peak_mib'] - p['rss_base_mib']:.0f}"])
        return common.md_table(["rows", "cols", "prepare s", "fit s", "train-step s", "us / train row",
                                "step time vs first", "size vs first", "tensors MiB", "peak RSS MiB",
                                "peak RSS - baseline MiB"], rows)

    pts = res["points"]
    by_rows = [p for p in pts if p["cols"] == 10 and p["rows"] != COL_SWEEP_ROWS or p["rows"] in ROWS and p["cols"] == 10]
    by_rows = sorted({p["rows"]: p for p in pts if p["cols"] == 10}.values(), key=lambda p: p["rows"])
    by_cols = sorted([p for p in pts if p["rows"] == COL_SWEEP_ROWS], key=lambda p: p["cols"])
    return "\n".join([
        "## Scaling with rows and columns (product)", "",
        "Synthetic regression data (`mmoe.synthetic.paper_synthetic`), 8 experts of (64, 32), towers (16,), "
        f"batch 1024, 1 epoch; each point in its own process, median of {res['repeats']} fit(s). "
        "`us / train row` = training-step seconds / training rows (flat = linear).", "",
        "Rows (10 columns):", "", table(by_rows, "rows"), "",
        f"Columns ({COL_SWEEP_ROWS:,} rows):", "", table(by_cols, "cols"), "",
        "Peak RSS includes the Python/torch baseline and the generated DataFrame."])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--point", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--repeats", type=int, default=3, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.point:
        rows, cols = (int(v) for v in a.point.split(","))
        print(json.dumps(point(rows, cols, a.device, a.repeats)))
        return
    t0 = time.perf_counter()
    res = run(a.device, a.quick)
    res["seconds"] = time.perf_counter() - t0
    common.write_json("scaling", res)
    md = render(res)
    print(md)
    if not a.no_write:
        common.update_results_md("scaling", md)


if __name__ == "__main__":
    main()
