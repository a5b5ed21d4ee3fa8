"""Dashboard overhead: the same census run trained through the background job (as the
dashboard's Train button does) vs from the CLI.

CLI:  ``python -m mmoe train --data census --task ... --json --quiet --store TMP`` (subprocess).
Job:  ``mmoe.runs.runner.submit_training(mmoe.runs.jobs.get_manager(), census, ...)`` in this process,
      with the main thread polling ``job.snapshot()`` every 0.5 s like the dashboard's
      ``st.fragment(run_every=0.5)``.
Both read the CSV, prepare, train (5 epochs, batch 1024, 8 experts of (16,), towers (8,))
and store the run. Compared: the training time each run records in the store (``fit``'s
step time, the number the dashboard and CLI print) and the end-to-end run time (CLI:
subprocess wall minus the measured interpreter + import start-up; job: submit -> done).
One untimed 1-epoch job warms the process first (the dashboard server is long-lived; every
CLI run is a fresh process and pays its own warm-up). Repeats interleaved; medians reported.

    python -m bench.bench_overhead [--device cpu|cuda] [--quick]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time

from bench import common
from bench.common import log
from bench.peers.census_data import DROP

TASKS = ["income_50k:binary=50000+.", "marital_stat:binary=Never married"]


def cli_run(store: str, epochs: int, device: str) -> dict:
    cmd = [sys.executable, "-m", "mmoe", "train", "--data", str(common.CENSUS)]
    for t in TASKS:
        cmd += ["--task", t]
    cmd += ["--drop", ",".join(DROP), "--experts", "8", "--expert-hidden", "16", "--tower-hidden", "8",
            "--epochs", str(epochs), "--batch-size", "1024", "--lr", "0.001", "--seed", "0", "--device", device,
            "--store", store, "--json", "--quiet"]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=str(common.REPO))
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError(f"CLI run failed ({p.returncode}): {p.stderr[-2000:]}")
    d = json.loads(p.stdout.strip().splitlines()[-1])
    return {"wall": wall, "train_seconds": d["train_seconds"], "samples_per_second": d["samples_per_second"],
            "auc_income": d["metrics"]["income_50k"]["auc"]}


def startup_seconds() -> float:
    """Interpreter start + the imports the CLI needs before it touches data."""
    code = "import mmoe.cli, mmoe.runs.runner, mmoe.data, mmoe.training, torch, pandas, sklearn.metrics"
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, cwd=str(common.REPO))
    return time.perf_counter() - t0


def job_run(store: str, epochs: int, device: str) -> dict:
    from mmoe.runs.jobs import get_manager
    from mmoe.runs.store import RunStore
    from bench.peers.product import census_configs

    from mmoe.runs.runner import DataSource, submit_training

    dc, mc, tc = census_configs(epochs=epochs, device=device)
    t0 = time.perf_counter()
    job = submit_training(get_manager(), DataSource(str(common.CENSUS), dc), mc, tc, store_home=store, name="bench job",
                          dataset=common.CENSUS.name)
    polls = 0
    while not job.done:
        snap = job.snapshot()          # what the dashboard fragment reads every POLL_SECONDS
        polls += 1
        job.wait(0.5)
    wall = time.perf_counter() - t0
    snap = job.snapshot()
    if snap.status != "finished" or snap.run_id is None:
        raise RuntimeError(f"job ended {snap.status}: {getattr(snap, 'error', '')}")
    rec = RunStore(store).get_run(snap.run_id)
    return {"wall": wall, "train_seconds": rec.train_seconds, "samples_per_second": rec.samples_per_second,
            "auc_income": rec.final_metrics["income_50k"]["auc"], "polls": polls}


def run(device: str, quick: bool, epochs: int) -> dict:
    repeats = 1 if quick else 5
    import mmoe.runs.runner  # noqa: F401  (warm imports in this process, as in a running dashboard)

    startup = common.median([startup_seconds() for _ in range(1 if quick else 3)])
    res = {"cli": [], "job": []}
    with tempfile.TemporaryDirectory() as tmp:
        job_run(f"{tmp}/warm", 1, device)     # a dashboard server is a warm process: one untimed job first
        for r in range(repeats):
            order = ["cli", "job"] if r % 2 == 0 else ["job", "cli"]
            for kind in order:
                out = (cli_run if kind == "cli" else job_run)(f"{tmp}/{kind}", epochs, device)
                if kind == "cli":
                    out["run_seconds"] = out["wall"] - startup
                else:
                    out["run_seconds"] = out["wall"]
                res[kind].append(out)
                log(f"  repeat {r + 1}/{repeats} {kind}: train {out['train_seconds']:.2f} s, "
                    f"run {out['run_seconds']:.2f} s, {out['samples_per_second']:,.0f} samples/s")
    agg = {k: {m: common.median([x[m] for x in v]) for m in ("train_seconds", "run_seconds", "samples_per_second",
                                                              "auc_income")} for k, v in res.items()}
    return {"machine": common.machine_info(device), "epochs": epochs, "repeats": repeats,
            "startup_seconds": startup, "runs": res, "median": agg,
            "train_overhead": agg["job"]["train_seconds"] / agg["cli"]["train_seconds"] - 1,
            "run_overhead": agg["job"]["run_seconds"] / agg["cli"]["run_seconds"] - 1}


def render(res: dict) -> str:
    m = res["median"]
    rows = [[k, f"{v['train_seconds']:.2f}", f"{v['samples_per_second']:,.0f}", f"{v['run_seconds']:.2f}",
             f"{v['auc_income']:.4f}"] for k, v in (("CLI (`python -m mmoe train`)", m["cli"]),
                                                     ("background job (dashboard path)", m["job"]))]
    return "\n".join([
        "## Dashboard overhead: background job vs CLI", "",
        f"Census, {res['epochs']} epochs, batch 1024, 8 experts of (16,), towers (8,); the job is polled every 0.5 s "
        f"like the dashboard. Median of {res['repeats']} interleaved repeat(s). CLI run time = subprocess wall "
        f"- interpreter/import start-up ({res['startup_seconds']:.2f} s, measured).", "",
        common.md_table(["path", "train s (recorded)", "samples/s", "run s (read+prepare+train+store)",
                         "AUC income"], rows), "",
        f"Overhead of the job path: **{100 * res['train_overhead']:+.1f}%** training time, "
        f"**{100 * res['run_overhead']:+.1f}%** whole run."])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--no-write", action="store_true")
    a = ap.parse_args(argv)
    epochs = a.epochs or (10 if a.device.startswith("cuda") else 5)
    t0 = time.perf_counter()
    res = run(a.device, a.quick, epochs)
    res["seconds"] = time.perf_counter() - t0
    common.write_json("overhead", res)
    md = render(res)
    print(md)
    if not a.no_write:
        common.update_results_md("overhead", md)
    from mmoe.runs.jobs import get_manager
    get_manager().shutdown(wait=True)


if __name__ == "__main__":
    main()
