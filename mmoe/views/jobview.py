"""Turning background-job snapshots and stored runs into display text and tables (no Streamlit).

    duration_text(s)   42 -> "0:42" (every duration the pages show)
    run_label(...)     "#3 baseline — mmoe on census.csv (finished)"
    progress_text(p)   "epoch 3/10 · 12,345 samples/s · ETA 0:42"
    curves_frame(p)    Progress.curves -> long frame: epoch, split, task, loss
    metrics_by_task(m) {split: {task: {metric: v}}} -> one row per (task, metric), one column per split
    jobs_frame(ps)     one row per job (id, name, status, run, progress, device, message)
    runs_overview(df)  RunStore.runs_frame() -> the compact "recent runs" table
    overview_columns(t) its text columns and its metric columns (to size and to format them)
    experiment_label   the Train button of a repeat/sweep: "Train 4 runs (2 settings × 2 seeds)"
    outcome(p)         the one-line reason a job ended the way it did ("" when it finished fine)
"""
from __future__ import annotations

import math
from typing import Iterable, Mapping

import pandas as pd

from mmoe.runs.jobs import Progress
from mmoe.runs.status import ENDED_BADLY
from mmoe.tasks import headline_metric

# the metrics a job card shows per task (each task has only those of its kind), and how a split is named
CARD_METRICS = ("loss", "auc", "accuracy", "macro_f1", "rmse", "mae", "r2")
SPLIT_NAME = {"train": "training", "val": "validation", "test": "test"}
METRIC_FORMAT = "%.4f"   # every metric cell of a table, so 0.62 and 0.5962 line up as 0.6200 and 0.5962
# runs_overview's columns other than the metrics ("task:metric"); the text ones are sized to their values
OVERVIEW_FIXED = ("id", "name", "status", "arch", "dataset", "epochs", "training s", "created", "why it stopped",
                  "experiment", "error")
OVERVIEW_TEXT = ("name", "status", "arch", "dataset", "created", "why it stopped", "error")


def duration_text(seconds: float | None) -> str:
    """42 -> '0:42', 3725 -> '1:02:05', 0.3 -> '< 0:01', None -> '–'. The one format for
    durations and ETAs on every page. Two durations exist, each named where shown: the training
    time (a run's ``train_seconds``, the optimisation steps only: "trained in", "training s") and the
    wall time (a job's start to end, evaluation and saving included: "finished after ... wall time")."""
    if seconds is None or not math.isfinite(seconds):
        return "–"
    if 0 < seconds < 0.5:   # would round to 0:00, which reads as "did not run"
        return "< 0:01"
    s = int(round(max(0.0, seconds)))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def run_label(run_id: int, name: str, arch: str | None = None, dataset: str | None = None,
              status: str | None = None) -> str:
    """The one run label: '#3 baseline', with what it is and its status where known:
    '#3 baseline — mmoe on census.csv (finished)'. The 'arch on dataset' part is left out when the
    name already says it (the default name of a run started from the dashboard)."""
    label = f"#{run_id} {name}"
    if arch is not None or dataset is not None:
        what = f"{arch or '?'} on {dataset}"
        if what.casefold() not in " ".join(str(name).split()).casefold():
            label += f" — {what}"
    return label + (f" ({status})" if status else "")


def progress_text(p: Progress) -> str:
    """One line for the progress bar: epoch, throughput, ETA (or the final status)."""
    if p.status == "queued":
        return "queued: waiting for the device to be free"
    parts = []
    exp = p.extra or {}
    if "runs_total" in exp:   # an experiment: its runs, not one run's epochs
        running = p.status == "running" and bool(exp.get("current"))
        parts.append(f"run {min(exp.get('runs_done', 0) + running, exp['runs_total'])} of {exp['runs_total']}"
                     + (f" ({exp['current']})" if running else ""))
    elif p.epochs:
        shown = min(p.epoch + (1 if p.status == "running" else 0), p.epochs)
        parts.append(f"epoch {max(shown, 1) if p.status == 'running' else p.epoch}/{p.epochs}")
        if p.status == "running" and p.batches:
            parts.append(f"batch {p.batch}/{p.batches}")
    if p.samples_per_second:
        parts.append(f"{p.samples_per_second:,.0f} samples/s")
    if p.status == "running":
        parts.append(f"ETA {duration_text(p.eta_seconds)}")
    else:
        parts.append(f"{p.status} after {duration_text(p.elapsed_seconds)} wall time")
    return " · ".join(parts) if parts else p.status


def outcome(p: Progress) -> str:
    """Why a job ended as cancelled / diverged / failed ('' for running or finished jobs)."""
    if p.status in ENDED_BADLY:
        return p.error or p.message or p.status
    if p.status == "cancelled":
        return p.message if p.message and p.message != "cancelled" else "cancelled by the user"
    return ""


def curves_frame(p: Progress) -> pd.DataFrame:
    """Progress.curves {split: {task: [loss per epoch]}} -> long frame: epoch, split, task, loss."""
    rows = []
    for split, tasks in (p.curves or {}).items():
        for task, values in tasks.items():
            for i, v in enumerate(values):
                rows.append({"epoch": i + 1, "split": split, "task": task, "loss": v})
    return pd.DataFrame(rows, columns=["epoch", "split", "task", "loss"])


def history_curves(history: pd.DataFrame) -> pd.DataFrame:
    """RunStore.history() (epoch, split, task, metric, value) -> the loss curves as curves_frame."""
    if history is None or history.empty:
        return pd.DataFrame(columns=["epoch", "split", "task", "loss"])
    h = history[history["metric"] == "loss"]
    return h.rename(columns={"value": "loss"})[["epoch", "split", "task", "loss"]].reset_index(drop=True)


def metrics_by_task(metrics: Mapping, keep: Iterable[str] = CARD_METRICS) -> pd.DataFrame:
    """A job's last epoch {split: {task: {metric: v}}} as one row per (task, metric) and one column per split
    ("training", "validation"): a narrow table whatever the task kinds (a wide one has a column for every
    metric of every kind, mostly empty, cut off beside a chart). Rows: the tasks in order, each with the metrics
    of ``keep`` it has in some split, in that order; a metric a split does not log is NaN there."""
    splits = [s for s, v in (metrics or {}).items() if isinstance(v, Mapping)]
    tasks: list[str] = []
    for s in splits:
        tasks += [t for t in metrics[s] if t not in tasks]
    rows = []
    for task in tasks:
        for m in keep:
            cells = {SPLIT_NAME.get(s, s): _num((metrics[s].get(task) or {}).get(m)) for s in splits}
            if any(not (isinstance(v, float) and math.isnan(v)) for v in cells.values()):
                rows.append({"task": task, "metric": m, **cells})
    return pd.DataFrame(rows, columns=["task", "metric", *(SPLIT_NAME.get(s, s) for s in splits)])

def _num(x):
    if x is None:   # a metric that was not computed: NaN, so the column stays numeric
        return math.nan
    try:
        return float(x)
    except (TypeError, ValueError):
        return x


def jobs_frame(snapshots: Iterable[Progress]) -> pd.DataFrame:
    rows = []
    for p in snapshots:
        rows.append({"job": p.job_id, "name": p.name, "status": p.status,
                     "run": p.run_id, "progress": round(100 * p.fraction), "device": p.device,
                     "details": outcome(p) or (progress_text(p) if not p.done else p.message)})
    return pd.DataFrame(rows, columns=["job", "name", "status", "run", "progress", "device", "details"])


def runs_overview(runs: pd.DataFrame, limit: int = 20) -> pd.DataFrame:
    """The stored runs table trimmed to what a run list needs, newest first: id, name, status, arch, the
    headline metric of each task ("task:metric"), dataset, epochs, training s, created, why it stopped, ..."""
    if runs is None or runs.empty:
        return pd.DataFrame(columns=["id", "name", "status", "arch", "dataset", "epochs", "training s", "created"])
    df = runs.head(limit)
    out = pd.DataFrame({
        "id": df["id"], "name": df["name"], "status": df["status"], "arch": df["arch"], "dataset": df["dataset"],
        "epochs": df["epochs"], "training s": df["train_seconds"].round(1),
        "created": df["created_at"].astype(str).str[:19].str.replace("T", " "),
    })
    metric_cols = [c for c in df.columns if c.startswith("metric:")]
    by_task: dict[str, list[str]] = {}
    for c in metric_cols:
        by_task.setdefault(c.split(":")[1], []).append(c.split(":")[-1])
    primary = {t: f"metric:{t}:{headline_metric(ms)}" for t, ms in by_task.items() if headline_metric(ms)}
    keep = list(primary.values())
    at = out.columns.get_loc("dataset")   # the metrics right after what the run is, so they stay on screen
    for i, c in enumerate(keep):
        out.insert(at + i, c.removeprefix("metric:"), df[c].round(4))
    # after the metrics, so the primary metrics stay on screen
    if "stop_reason" in df:
        out["why it stopped"] = df["stop_reason"].fillna("")
    if "experiment_id" in df and df["experiment_id"].notna().any():
        out["experiment"] = df["experiment_id"]
    if df["error"].notna().any():
        out["error"] = df["error"].fillna("")
    return out.reset_index(drop=True)


def overview_columns(table: pd.DataFrame) -> tuple[list[str], list[str]]:
    """(the text columns, the metric columns) of a ``runs_overview`` table, in its order."""
    return ([c for c in table.columns if c in OVERVIEW_TEXT],
            [c for c in table.columns if c not in OVERVIEW_FIXED])


def experiment_label(settings: int, seeds: int) -> str:
    """The Train button of a repeat or a sweep, short enough for a button: 'Train 3 runs (1 setting × 3 seeds)'."""
    plural = lambda n, word: f"{n} {word}{'' if n == 1 else 's'}"  # noqa: E731
    return f"Train {plural(settings * seeds, 'run')} ({plural(settings, 'setting')} × {plural(seeds, 'seed')})"
