"""Comparing runs: flattened settings and their differences, the metrics table, the best run
per metric (by its direction).

A metric is only compared between runs in which its task means the same thing: the same
column, the same kind, and for a binary task the same positive class (a ``TaskGroup``). A
column that is a regression task in one run and a multiclass task in another gets separate
metric columns and separate curves, with a note saying why. Diagnostics (gate entropy, ...)
have no direction and are never marked best."""
from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mmoe.tasks import DIAGNOSTIC_METRICS, METRIC_DIRECTIONS, PRIMARY_METRIC


def _flat(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, Mapping):
        if not value:
            out[prefix] = "{}"
        for k, v in value.items():
            _flat(f"{prefix}.{k}" if prefix else str(k), v, out)
    elif isinstance(value, (list, tuple)):
        if value and all(isinstance(v, Mapping) for v in value):
            for v in value:   # e.g. tasks: keyed by their column
                key = v.get("column", str(value.index(v)))
                _flat(f"{prefix}[{key}]", {k: x for k, x in v.items() if k != "column"}, out)
        else:
            out[prefix] = ",".join(map(str, value)) if value else "()"
    else:
        out[prefix] = value


def flatten_settings(record: Any) -> dict[str, Any]:
    """A run's settings as flat ``section.key`` -> scalar (lists joined with commas)."""
    out: dict[str, Any] = {"dataset": getattr(record, "dataset", None)}
    _flat("data", dict(getattr(record, "data_config", {}) or {}), out)
    _flat("model", dict(getattr(record, "model_config", {}) or {}), out)
    _flat("train", dict(getattr(record, "train_config", {}) or {}), out)
    return out


def _same(values: Sequence[Any]) -> bool:
    norm = []
    for v in values:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            norm.append(None)
        else:
            norm.append(json.dumps(v, sort_keys=True, default=str))
    return len(set(norm)) <= 1


def settings_diff(records: Sequence[Any], labels: Sequence[str] | None = None,
                  only_differences: bool = False) -> pd.DataFrame:
    """Side-by-side settings: one row per setting, one column per run (strings, '—' if absent).

    With ``only_differences`` only settings whose values differ between the runs remain."""
    labels = list(labels) if labels is not None else [f"{r.id}: {r.name}" for r in records]
    flats = [flatten_settings(r) for r in records]
    keys: list[str] = []
    for f in flats:
        keys += [k for k in f if k not in keys]
    rows = {}
    for k in keys:
        vals = [f.get(k) for f in flats]
        if only_differences and _same(vals):
            continue
        rows[k] = ["—" if v is None else str(v) for v in vals]
    df = pd.DataFrame.from_dict(rows, orient="index", columns=labels) if rows else \
        pd.DataFrame(columns=labels, dtype=object)
    df.index.name = "setting"
    return df


# ----------------------------------------------------------------------------- what a task is in each run

LOSS_TITLE = {"binary": "log loss (binary cross-entropy)", "multiclass": "log loss (cross-entropy)",
              "regression": "MSE (standardised target)"}   # short: an axis title longer than the plot ran into its title
REGRESSION_LOSS = "loss (MSE, standardised target)"


@dataclass(frozen=True)
class TaskGroup:
    """What a task is in a run: its column, its kind and, for a binary task, its positive class.
    Metrics of one task are compared only between runs in which it is the same group."""

    task: str
    kind: str
    positive: str | None = None

    @property
    def label(self) -> str:
        """``click (binary=yes)``, ``quality (regression)``: the CLI's ``COL:KIND`` spelling."""
        kind = self.kind if self.positive is None else f"{self.kind}={self.positive}"
        return f"{self.task} ({kind})"

    def describe(self) -> str:
        a = "an" if self.kind[:1] in "aeiou" else "a"
        return f"{a} {self.kind} task" + ("" if self.positive is None else f" with positive class “{self.positive}”")


def _infer_kind(metrics: Iterable[str]) -> str:
    """A task's kind from its metric names (a run whose data config does not list the task)."""
    names = set(metrics)
    for kind, metric in PRIMARY_METRIC.items():   # auc before accuracy: a binary task has both
        if metric in names:
            return kind
    return "unknown"


def run_task_groups(record: Any) -> dict[str, TaskGroup]:
    """task -> its ``TaskGroup`` in this run, in the run's task order. A binary task without an
    explicit positive class gets the one the data decided (``data_summary``), when stored."""
    summary = (getattr(record, "data_summary", None) or {}).get("tasks") or {}
    out: dict[str, TaskGroup] = {}
    for t in (getattr(record, "data_config", None) or {}).get("tasks", []) or []:
        if not isinstance(t, Mapping) or not t.get("column"):
            continue
        col, kind, pos = str(t["column"]), str(t.get("kind") or "binary"), t.get("positive")
        if kind == "binary" and pos is None and isinstance(summary.get(col), Mapping):
            pos = summary[col].get("positive")
        out[col] = TaskGroup(col, kind, str(pos) if kind == "binary" and pos is not None else None)
    for task, named in (getattr(record, "final_metrics", None) or {}).items():
        if str(task) not in out:
            out[str(task)] = TaskGroup(str(task), _infer_kind(named or {}))
    return out


def group_members(records: Sequence[Any]) -> dict[TaskGroup, list]:
    """Each task group -> the records in which the task is that group; tasks in order of first
    appearance, a task's groups next to each other."""
    by_task: dict[str, dict[TaskGroup, list]] = {}
    for r in records:
        for task, g in run_task_groups(r).items():
            by_task.setdefault(task, {}).setdefault(g, []).append(r)
    return {g: rs for groups in by_task.values() for g, rs in groups.items()}


def task_groups(records: Sequence[Any]) -> list[TaskGroup]:
    return list(group_members(records))


def _runs(ids: Iterable[int]) -> str:
    ids = sorted(ids)
    return ("run " if len(ids) == 1 else "runs ") + ", ".join(f"#{i}" for i in ids)


def _and(parts: Sequence[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def group_notes(records: Sequence[Any]) -> list[str]:
    """One sentence per task that means different things in different runs, saying why its
    numbers are shown apart (plain text: it holds column names and class labels)."""
    by_task: dict[str, list[tuple[TaskGroup, list]]] = {}
    for g, rs in group_members(records).items():
        by_task.setdefault(g.task, []).append((g, rs))
    notes = []
    for task, groups in by_task.items():
        if len(groups) < 2:
            continue
        parts = [f"{g.describe()} in {_runs(r.id for r in rs)}" for g, rs in groups]
        why = ("they predict different targets, so their metrics are shown apart"
               if len({g.kind for g, _ in groups}) == 1 else
               "their losses and metrics are different quantities, so they are shown apart")
        notes.append(f"{task} is {_and(parts)}: {why}.")
    return notes


# ----------------------------------------------------------------------------- metric columns

def metric_direction(column: str) -> str | None:
    """'max' / 'min' for a metric column named ``metric``, ``task · metric`` or
    ``metric:<task>:<metric>``; None when unknown and for diagnostics (no direction)."""
    name = str(column).replace(" · ", ":").split(":")[-1]
    return METRIC_DIRECTIONS.get(re.sub(r"\s*\(.*\)$", "", name).strip())


def _metric_of(column: str) -> str:
    return re.sub(r"\s*\(.*\)$", "", str(column).replace(" · ", ":").split(":")[-1]).strip()


@dataclass(frozen=True)
class MetricColumn:
    """One column of the metrics table: a metric of one task group."""

    group: TaskGroup
    metric: str          # as stored: "auc", "loss", "gate_entropy", ...

    @property
    def shown(self) -> str:
        return REGRESSION_LOSS if self.metric == "loss" and self.group.kind == "regression" else self.metric

    @property
    def name(self) -> str:
        return f"{self.group.label} · {self.shown}"

    @property
    def diagnostic(self) -> bool:
        return self.metric in DIAGNOSTIC_METRICS

    @property
    def direction(self) -> str | None:
        return None if self.diagnostic else METRIC_DIRECTIONS.get(self.metric)

    @property
    def primary(self) -> bool:
        return self.metric == PRIMARY_METRIC.get(self.group.kind)

    @property
    def header(self) -> str:
        """The column's title: its name with ↑ (higher is better) or ↓; diagnostics say so."""
        if self.diagnostic:
            return f"{self.name} (diagnostic)"
        return self.name + {"max": " ↑", "min": " ↓"}.get(self.direction or "", "")

    @property
    def help(self) -> str:
        """The header's tooltip (no user text: tooltips may be rendered as Markdown)."""
        if self.diagnostic:
            return (f"{self.metric}: a diagnostic of the model, not a score (no direction, never marked best); "
                    "validation split")
        if self.direction is None:
            return f"final validation {self.shown}"
        better = "higher" if self.direction == "max" else "lower"
        return (f"final validation {self.shown}: {better} is better. Ranked only among runs where this task "
                "has the same kind (and positive class).")


def _order(metric: str, kind: str) -> tuple:
    known = list(METRIC_DIRECTIONS)
    return (metric in DIAGNOSTIC_METRICS, metric != PRIMARY_METRIC.get(kind), metric == "loss",
            known.index(metric) if metric in known else len(known), metric)


@dataclass
class MetricsComparison:
    """The final metrics of some runs, one row per run and one column per task group and metric:
    ``frame`` (float, NaN where a run lacks the metric or the task is another group there),
    ``columns`` (what each column is, in the frame's order) and ``notes`` (why a task is split)."""

    frame: pd.DataFrame
    columns: list[MetricColumn] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def main(self) -> list[str]:
        """The short table: each task group's primary metric (else its first ranked metric)."""
        out, seen = [], set()
        for c in self.columns:
            if c.group not in seen and (c.primary or (c.direction and not any(
                    x.primary for x in self.columns if x.group == c.group))):
                out.append(c.name)
                seen.add(c.group)
        return out

    def directions(self) -> dict[str, str]:
        return {c.name: c.direction for c in self.columns if c.direction}

    def headers(self) -> dict[str, str]:
        return {c.name: c.header for c in self.columns}

    def best(self) -> dict[str, list]:
        return best_per_metric(self.frame, self.directions())


def compare_metrics(records: Sequence[Any], labels: Sequence[str] | None = None) -> MetricsComparison:
    """Final metrics side by side, a task's metrics kept apart per task group (see ``TaskGroup``).

    Per group: the primary metric first, then the other scores, the loss, the diagnostics. A
    binary or multiclass task's ``loss`` is left out when it has ``logloss`` (the same number);
    a regression task's stays, named ``REGRESSION_LOSS``."""
    labels = list(labels) if labels is not None else [f"{r.id}: {r.name}" for r in records]
    rows, names = [], {}
    for r in records:
        groups, row = run_task_groups(r), {}
        for task, named in (getattr(r, "final_metrics", None) or {}).items():
            g = groups[str(task)]
            for metric, value in (named or {}).items():
                if metric == "loss" and g.kind != "regression" and "logloss" in (named or {}):
                    continue
                col = MetricColumn(g, str(metric))
                names.setdefault(col.name, col)
                row[col.name] = value
        rows.append(row)
    order = {g: i for i, g in enumerate(task_groups(records))}
    columns = sorted(names.values(), key=lambda c: (order.get(c.group, len(order)), _order(c.metric, c.group.kind)))
    df = pd.DataFrame(rows, index=pd.Index(labels, name="run"), columns=[c.name for c in columns])
    df = df.apply(pd.to_numeric, errors="coerce").astype(np.float64) if len(df.columns) else df
    return MetricsComparison(df, columns, group_notes(records))


def metrics_frame(records: Sequence[Any], labels: Sequence[str] | None = None) -> pd.DataFrame:
    """``compare_metrics(records, labels).frame``."""
    return compare_metrics(records, labels).frame


def best_per_metric(df: pd.DataFrame, directions: Mapping[str, str] | None = None) -> dict[str, list]:
    """column -> index labels holding the best value (ties all count; NaN never wins; a column
    needs two finite values to have a best; columns with no direction, diagnostics included,
    are left out)."""
    best: dict[str, list] = {}
    for col in df.columns:
        if _metric_of(col) in DIAGNOSTIC_METRICS:
            continue
        d = (directions or {}).get(col) or metric_direction(col)
        if d not in ("max", "min"):
            continue
        v = pd.to_numeric(df[col], errors="coerce").astype(np.float64)
        v = v[np.isfinite(v.to_numpy())]
        if len(v) < 2:
            continue
        target = v.max() if d == "max" else v.min()
        best[col] = list(v.index[np.isclose(v.to_numpy(), target, rtol=1e-12, atol=0.0)])
    return best


def primary_metric(kind: str) -> str:
    return PRIMARY_METRIC.get(kind, "loss")


def primary_columns(records: Sequence[Any], frame: pd.DataFrame) -> tuple[pd.DataFrame, list[MetricColumn]]:
    """Each task group's primary metric as a column aligned with ``frame`` (``RunStore.runs_frame``:
    ``id`` and ``metric:<task>:<metric>``), a run's value only in the column of its own group."""
    groups = {int(r.id): run_task_groups(r) for r in records}
    out, cols = pd.DataFrame(index=frame.index), []
    for g in task_groups(records):
        col = MetricColumn(g, primary_metric(g.kind))
        src = f"metric:{g.task}:{col.metric}"
        if src not in frame:
            continue
        mine = frame["id"].map(lambda i, g=g: groups.get(int(i), {}).get(g.task) == g).astype(bool)
        out[col.name] = pd.to_numeric(frame[src], errors="coerce").astype(np.float64).where(mine)
        cols.append(col)
    return out, cols


def curve_title(metric: str, kind: str | None) -> str | None:
    """The y-axis title of a per-epoch curve when the kind decides what it is (the loss)."""
    return LOSS_TITLE.get(kind or "") if metric == "loss" else None


def experiment_members(records: Sequence[Any]) -> dict[int, list[int]]:
    """experiment id -> the ids of its runs (ascending), newest experiment first; runs outside an
    experiment (or a store without experiments) are left out."""
    out: dict[int, list[int]] = {}
    for r in records:
        e = getattr(r, "experiment_id", None)
        if e is not None:
            out.setdefault(int(e), []).append(int(r.id))
    return {e: sorted(out[e]) for e in sorted(out, reverse=True)}


def experiment_order(records: Sequence[Any]) -> list:
    """The records with an experiment's runs next to each other (newest experiment first, then
    the runs outside any experiment), each group keeping its given order."""
    members = experiment_members(records)
    rank = {e: i for i, e in enumerate(members)}
    return sorted(records, key=lambda r: rank.get(getattr(r, "experiment_id", None), len(rank)))
