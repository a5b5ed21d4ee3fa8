"""What the Inspect page plots per task from the stored predictions: ROC/PR, calibration, score
histograms, predicted vs actual, confusion matrices, one sample's details."""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from mmoe.runs.predictions import ROW, SPLIT, gate_columns, pred_col, prob_col, prob_labels, target_col
from mmoe.views.runinfo import feature_columns

MAX_SCATTER_POINTS = 3000


def _xy(frame: pd.DataFrame, task: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(target, prediction, row position) for rows with a target, as float arrays."""
    y = pd.to_numeric(frame.get(target_col(task)), errors="coerce").to_numpy(np.float64)
    p = pd.to_numeric(frame.get(pred_col(task)), errors="coerce").to_numpy(np.float64)
    ok = np.isfinite(y) & np.isfinite(p)
    return y[ok], p[ok], np.flatnonzero(ok)


def labelled_count(frame: pd.DataFrame, task: str) -> int:
    col = target_col(task)
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
    """Reliability curve: per probability bin the mean predicted probability, the observed positive
    rate and the row count. The bins are quantiles of the predictions (about as many rows in each),
    so a task with few positives, whose predictions crowd near 0, still gets a curve; repeated
    quantiles (many equal predictions) merge. Empty bins are left out."""
    y, p, _ = _xy(frame, task)
    cols = ["bin_low", "bin_high", "mean_pred", "frac_pos", "count"]
    if len(y) == 0:
        return pd.DataFrame(columns=cols)
    edges = np.unique(np.quantile(p, np.linspace(0.0, 1.0, bins + 1)))
    if len(edges) < 2:
        edges = np.array([float(p.min()), float(p.max()) + 1e-12])
    bins = len(edges) - 1
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
    rows = frame[ROW].to_numpy()[pos[sel]] if ROW in frame else pos[sel]
    pts = pd.DataFrame({"row": rows, "actual": y[sel], "predicted": p[sel], "residual": res[sel]})
    return pts, stats


def class_labels(frame: pd.DataFrame, task: str) -> list[str]:
    """Class labels of a multiclass task in class-index order (from its ``prob:`` columns)."""
    return prob_labels(frame, task)


def confusion(frame: pd.DataFrame, task: str) -> pd.DataFrame:
    """Confusion matrix of a multiclass task: rows actual class, columns predicted class (counts).

    ``target:<task>`` holds the class index; the prediction is the argmax of the ``prob:`` columns."""
    labels = class_labels(frame, task)
    if not labels:
        return pd.DataFrame()
    y = pd.to_numeric(frame.get(target_col(task)), errors="coerce").to_numpy(np.float64)
    probs = frame[[prob_col(task, c) for c in labels]].to_numpy(np.float64)
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
                   features: Sequence[str] | None = None,
                   binary_labels: Mapping[str, Sequence[str]] | None = None) -> dict[str, Any]:
    """Everything about one sample (row position ``pos`` in the predictions frame):
    ``{"row", "split", "features": {col: value}, "tasks": {task: {"kind", "target", "prediction",
    "probabilities": {cls: p} | None, "gates": [..] | None}}}``. ``binary_labels`` (task -> [negative,
    positive], the run's ``data_summary["tasks"][task]["classes"]``) shows a binary target by its label."""
    r = frame.iloc[int(pos)]
    feats = list(features) if features is not None else feature_columns(frame, tasks=kinds)
    out: dict[str, Any] = {"row": int(r[ROW]) if ROW in frame else int(pos),
                           "split": r.get(SPLIT), "features": {c: r[c] for c in feats if c in frame}, "tasks": {}}
    for task, kind in kinds.items():
        target = r.get(target_col(task))
        target = None if target is None or (isinstance(target, float) and math.isnan(target)) else target
        labels = class_labels(frame, task) if kind == "multiclass" else []
        if kind == "multiclass" and target is not None and 0 <= int(target) < len(labels):
            target = labels[int(target)]
        elif kind == "binary" and target is not None:
            names = (binary_labels or {}).get(task)
            target = str(names[int(target)]) if names and len(names) == 2 else int(target)
        probs = {c: float(r[prob_col(task, c)]) for c in labels} if labels else None
        g = gate_columns(frame, task)
        out["tasks"][task] = {"kind": kind, "target": target, "prediction": r.get(pred_col(task)),
                              "probabilities": probs,
                              "gates": [float(r[c]) for c in g] if g else None}
    return out
