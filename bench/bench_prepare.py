"""Time to prepare census-income: reading the CSV (``read_csv``) and preparing it (``prepare``: column kinds,
split, preprocessing fit, tensors), each the median of ``--repeats`` runs in this process.

    python -m bench.bench_prepare [--repeats 5]

Only public entry points are used, so the same script times an older checkout
(``PYTHONPATH=<checkout> python bench/bench_prepare.py``) for a before/after ratio.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

CENSUS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "census-income.csv.gz"


def main(argv=None) -> dict:
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--data", default=str(CENSUS))
    a = p.parse_args(argv)
    from mmoe.config import DataConfig, TaskSpec
    from mmoe.data import prepare, read_csv

    cfg = DataConfig(tasks=(TaskSpec("income_50k", "binary", positive="50000+."),
                            TaskSpec("marital_stat", "binary", positive="Never married")), drop=("instance_weight",))
    reads, preps = [], []
    for _ in range(a.repeats):
        t0 = time.perf_counter()
        df = read_csv(a.data)
        t1 = time.perf_counter()
        data = prepare(df, cfg)
        t2 = time.perf_counter()
        reads.append(t1 - t0)
        preps.append(t2 - t1)
    out = {"rows": len(df), "columns": df.shape[1], "read_s": statistics.median(reads),
           "prepare_s": statistics.median(preps), "inputs": [data.num_numeric, len(data.cardinalities)]}
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
