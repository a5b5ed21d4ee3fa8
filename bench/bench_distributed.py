"""Data-parallel training: census-income with one process against ``torchrun`` with N processes.

Each contender is the whole command a user types (``python -m mmoe train ...`` or ``torchrun
--standalone --nproc-per-node=N -m mmoe train ...``, same settings, same global batch), run in
turns, ``--repeats`` times. Reported per contender: the median wall time of the command, its
training seconds, throughput and the validation AUCs it reached, and the ratio of one process's
time to the same AUC against N processes' (> 1: torchrun is faster).

    python -m bench.bench_distributed [--device cpu|cuda] [--nproc 2] [--epochs 4] [--repeats 3]

On CUDA the N processes use one GPU each (NCCL); with fewer than 2 GPUs the CUDA part is skipped.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import common

CENSUS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "census-income.csv.gz"
TASKS = ["--task", "income_50k:binary=50000+.", "--task", "marital_stat:binary=Never married",
         "--drop", "instance_weight"]


def _run(cmd: list[str], env: dict) -> dict:
    t0 = time.perf_counter()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {r.returncode}: {r.stderr[-2000:]}")
    out = json.loads([ln for ln in r.stdout.splitlines() if ln.startswith("{")][-1])
    return {"wall_s": wall, "train_s": out["train_seconds"], "samples_per_second": out["samples_per_second"],
            "auc": {t: m["auc"] for t, m in out["metrics"].items()}, "world_size": out["world_size"]}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser()
    p.add_argument("--device", default="cpu")
    p.add_argument("--nproc", type=int, default=2)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--data", default=str(CENSUS))
    a = p.parse_args(argv)
    if a.device == "cuda":
        import torch

        if torch.cuda.device_count() < a.nproc:
            print(f"skipped: {torch.cuda.device_count()} GPU(s), {a.nproc} needed for the NCCL path")
            return {}
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    store = tempfile.mkdtemp(prefix="bench-dist-")
    train = ["-m", "mmoe", "train", "--data", a.data, *TASKS, "--epochs", str(a.epochs), "--device", a.device,
             "--json", "--quiet", "--store", store]
    contenders = {"1 process": [sys.executable, *train],
                  f"torchrun, {a.nproc} processes": [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                                     f"--nproc-per-node={a.nproc}", *train]}
    runs: dict[str, list[dict]] = {k: [] for k in contenders}
    for i in range(a.repeats):
        for name, cmd in contenders.items():
            r = _run(cmd, env)
            runs[name].append(r)
            common.log(f"{name} #{i + 1}: wall {r['wall_s']:.2f} s, training {r['train_s']:.2f} s, AUC {r['auc']}")
    summary = {"machine": common.machine_info(a.device), "epochs": a.epochs, "nproc": a.nproc,
               "command": "python -m bench.bench_distributed " + " ".join(argv or sys.argv[1:]), "contenders": {}}
    for name, rs in runs.items():
        summary["contenders"][name] = {
            "wall_s": statistics.median(r["wall_s"] for r in rs),
            "train_s": statistics.median(r["train_s"] for r in rs),
            "samples_per_second": statistics.median(r["samples_per_second"] for r in rs),
            "auc": rs[0]["auc"], "world_size": rs[0]["world_size"]}
    one, many = (summary["contenders"][k] for k in contenders)
    summary["speedup_wall"] = one["wall_s"] / many["wall_s"]
    summary["speedup_train"] = one["train_s"] / many["train_s"]
    common.write_json(f"distributed_{a.device}", summary)
    rows = [[k, f"{v['wall_s']:.2f}", f"{v['train_s']:.2f}", f"{v['samples_per_second']:,.0f}",
             ", ".join(f"{t} {x:.4f}" for t, x in v["auc"].items())] for k, v in summary["contenders"].items()]
    body = (f"### Data-parallel ({a.device}): census-income, {a.epochs} epochs, batch from the data\n\n"
            f"{common.machine_line(summary['machine'])}. `{summary['command']}`; medians of {a.repeats} runs "
            "of the whole command.\n\n"
            + common.md_table(["contender", "wall s", "training s", "samples/s", "validation AUC"], rows)
            + f"\n\nOne process's time over {a.nproc} processes': {summary['speedup_wall']:.2f}x wall, "
              f"{summary['speedup_train']:.2f}x training (> 1: torchrun faster).\n")
    common.update_results_md(f"distributed_{a.device}", body)
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
