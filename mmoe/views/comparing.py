"""Comparing runs: flattened settings and their differences, the metrics table, the best run
per metric (by its direction)."""
from __future__ import annotations

import json
import math
import re
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from mmoe.tasks import METRIC_DIRECTIONS, PRIMARY_METRIC
from mmoe.views.runinfo import task_kinds


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


def metric_direction(column: str) -> str | None:
    """'max' / 'min' for a metric column named ``metric``, ``task · metric`` or
    ``metric:<task>:<metric>``; None when unknown."""
    name = str(column).replace(" · ", ":").split(":")[-1]
    return METRIC_DIRECTIONS.get(re.sub(r"\s*\(.*\)$", "", name).strip())


REGRESSION_LOSS = "loss (MSE, standardised target)"


def metrics_frame(records: Sequence[Any], labels: Sequence[str] | None = None) -> pd.DataFrame:
    """Final metrics side by side: one row per run, one ``task · metric`` column per metric (float,
    NaN where a run lacks the metric, e.g. Shared-Bottom's gate entropy).

    A task's ``loss`` column is left out when the task has ``logloss`` (for binary and multiclass
    tasks the loss is the log loss); for regression it stays, named ``REGRESSION_LOSS``."""
    labels = list(labels) if labels is not None else [f"{r.id}: {r.name}" for r in records]
    rows = []
    with_logloss: set[str] = set()
    regression: set[str] = set()
    for r in records:
        row = {}
        regression |= {t for t, k in task_kinds(getattr(r, "data_config", None) or {}).items() if k == "regression"}
        for task, named in (r.final_metrics or {}).items():
            for metric, value in (named or {}).items():
                row[f"{task} · {metric}"] = value
                if metric == "logloss":
                    with_logloss.add(task)
        rows.append(row)
    df = pd.DataFrame(rows, index=pd.Index(labels, name="run"))
    df = df.apply(pd.to_numeric, errors="coerce").astype(np.float64) if len(df.columns) else df
    df = df.drop(columns=[f"{t} · loss" for t in with_logloss if f"{t} · loss" in df.columns])
    df = df.rename(columns={f"{t} · loss": f"{t} · {REGRESSION_LOSS}" for t in regression - with_logloss})
    return df.reindex(columns=sorted(df.columns, key=lambda c: (c.split(" · ")[0], c.split(" · ")[-1])))


def best_per_metric(df: pd.DataFrame, directions: Mapping[str, str] | None = None) -> dict[str, list]:
    """column -> index labels holding the best value (ties all count; NaN never wins;
    columns with an unknown direction or no finite value are left out)."""
    best: dict[str, list] = {}
    for col in df.columns:
        d = (directions or {}).get(col) or metric_direction(col)
        if d not in ("max", "min"):
            continue
        v = pd.to_numeric(df[col], errors="coerce").astype(np.float64)
        v = v[np.isfinite(v.to_numpy())]
        if v.empty:
            continue
        target = v.max() if d == "max" else v.min()
        best[col] = list(v.index[np.isclose(v.to_numpy(), target, rtol=1e-12, atol=0.0)])
    return best


def primary_metric(kind: str) -> str:
    return PRIMARY_METRIC.get(kind, "loss")
