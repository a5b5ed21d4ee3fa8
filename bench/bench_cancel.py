"""Cancel latency: how long after a cancel a training job on a large table ends.

A 1.3M-row table (``--features`` random numeric features, a binary and a regression target) is
prepared once; then a background training job (``submit_training``, the dashboard's Train button)
is cancelled at several moments spread over its epochs (in a batch, in the epoch's gather, in the
validation pass). Measured from ``job.cancel()``:

    recorded   the run reads ``cancelled`` in the store (a new reader sees it; the weights are saved)
    done       the job has ended (its predictions written too): what the job card waits for

    python -m bench.bench_cancel [--rows 1300000] [--features 100] [--cancels 6]

Only public entry points are used, so the same script measures an older checkout
(``PYTHONPATH=<checkout> python bench/bench_cancel.py``).
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time

import numpy as np
import pandas as pd


def table(rows: int, features: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    df = pd.DataFrame(rng.normal(size=(rows, features)).astype("float32"), columns=[f"f{i}" for i in range(features)])
    df["y1"] = (df["f0"] + rng.normal(size=rows) > 0).astype(int)
    df["y2"] = df["f1"] * 2 + rng.normal(size=rows)
    return df


def main(argv=None) -> dict:
    p = argparse.ArgumentParser()
    p.add_argument("--rows", type=int, default=1_300_000)
    p.add_argument("--features", type=int, default=100)
    p.add_argument("--cancels", type=int, default=6)
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args(argv)

    from mmoe.config import DataConfig, ModelConfig, TaskSpec, TrainConfig
    from mmoe.data import prepare
    from mmoe.runs.jobs import JobManager
    from mmoe.runs.runner import submit_training
    from mmoe.runs.store import RunStore

    t0 = time.perf_counter()
    data = prepare(table(a.rows, a.features), DataConfig(tasks=(TaskSpec("y1", "binary"),
                                                                TaskSpec("y2", "regression")), seed=0))
    print(f"prepared {a.rows:,} rows x {a.features} features in {time.perf_counter() - t0:.1f} s", flush=True)
    mc = ModelConfig(num_experts=4, expert_hidden=(16,), tower_hidden=(8,))
    tc = TrainConfig(epochs=1000, batch_size=a.batch_size, seed=0, threads=a.threads)
    home = tempfile.mkdtemp(prefix="bench-cancel-")
    manager = JobManager()
    rng = np.random.default_rng(1)
    results = []
    try:
        for i in range(a.cancels):
            job = submit_training(manager, data, mc, tc, store_home=home, name=f"cancel-{i}")
            while job.snapshot().batch == 0 and job.snapshot().epoch == 0:   # training has begun
                time.sleep(0.01)
            time.sleep(float(rng.uniform(1.0, 8.0)))
            snap = job.snapshot()
            phase = f"epoch {snap.epoch + 1}, batch {snap.batch}/{snap.batches}"
            t_cancel = time.perf_counter()
            job.cancel()
            run_id, recorded, done = snap.run_id, None, None
            reader = RunStore(home)
            while done is None:
                if recorded is None and reader.get_run(run_id).status == "cancelled":
                    recorded = time.perf_counter() - t_cancel
                if job.done:
                    done = time.perf_counter() - t_cancel
                    recorded = done if recorded is None else recorded
                time.sleep(0.005)
            rec = reader.get_run(run_id)
            results.append({"phase": phase, "recorded_s": round(recorded, 3), "done_s": round(done, 3),
                            "status": rec.status, "epochs": rec.epochs})
            print(f"cancel in {phase}: recorded {recorded:.2f} s, job done {done:.2f} s "
                  f"({rec.status}, {rec.epochs} epochs)", flush=True)
    finally:
        manager.shutdown(wait=True, cancel=True)
    summary = {"rows": a.rows, "features": a.features, "batch_size": a.batch_size, "trials": results,
               "recorded_median_s": statistics.median(r["recorded_s"] for r in results),
               "recorded_max_s": max(r["recorded_s"] for r in results),
               "done_median_s": statistics.median(r["done_s"] for r in results),
               "done_max_s": max(r["done_s"] for r in results)}
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
