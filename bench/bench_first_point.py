"""The dashboard's time to the first curve point: from pressing Train (``submit_training`` with the Data
page's prepared table, in a warm process like the dashboard server) to the job's first epoch on its card
(a ``Progress`` snapshot whose curves hold one validation loss), and to the job's end.

    python -m bench.bench_first_point [--repeats 5] [--epochs 5]

Census-income with the Quick look preset's model (4 experts of (32,), towers (8,)), batch 1024. Split:
queue to the run created (prepare is done by the Data page before Train is pressed; the job builds the
model, creates the run and starts), the first epoch (training and its validation), then the rest.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time

from bench import common


def main(argv=None) -> dict:
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--device", default="cpu")
    a = p.parse_args(argv)
    from mmoe.config import DataConfig, ModelConfig, TaskSpec, TrainConfig
    from mmoe.data import prepare
    from mmoe.runs.jobs import JobManager
    from mmoe.runs.runner import submit_training

    dc = DataConfig(tasks=(TaskSpec("income_50k", "binary", positive="50000+."),
                           TaskSpec("marital_stat", "binary", positive="Never married")), drop=("instance_weight",))
    data = prepare(str(common.CENSUS), dc)             # the Data page's work, before Train is pressed
    mc = ModelConfig(num_experts=4, expert_hidden=(32,), tower_hidden=(8,))
    tc = TrainConfig(epochs=a.epochs, batch_size=1024, device=a.device)
    manager = JobManager()
    rows = []
    with tempfile.TemporaryDirectory() as home:
        for r in range(a.repeats + 1):                   # the first is a warm-up, as a server is warm
            t0 = time.perf_counter()
            job = submit_training(manager, data, mc, tc, store_home=home, name=f"first-point-{r}", dataset="census")
            created = first = None
            while not job.done:
                snap = job.snapshot()
                now = time.perf_counter() - t0
                if created is None and snap.run_id is not None:
                    created = now
                if first is None and any(len(v) for v in ((snap.curves or {}).get("val") or {}).values()):
                    first = now
                time.sleep(0.005)
            end = time.perf_counter() - t0
            if r:
                rows.append({"run_created_s": created, "first_point_s": first, "done_s": end})
                common.log(f"repeat {r}: run created {created:.2f} s, first point {first:.2f} s, done {end:.2f} s")
    manager.shutdown(wait=True)
    med = {k: statistics.median(x[k] for x in rows) for k in rows[0]}
    summary = {"machine": common.machine_info(a.device), "epochs": a.epochs, "repeats": a.repeats, "median": med,
               "runs": rows, "command": "python -m bench.bench_first_point " + " ".join(argv or sys.argv[1:])}
    common.write_json(f"first_point_{a.device}", summary)
    common.update_results_md(f"first_point_{a.device}", (
        f"### Train pressed -> first curve point ({a.device})\n\n{common.machine_line(summary['machine'])}. "
        f"`{summary['command']}`; medians of {a.repeats} (after one warm-up), census-income, batch 1024.\n\n"
        + common.md_table(["run created s", "first curve point s", f"job done ({a.epochs} epochs) s"],
                          [[f"{med['run_created_s']:.2f}", f"{med['first_point_s']:.2f}", f"{med['done_s']:.2f}"]])
        + "\n"))
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
