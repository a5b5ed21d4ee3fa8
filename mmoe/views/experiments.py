"""What the Experiments page and ``python -m mmoe experiment|paper`` show of an experiment's summary
(``mmoe.runs.experiments.summarize``): tables of means with 95% intervals, the metric against the
swept setting, paired differences in words, mean learning curves with bands, and a time estimate.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from mmoe.runs.experiments import mean_ci, settings_text
from mmoe.runs.store import RunStore
from mmoe.tasks import METRIC_BOUNDS, METRIC_DIRECTIONS, PRIMARY_METRIC

ARROW = {"max": "↑", "min": "↓"}


def _num(v: float | None, digits: int = 4) -> str:
    return "–" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.{digits}f}"


def interval_text(stat: Mapping | None, digits: int = 4) -> str:
    """{"mean", "ci95", "n"} -> '0.8123 [0.8011, 0.8235]' (or '0.8123 (1 seed)')."""
    if not stat or stat.get("mean") is None:
        return "–"
    ci = stat.get("ci95")
    if ci is None:
        return f"{_num(stat['mean'], digits)} (1 seed, no interval)"
    return f"{_num(stat['mean'], digits)} [{_num(ci[0], digits)}, {_num(ci[1], digits)}]"


def task_kinds(summary: Mapping) -> dict[str, str]:
    """Task -> kind, read from which primary metric its metrics hold."""
    out: dict[str, str] = {}
    for c in summary.get("configs", []):
        for task, ms in c.get("metrics", {}).items():
            for kind, metric in PRIMARY_METRIC.items():
                if metric in ms and task not in out:
                    out[task] = kind
    # a binary task also has an accuracy: auc decides
    for c in summary.get("configs", []):
        for task, ms in c.get("metrics", {}).items():
            if "auc" in ms:
                out[task] = "binary"
    return out


def primary_metrics(summary: Mapping) -> dict[str, str]:
    return {t: PRIMARY_METRIC[k] for t, k in task_kinds(summary).items()}


def config_table(summary: Mapping) -> pd.DataFrame:
    """One row per point: its settings, finished runs out of seeds, and per task the primary metric's
    mean and 95% interval (columns '<task> · <metric> ↑' as text, plus numeric mean/lo/hi columns)."""
    keys = [k for k, _ in summary.get("grid", [])]
    rows = []
    for c in summary.get("configs", []):
        row: dict[str, Any] = {k: c["settings"].get(k) for k in keys} if keys else {"settings": "base"}
        done = sum(st == "finished" for st in c.get("statuses", []))
        row["finished runs"] = f"{done} of {len(c.get('seeds', []))}"
        for task, metric in primary_metrics(summary).items():
            stat = c["metrics"].get(task, {}).get(metric)
            row[f"{task} · {metric} {ARROW.get(METRIC_DIRECTIONS.get(metric), '')}".strip()] = interval_text(stat)
        rows.append(row)
    return pd.DataFrame(rows)


def sweep_frame(summary: Mapping, task: str, metric: str) -> pd.DataFrame:
    """The metric against the swept setting: x (the last grid key's value), line (the other keys'
    values, e.g. the architecture), mean, lo, hi, n. With one grid key, each point is one x."""
    grid = summary.get("grid", [])
    keys = [k for k, _ in grid]
    x_key = next((k for k in reversed(keys) if k != "arch"), keys[-1] if keys else None)
    rows = []
    for c in summary.get("configs", []):
        stat = c["metrics"].get(task, {}).get(metric, {})
        line = settings_text({k: v for k, v in c["settings"].items() if k != x_key}) if len(keys) > 1 else metric
        ci = stat.get("ci95") or [None, None]
        rows.append({"x": c["settings"].get(x_key) if x_key else "base", "line": line, "mean": stat.get("mean"),
                     "lo": ci[0], "hi": ci[1], "n": stat.get("n", 0)})
    df = pd.DataFrame(rows, columns=["x", "line", "mean", "lo", "hi", "n"])
    df.attrs["x_key"] = x_key or "setting"
    return df


def compared_text(a: Mapping, b: Mapping) -> str:
    """'omoe vs mmoe · correlation=0.5': what differs (b's value vs a's), then what is held equal."""
    diff = [k for k in b if a.get(k) != b.get(k)]
    same = {k: b[k] for k in b if k not in diff}
    head = ", ".join(f"{b[k]}" if k == "arch" else f"{k}={b[k]}" for k in diff) + " vs " + \
        ", ".join(f"{a.get(k)}" if k == "arch" else f"{k}={a.get(k)}" for k in diff)
    return head + (f" · {settings_text(same)}" if same else "")


def differences_frame(summary: Mapping, task: str | None = None, metric: str | None = None) -> pd.DataFrame:
    """One row per paired difference: compared (b vs a), task, metric, mean difference with its
    interval and, in words, what it says. Each task's primary metric (the summary's differences); with
    ``task`` and ``metric``, that task's rows difference ``metric`` instead (the same seeds paired)."""
    diffs = list(summary.get("differences", []))
    if task is not None and metric is not None and metric != primary_metrics(summary).get(task):
        from mmoe.runs.experiments import paired_differences

        mine = iter(paired_differences(summary.get("configs", []), summary.get("grid", []), {task: metric}))
        diffs = [next(mine) if d["task"] == task else d for d in diffs]   # the same points, in the same order
    rows = []
    for d in diffs:
        arrow = ARROW.get(d.get("direction") or "", "")
        rows.append({"compared": compared_text(d["a"], d["b"]), "task": d["task"],
                     "metric": f"{d['metric']} {arrow}".strip(), "difference (b − a)": interval_text(d),
                     "paired seeds": d.get("n", 0), "what it says": d.get("verdict", ""),
                     "mean": d.get("mean"), "lo": (d.get("ci95") or [None, None])[0],
                     "hi": (d.get("ci95") or [None, None])[1]})
    return pd.DataFrame(rows, columns=["compared", "task", "metric", "difference (b − a)", "paired seeds",
                                       "what it says", "mean", "lo", "hi"])


def mean_curves(store: RunStore, run_ids: Sequence[int | None], task: str, metric: str = "loss",
                split: str = "val") -> pd.DataFrame:
    """Per epoch, the mean and 95% interval over the given runs of one curve (epochs some runs did not
    reach, e.g. after early stopping, average the runs that did): epoch, mean, lo, hi, n."""
    series = []
    for rid in run_ids:
        if rid is None or not store.exists(rid):
            continue
        h = store.history(rid)
        h = h[(h["split"] == split) & (h["task"] == task) & (h["metric"] == metric)]
        series.append(h.set_index("epoch")["value"])
    if not series:
        return pd.DataFrame(columns=["epoch", "mean", "lo", "hi", "n"])
    wide = pd.concat(series, axis=1)
    rows = []
    for epoch, vals in wide.iterrows():
        stat = mean_ci([None if not np.isfinite(v) else float(v) for v in vals.to_numpy(dtype=float)])
        ci = stat["ci95"] or [stat["mean"], stat["mean"]]
        lo, hi = METRIC_BOUNDS.get(metric, (None, None))      # the range the metric can take (a loss is >= 0)
        ci = [ci[0] if lo is None or ci[0] is None else max(ci[0], lo), ci[1] if hi is None or ci[1] is None
              else min(ci[1], hi)]
        rows.append({"epoch": int(epoch), "mean": stat["mean"], "lo": ci[0], "hi": ci[1], "n": stat["n"]})
    return pd.DataFrame(rows)


def experiment_report(summary: Mapping) -> list[str]:
    """The summary as lines of text (what ``python -m mmoe experiment`` prints without --json)."""
    lines = [f"experiment {summary['experiment_id']} {summary['status']}: {summary.get('name', '')} "
             f"({len(summary.get('runs', []))} runs on {summary.get('dataset', '')})"]
    if summary.get("error"):
        lines.append(f"  note: {summary['error']}")
    table = config_table(summary)
    if not table.empty:
        lines += ["", "mean over seeds [95% interval]:", *table.to_string(index=False).splitlines()]
    diffs = differences_frame(summary)
    if not diffs.empty:
        lines += ["", "paired differences (same seeds):"]
        for _, d in diffs.iterrows():
            lines.append(f"  {d['compared']}  {d['task']} {d['metric']}: {d['difference (b − a)']} — "
                         f"{d['what it says']}")
    if "seconds" in summary:
        lines += ["", f"took {summary['seconds']:.1f} s"]
    return lines


def estimate_seconds(runs: int, train_rows: int, epochs: int, samples_per_second: float,
                     per_run_overhead: float = 0.15) -> float:
    """Wall time of an experiment: its training samples at a measured rate, plus a fixed cost per run
    (preparing, validating, saving)."""
    return runs * (train_rows * epochs / max(samples_per_second, 1.0) + per_run_overhead)


def members_frame(summary: Mapping, store: RunStore) -> pd.DataFrame:
    """One row per member run: id, settings, seed, status, why it stopped, each task's primary metric."""
    primary = primary_metrics(summary)
    rows = []
    for c in summary.get("configs", []):
        for seed, rid, status in zip(c["seeds"], c["runs"], c.get("statuses", [])):
            if rid is None:
                continue
            row = {"run": rid, "settings": settings_text(c["settings"]), "seed": seed, "status": status}
            rec = store.get_run(rid) if store.exists(rid) else None
            row["why it stopped"] = (rec.stop_reason or "") if rec else "deleted"
            for task, metric in primary.items():
                row[f"{task} · {metric}"] = (rec.final_metrics.get(task, {}).get(metric) if rec else None)
            rows.append(row)
    return pd.DataFrame(rows)


def metric_choices(summary: Mapping, task: str) -> list[str]:
    """The metrics of a task an experiment can be read by: its primary metric first, no diagnostics."""
    from mmoe.runs.experiments import DIAGNOSTICS

    names: list[str] = []
    for c in summary.get("configs", []):
        for m in c.get("metrics", {}).get(task, {}):
            if m not in names and m not in DIAGNOSTICS:
                names.append(m)
    first = primary_metrics(summary).get(task)
    return ([first] if first in names else []) + [m for m in names if m != first]


def estimate_experiment(exp) -> dict:
    """Measure, don't guess: train the experiment's first point for one epoch into a throw-away store
    and scale: {"seconds", "per_run_overhead", "seconds_per_epoch", "runs"}."""
    import dataclasses
    import tempfile
    import time

    from mmoe.runs.experiments import _data_for
    from mmoe.runs.runner import run_training

    point, seed = exp.points[0], exp.seeds[0]
    _, data = _data_for(point, seed, exp.split_follows_seed)
    with tempfile.TemporaryDirectory(prefix="mmoe-estimate-") as home:
        store = RunStore(home)
        t0 = time.perf_counter()
        summary = run_training(data, point.model_config, dataclasses.replace(point.train_config, epochs=1, seed=seed),
                               store=store)
        wall = time.perf_counter() - t0
        store.close()
    per_epoch = summary.train_seconds
    overhead = max(wall - per_epoch, 0.0)
    seconds = sum(overhead + per_epoch * p.train_config.epochs for p in exp.points) * len(exp.seeds)
    return {"seconds": seconds, "per_run_overhead": overhead, "seconds_per_epoch": per_epoch,
            "runs": exp.total_runs}
