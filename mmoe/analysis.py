"""What the Inspect and Compare pages show, computed without Streamlit or plotly.

Everything here takes plain frames / arrays (a run's ``predictions.parquet``, its
``store.history`` frame, ``RunRecord``s) and returns small frames, arrays or dicts
that ``dashboard/charts.py`` draws. Every function tolerates the awkward cases a
stored run can present: one class only, NaN targets, no gates (Shared-Bottom),
one expert, an empty frame.

Predictions-frame columns (see ``mmoe.runner.decorate_predictions``)::

    _row, _split, <raw columns>, target:<task>, pred:<task>,
    prob:<task>:<class> (multiclass), gate:<task>:e<i> (gated models)

Dimension legend: n samples, e experts, t tasks.
"""
from __future__ import annotations

import io
import json
import math
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from mmoe.tasks import METRIC_DIRECTIONS, PRIMARY_METRIC

MAX_HEATMAP_ROWS = 2000
MAX_SCATTER_POINTS = 3000
_GATE_RE = re.compile(r"^gate:(?P<task>.+):e(?P<e>\d+)$")


# ----------------------------------------------------------------------------- run facts

def task_kinds(data_config: Mapping) -> dict[str, str]:
    """task name -> kind (binary | regression | multiclass), in the run's task order."""
    out = {}
    for t in (data_config or {}).get("tasks", []) or []:
        if isinstance(t, Mapping) and t.get("column"):
            out[str(t["column"])] = str(t.get("kind", "binary"))
    return out


def feature_columns(frame: pd.DataFrame, data_summary: Mapping | None = None,
                    tasks: Iterable[str] = ()) -> list[str]:
    """The raw input columns of a predictions frame: the features the run used when known,
    else every column that is not bookkeeping, a target or a model output."""
    tasks = set(tasks)
    used: list[str] = []
    feats = (data_summary or {}).get("features") or {}
    for kind in ("numeric", "categorical"):
        used += [c for c in feats.get(kind, []) or [] if c in frame.columns and c not in used]
    if used:
        return used
    return [c for c in frame.columns
            if not str(c).startswith(("_", "target:", "pred:", "prob:", "gate:")) and c not in tasks]


# ----------------------------------------------------------------------------- gates

def gate_tasks(frame: pd.DataFrame) -> list[str]:
    """Tasks that have gate columns, in column order."""
    seen: list[str] = []
    for c in frame.columns:
        m = _GATE_RE.match(str(c))
        if m and m["task"] not in seen:
            seen.append(m["task"])
    return seen


def has_gates(frame: pd.DataFrame | None) -> bool:
    return frame is not None and bool(gate_tasks(frame))


def gate_columns(frame: pd.DataFrame, task: str) -> list[str]:
    """``gate:<task>:e<i>`` columns ordered by expert index (e10 after e9)."""
    cols = []
    for c in frame.columns:
        m = _GATE_RE.match(str(c))
        if m and m["task"] == task:
            cols.append((int(m["e"]), c))
    return [c for _, c in sorted(cols)]


def gate_matrix(frame: pd.DataFrame, task: str) -> np.ndarray | None:
    """Per-sample gate weights of a task, [n, e] float64; None when the run has no gates."""
    cols = gate_columns(frame, task)
    if not cols:
        return None
    return frame[cols].to_numpy(dtype=np.float64, na_value=np.nan)


def expert_labels(n_experts: int) -> list[str]:
    return [f"e{i}" for i in range(n_experts)]


def dominant_expert(gates: np.ndarray) -> np.ndarray:
    """Index of the largest gate weight per sample, [n]."""
    if gates.size == 0:
        return np.zeros(len(gates), dtype=int)
    return np.nan_to_num(gates, nan=-1.0).argmax(1)


def order_and_sample(gates: np.ndarray, max_rows: int = MAX_HEATMAP_ROWS, seed: int = 0) -> np.ndarray:
    """Row positions to draw in a gate heatmap: at most ``max_rows`` samples, stratified
    by dominant expert (each expert keeps its share, and at least one row if it dominates
    any), sorted by dominant expert, then by that expert's weight (largest first)."""
    n = len(gates)
    if n == 0:
        return np.zeros(0, dtype=int)
    dom = dominant_expert(gates)
    keep = np.arange(n)
    if n > max_rows:
        rng = np.random.default_rng(seed)
        experts, counts = np.unique(dom, return_counts=True)
        quota = np.maximum(1, np.floor(counts / n * max_rows).astype(int))
        # hand out what rounding left over to the biggest groups, or take back the excess
        while quota.sum() < max_rows:
            quota[np.argmax(counts - quota * n / max_rows)] += 1
        while quota.sum() > max_rows:
            quota[np.argmax(np.where(quota > 1, quota, -1))] -= 1
        parts = [rng.choice(np.flatnonzero(dom == e), size=min(q, c), replace=False)
                 for e, q, c in zip(experts, quota, counts)]
        keep = np.sort(np.concatenate(parts))
    top = np.nan_to_num(gates[keep, dom[keep]], nan=0.0)
    order = np.lexsort((keep, -top, dom[keep]))   # last key is the primary one
    return keep[order]


def utilisation(frame: pd.DataFrame, tasks: Sequence[str] | None = None) -> pd.DataFrame:
    """Mean gate weight per task and expert: long frame task, expert, weight, share_dominant."""
    rows = []
    for task in tasks if tasks is not None else gate_tasks(frame):
        g = gate_matrix(frame, task)
        if g is None or len(g) == 0:
            continue
        dom = dominant_expert(g)
        for e in range(g.shape[1]):
            rows.append({"task": task, "expert": f"e{e}", "weight": float(np.nanmean(g[:, e])),
                         "share_dominant": float(np.mean(dom == e))})
    return pd.DataFrame(rows, columns=["task", "expert", "weight", "share_dominant"])


def sample_entropy(gates: np.ndarray) -> np.ndarray:
    """Entropy (nats) of each sample's gate distribution, [n]."""
    g = np.clip(np.nan_to_num(gates, nan=0.0), 1e-12, None)
    return -(g * np.log(g)).sum(1)


def max_entropy(n_experts: int) -> float:
    """ln(E): the entropy of uniform gating (0 for one expert)."""
    return math.log(n_experts) if n_experts > 0 else 0.0


def entropy_history(history: pd.DataFrame) -> pd.DataFrame:
    """The ``gate_entropy`` rows of a history frame: epoch, split, task, value."""
    if history is None or history.empty or "metric" not in history:
        return pd.DataFrame(columns=["epoch", "split", "task", "value"])
    h = history[history["metric"] == "gate_entropy"]
    return h[["epoch", "split", "task", "value"]].reset_index(drop=True)


def _normalise(g: np.ndarray) -> np.ndarray:
    g = np.clip(np.nan_to_num(g, nan=0.0), 0.0, None)
    s = g.sum(1, keepdims=True)
    e = g.shape[1] if g.ndim == 2 and g.shape[1] else 1
    return np.where(s > 0, g / np.where(s > 0, s, 1.0), 1.0 / e)


def js_divergence(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Per-row Jensen-Shannon divergence in bits (0 identical .. 1 disjoint), [n]."""
    p, q = _normalise(p), _normalise(q)
    m = 0.5 * (p + q)

    def kl(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(a > 0, a * np.log2(a / np.where(b > 0, b, 1.0)), 0.0).sum(1)
    return np.clip(0.5 * kl(p, m) + 0.5 * kl(q, m), 0.0, 1.0)


def task_gate_similarity(frame: pd.DataFrame, tasks: Sequence[str] | None = None,
                         method: str = "js") -> pd.DataFrame:
    """task x task matrix comparing per-sample gates of two tasks, averaged over samples.

    method "js": mean Jensen-Shannon divergence in bits (0 = same routing, 1 = disjoint);
    method "cosine": mean cosine similarity (1 = same routing).
    """
    tasks = [t for t in (tasks if tasks is not None else gate_tasks(frame)) if gate_columns(frame, t)]
    mats = {t: gate_matrix(frame, t) for t in tasks}
    out = pd.DataFrame(np.nan, index=tasks, columns=tasks, dtype=np.float64)
    for a in tasks:
        for b in tasks:
            ga, gb = mats[a], mats[b]
            if ga.shape != gb.shape or len(ga) == 0:
                continue
            if method == "js":
                out.loc[a, b] = float(js_divergence(ga, gb).mean())
            elif method == "cosine":
                na = np.linalg.norm(ga, axis=1)
                nb = np.linalg.norm(gb, axis=1)
                with np.errstate(divide="ignore", invalid="ignore"):
                    cos = (ga * gb).sum(1) / (na * nb)
                out.loc[a, b] = float(np.nanmean(cos)) if np.isfinite(cos).any() else np.nan
            else:
                raise ValueError(f"unknown similarity {method!r}; use 'js' or 'cosine'")
    return out


# ----------------------------------------------------------------------------- predictions

def _xy(frame: pd.DataFrame, task: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(target, prediction, row position) for rows with a target, as float arrays."""
    y = pd.to_numeric(frame.get(f"target:{task}"), errors="coerce").to_numpy(np.float64)
    p = pd.to_numeric(frame.get(f"pred:{task}"), errors="coerce").to_numpy(np.float64)
    ok = np.isfinite(y) & np.isfinite(p)
    return y[ok], p[ok], np.flatnonzero(ok)


def labelled_count(frame: pd.DataFrame, task: str) -> int:
    col = f"target:{task}"
    return int(pd.to_numeric(frame[col], errors="coerce").notna().sum()) if col in frame else 0


def binary_curves(frame: pd.DataFrame, task: str) -> dict[str, Any]:
    """ROC and precision-recall curves of a binary task.

    Returns ``{"ok": bool, "reason": str, "n": int, "positives": int, "roc": DataFrame(fpr, tpr,
    threshold), "auc": float, "pr": DataFrame(recall, precision, threshold), "ap": float,
    "prevalence": float}``; ``ok`` is False (with a reason) when the rows hold one class only.
    """
    y, p, _ = _xy(frame, task)
    out: dict[str, Any] = {"ok": False, "reason": "", "n": int(len(y)), "positives": int((y == 1).sum()),
                           "roc": pd.DataFrame(columns=["fpr", "tpr", "threshold"]), "auc": float("nan"),
                           "pr": pd.DataFrame(columns=["recall", "precision", "threshold"]),
                           "ap": float("nan"), "prevalence": float(y.mean()) if len(y) else float("nan")}
    if len(y) == 0:
        out["reason"] = "no validation rows have a target for this task"
        return out
    if len(np.unique(y)) < 2:
        out["reason"] = (f"all {len(y):,} labelled validation rows are of one class "
                         f"({'positive' if y[0] == 1 else 'negative'}); ROC and precision-recall need both")
        return out
    fpr, tpr, thr = skm.roc_curve(y, p)
    prec, rec, pthr = skm.precision_recall_curve(y, p)
    out.update(ok=True,
               roc=pd.DataFrame({"fpr": fpr, "tpr": tpr, "threshold": np.clip(thr, 0, 1)}),
               auc=float(skm.roc_auc_score(y, p)),
               pr=pd.DataFrame({"recall": rec, "precision": prec,
                                "threshold": np.append(pthr, np.nan)}),
               ap=float(skm.average_precision_score(y, p)))
    return out


def calibration(frame: pd.DataFrame, task: str, bins: int = 10) -> pd.DataFrame:
    """Reliability curve: per probability bin (equal width on [0, 1]) the mean predicted
    probability, the observed positive rate and the row count. Empty bins are left out."""
    y, p, _ = _xy(frame, task)
    cols = ["bin_low", "bin_high", "mean_pred", "frac_pos", "count"]
    if len(y) == 0:
        return pd.DataFrame(columns=cols)
    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.clip(np.digitize(p, edges[1:-1], right=False), 0, bins - 1)
    rows = []
    for b in range(bins):
        sel = idx == b
        if sel.any():
            rows.append((edges[b], edges[b + 1], float(p[sel].mean()), float(y[sel].mean()), int(sel.sum())))
    return pd.DataFrame(rows, columns=cols)


def score_histogram(frame: pd.DataFrame, task: str, bins: int = 20,
                    class_names: Sequence[str] = ("negative", "positive")) -> pd.DataFrame:
    """Counts of predicted probabilities per bin and true class: bin_low, bin_high, bin_mid, cls, count."""
    y, p, _ = _xy(frame, task)
    edges = np.linspace(0.0, 1.0, bins + 1)
    rows = []
    for value, name in zip((0.0, 1.0), class_names):
        counts, _ = np.histogram(np.clip(p[y == value], 0, 1), bins=edges)
        for b in range(bins):
            rows.append((edges[b], edges[b + 1], 0.5 * (edges[b] + edges[b + 1]), str(name), int(counts[b])))
    return pd.DataFrame(rows, columns=["bin_low", "bin_high", "bin_mid", "cls", "count"])


def regression_points(frame: pd.DataFrame, task: str, max_points: int = MAX_SCATTER_POINTS,
                      seed: int = 0) -> tuple[pd.DataFrame, dict[str, float]]:
    """Predicted vs actual for a regression task, randomly downsampled to ``max_points``.

    Returns (points: row, actual, predicted, residual; stats over *all* labelled rows:
    n, shown, rmse, mae, r2, residual_mean, residual_std)."""
    y, p, pos = _xy(frame, task)
    res = p - y
    n = len(y)
    stats = {"n": n, "shown": min(n, max_points),
             "rmse": float(np.sqrt(np.mean(res ** 2))) if n else float("nan"),
             "mae": float(np.mean(np.abs(res))) if n else float("nan"),
             "r2": float(skm.r2_score(y, p)) if n > 1 and np.var(y) > 0 else float("nan"),
             "residual_mean": float(res.mean()) if n else float("nan"),
             "residual_std": float(res.std()) if n else float("nan")}
    sel = np.arange(n)
    if n > max_points:
        sel = np.sort(np.random.default_rng(seed).choice(n, size=max_points, replace=False))
    rows = frame["_row"].to_numpy()[pos[sel]] if "_row" in frame else pos[sel]
    pts = pd.DataFrame({"row": rows, "actual": y[sel], "predicted": p[sel], "residual": res[sel]})
    return pts, stats


def class_labels(frame: pd.DataFrame, task: str) -> list[str]:
    """Class labels of a multiclass task in class-index order (from its ``prob:`` columns)."""
    prefix = f"prob:{task}:"
    return [str(c)[len(prefix):] for c in frame.columns if str(c).startswith(prefix)]


def confusion(frame: pd.DataFrame, task: str) -> pd.DataFrame:
    """Confusion matrix of a multiclass task: rows actual class, columns predicted class (counts).

    ``target:<task>`` holds the class index; the prediction is the argmax of the ``prob:`` columns."""
    labels = class_labels(frame, task)
    if not labels:
        return pd.DataFrame()
    y = pd.to_numeric(frame.get(f"target:{task}"), errors="coerce").to_numpy(np.float64)
    probs = frame[[f"prob:{task}:{c}" for c in labels]].to_numpy(np.float64)
    ok = np.isfinite(y) & np.isfinite(probs).all(1)
    yi = y[ok].astype(int)
    pi = probs[ok].argmax(1) if ok.any() else np.zeros(0, dtype=int)
    cm = skm.confusion_matrix(yi, pi, labels=list(range(len(labels)))) if len(yi) else \
        np.zeros((len(labels), len(labels)), dtype=int)
    return pd.DataFrame(cm, index=pd.Index(labels, name="actual"), columns=pd.Index(labels, name="predicted"))


def normalise_rows(cm: pd.DataFrame) -> pd.DataFrame:
    """Each row of a confusion matrix as shares of that actual class (recall on the diagonal)."""
    s = cm.sum(axis=1).replace(0, np.nan)
    return cm.div(s, axis=0).fillna(0.0)


def sample_details(frame: pd.DataFrame, pos: int, kinds: Mapping[str, str],
                   features: Sequence[str] | None = None) -> dict[str, Any]:
    """Everything about one sample (row position ``pos`` in the predictions frame):
    ``{"row", "split", "features": {col: value}, "tasks": {task: {"kind", "target", "prediction",
    "probabilities": {cls: p} | None, "gates": [..] | None}}}``."""
    r = frame.iloc[int(pos)]
    feats = list(features) if features is not None else feature_columns(frame, tasks=kinds)
    out: dict[str, Any] = {"row": int(r["_row"]) if "_row" in frame else int(pos),
                           "split": r.get("_split"), "features": {c: r[c] for c in feats if c in frame}, "tasks": {}}
    for task, kind in kinds.items():
        target = r.get(f"target:{task}")
        target = None if target is None or (isinstance(target, float) and math.isnan(target)) else target
        labels = class_labels(frame, task) if kind == "multiclass" else []
        if kind == "multiclass" and target is not None and 0 <= int(target) < len(labels):
            target = labels[int(target)]
        elif kind == "binary" and target is not None:
            target = int(target)
        probs = {c: float(r[f"prob:{task}:{c}"]) for c in labels} if labels else None
        g = gate_columns(frame, task)
        out["tasks"][task] = {"kind": kind, "target": target, "prediction": r.get(f"pred:{task}"),
                              "probabilities": probs,
                              "gates": [float(r[c]) for c in g] if g else None}
    return out


# ----------------------------------------------------------------------------- history

def curves(history: pd.DataFrame, metric: str = "loss") -> pd.DataFrame:
    """One metric's per-epoch values: epoch, split, task, value (sorted)."""
    if history is None or history.empty:
        return pd.DataFrame(columns=["epoch", "split", "task", "value"])
    h = history[history["metric"] == metric]
    return h[["epoch", "split", "task", "value"]].sort_values(["task", "split", "epoch"]).reset_index(drop=True)


def history_metrics(history: pd.DataFrame) -> list[str]:
    """Metrics present in a history frame, loss first."""
    if history is None or history.empty:
        return []
    ms = sorted(set(history["metric"]))
    return sorted(ms, key=lambda m: (m != "loss", m == "gate_entropy", m))


def ema(values: Sequence[float], smoothing: float) -> np.ndarray:
    """Exponential moving average (TensorBoard-style, debiased): smoothing 0 = raw, 0.99 = very
    smooth. NaN / inf values are passed through and do not disturb the running average."""
    v = np.asarray(values, dtype=np.float64)
    if not 0 <= smoothing < 1:
        raise ValueError(f"smoothing must be in [0, 1), got {smoothing}")
    if smoothing == 0 or len(v) == 0:
        return v.copy()
    out = np.empty_like(v)
    acc, weight = 0.0, 0.0
    for i, x in enumerate(v):
        if not np.isfinite(x):
            out[i] = x
            continue
        acc = smoothing * acc + (1 - smoothing) * x
        weight = smoothing * weight + (1 - smoothing)
        out[i] = acc / weight
    return out


def final_metrics_table(final_metrics: Mapping[str, Mapping[str, float]]) -> pd.DataFrame:
    """A run's final metrics as task rows x metric columns (primary-ish metrics first)."""
    if not final_metrics:
        return pd.DataFrame()
    df = pd.DataFrame({t: dict(m) for t, m in final_metrics.items()}).T
    order = ["auc", "accuracy", "macro_f1", "rmse", "mae", "r2", "logloss", "loss", "gate_entropy"]
    cols = [c for c in order if c in df.columns] + [c for c in df.columns if c not in order]
    df = df[cols].apply(pd.to_numeric, errors="coerce").astype(np.float64)
    if "logloss" in df.columns and "loss" in df.columns:
        # binary / multiclass: the training loss *is* the log loss; show it once
        df.loc[df["logloss"].notna(), "loss"] = np.nan
        if df["loss"].isna().all():
            df = df.drop(columns="loss")
    df.index.name = "task"
    return df


# ----------------------------------------------------------------------------- comparing runs

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


# ----------------------------------------------------------------------------- downloads

def readable_predictions(frame: pd.DataFrame) -> pd.DataFrame:
    """The predictions frame as a user reads it: a multiclass ``target:<task>`` as its class label
    (stored as the class index, which the charts use), not a number."""
    out = frame.copy()
    for col in [c for c in frame.columns if str(c).startswith("target:")]:
        task = str(col)[len("target:"):]
        labels = class_labels(frame, task)
        if labels:
            idx = pd.to_numeric(frame[col], errors="coerce")
            ok = idx.notna() & (idx >= 0) & (idx < len(labels))
            lab = pd.Series(pd.NA, index=frame.index, dtype="object")
            lab[ok] = np.asarray(labels, dtype=object)[idx[ok].astype(int).to_numpy()]
            out[col] = lab
    return out


def predictions_csv(frame: pd.DataFrame) -> bytes:
    return readable_predictions(frame).to_csv(index=False).encode("utf-8")


MODEL_FILES = ("model.pt", "model.json", "preprocessor.json")


def model_archive(artifact_dir: str | Path) -> bytes | None:
    """model.pt + model.json + preprocessor.json zipped (None when the run saved no model)."""
    folder = Path(artifact_dir)
    if not (folder / "model.pt").is_file():
        return None
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name in MODEL_FILES:
            if (folder / name).is_file():
                z.write(folder / name, arcname=name)
    return buf.getvalue()


def quiet(fn, *args, **kwargs):
    """Call ``fn`` with sklearn/numpy warnings silenced (undefined metrics on tiny data)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def format_number(v) -> str:
    """A measured value for a table cell or tooltip: 4 significant digits at least, never fewer
    integer digits than the value has (9999.39 -> "9,999.39", not "9999"; 10900.04 -> "10,900.04",
    not "1.09e+04"), scientific only for very large or tiny magnitudes."""
    try:
        x = float(v)
    except (TypeError, ValueError):
        return str(v)
    if math.isnan(x):
        return "NA"
    if math.isinf(x) or x == 0:
        return f"{x:g}"
    mag = abs(x)
    if mag >= 1e9 or mag < 1e-4:
        return f"{x:.4g}"
    decimals = min(8, max(2, 3 - math.floor(math.log10(mag))))
    text = f"{x:,.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text

