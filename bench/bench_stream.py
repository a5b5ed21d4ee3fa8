"""Memory and throughput against rows: ``train --stream`` against in memory, as whole commands.

A seeded CSV of N rows x 14 columns (12 numeric features, a binary and a regression target) is written
once per size; then ``python -m mmoe train --data F --epochs 1 [--stream]`` runs as a child process and
its peak RSS (the kernel's maxrss of the child) and wall time are recorded. Streamed, the first run of a
file prepares its cache (two passes over the file) and trains; in memory, the whole table is read.

    python -m bench.bench_stream [--rows 1000000,3000000,10000000,30000000] [--in-memory-up-to 3000000]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench import common

FEATURES = 12


def write_csv(path: Path, rows: int, chunk: int = 1_000_000) -> None:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    rng = np.random.default_rng(0)
    w = None
    for s in range(0, rows, chunk):
        n = min(chunk, rows - s)
        x = rng.normal(size=(n, FEATURES)).astype(np.float32)
        cols = {f"f{i}": np.round(x[:, i], 4) for i in range(FEATURES)}
        cols["click"] = (x[:, 0] + 0.5 * x[:, 1] + rng.normal(size=n) > 0).astype(np.int8)
        cols["value"] = np.round(x[:, 2] * 2 + x[:, 3] - x[:, 0] + rng.normal(size=n) * 0.5, 4)
        t = pa.table(cols)
        if w is None:
            w = pacsv.CSVWriter(str(path), t.schema)
        w.write_table(t)
    w.close()


WRAP = ("import subprocess,sys,resource,json;p=subprocess.run(sys.argv[1:],capture_output=True,text=True);"
        "sys.stdout.write(p.stdout);sys.stderr.write(p.stderr);"
        "print(json.dumps({'child_maxrss_kb':resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}),file=sys.stderr);"
        "sys.exit(p.returncode)")


def run(cmd: list[str]) -> dict:
    """``cmd`` in a fresh wrapper process, which reports its one child's peak RSS (maxrss)."""
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-c", WRAP, *cmd], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {p.returncode}: {p.stderr[-2000:]}")
    peak_kb = json.loads(p.stderr.strip().splitlines()[-1])["child_maxrss_kb"]
    res = json.loads([ln for ln in p.stdout.splitlines() if ln.startswith("{")][-1])
    return {"wall_s": wall, "peak_rss_mb": peak_kb / 1024, "train_s": res["train_seconds"],
            "samples_per_second": res["samples_per_second"],
            "auc": res["metrics"]["click"].get("auc"), "r2": res["metrics"]["value"].get("r2")}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser()
    p.add_argument("--rows", default="1000000,3000000,10000000,30000000")
    p.add_argument("--in-memory-up-to", type=int, default=3_000_000)
    p.add_argument("--dir", default=None, help="where the CSVs go (default: a temporary folder)")
    a = p.parse_args(argv)
    folder = Path(a.dir or tempfile.mkdtemp(prefix="bench-stream-"))
    folder.mkdir(parents=True, exist_ok=True)
    results = []
    for rows in [int(r) for r in a.rows.split(",")]:
        csv = folder / f"table-{rows}.csv"
        if not csv.exists():
            t0 = time.perf_counter()
            write_csv(csv, rows)
            common.log(f"wrote {csv.name}: {csv.stat().st_size / 1e9:.2f} GB in {time.perf_counter() - t0:.0f} s")
        base = [sys.executable, "-m", "mmoe", "train", "--data", str(csv), "--task", "click:binary",
                "--task", "value:regression", "--epochs", "1", "--json", "--quiet", "--store", str(folder / "store")]
        modes = ["streamed"] + (["in memory"] if rows <= a.in_memory_up_to else [])
        for mode in modes:
            r = run([*base, *(["--stream"] if mode == "streamed" else [])])
            row = {"rows": rows, "csv_gb": csv.stat().st_size / 1e9, "mode": mode, **r}
            results.append(row)
            common.log(json.dumps(row))
    summary = {"machine": common.machine_info("cpu"), "results": results,
               "command": "python -m bench.bench_stream " + " ".join(argv or sys.argv[1:])}
    common.write_json("stream", summary)
    table = common.md_table(["rows", "CSV GB", "mode", "peak RSS MB", "wall s", "training s", "samples/s", "AUC",
                             "R²"],
                            [[f"{r['rows']:,}", f"{r['csv_gb']:.2f}", r["mode"], f"{r['peak_rss_mb']:,.0f}",
                              f"{r['wall_s']:.0f}", f"{r['train_s']:.0f}", f"{r['samples_per_second']:,.0f}",
                              f"{r['auc']:.4f}", f"{r['r2']:.4f}"] for r in results])
    common.update_results_md("stream", f"### Streamed against in memory (1 epoch)\n\n{common.machine_line(summary['machine'])}. "
                             f"`{summary['command']}`; peak RSS is the child process's maxrss.\n\n{table}\n")
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
