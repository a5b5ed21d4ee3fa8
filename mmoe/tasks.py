"""Per task kind: the training loss, the prediction transform, and validation metrics.

kinds: binary (BCE with logits), regression (MSE on the standardised target),
multiclass (cross-entropy). Metrics are computed in the target's original units
(regression predictions are de-standardised) and equal scikit-learn's.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

# metric -> "max" or "min" (which direction is better); used to highlight the best run
METRIC_DIRECTIONS = {"auc": "max", "logloss": "min", "accuracy": "max", "rmse": "min", "mae": "min",
                     "r2": "max", "macro_f1": "max", "loss": "min"}
# what a run logs or shows about itself that is no score: no direction, never marked "best"
# (gate entropy and expert utilisation describe the routing, uncertainty_log_var and task_weight the loss weighting)
DIAGNOSTIC_METRICS = frozenset({"gate_entropy", "utilisation", "uncertainty_log_var", "task_weight"})
# the range a metric can take (None: unbounded): an interval over seeds is clipped to it
METRIC_BOUNDS = {"auc": (0.0, 1.0), "accuracy": (0.0, 1.0), "macro_f1": (0.0, 1.0), "r2": (None, 1.0),
                 "rmse": (0.0, None), "mae": (0.0, None), "logloss": (0.0, None), "loss": (0.0, None)}
PRIMARY_METRIC = {"binary": "auc", "regression": "rmse", "multiclass": "accuracy"}


def headline_metric(metrics) -> str | None:
    """The primary metric among a task's metric names when its kind is not at hand: each kind's
    primary metric, in PRIMARY_METRIC's order (a binary task also has an accuracy, so auc first)."""
    names = set(metrics)
    return next((m for m in PRIMARY_METRIC.values() if m in names), None)


def masked_loss(kind: str, pred: Tensor, y: Tensor, mask: Tensor, pos_weight: float | None = None) -> Tensor:
    """Mean loss over rows whose target is present. pred [b, d], y [b], mask [b] bool.
    ``pos_weight`` (binary only): BCE's weight of the positive rows' term, -(w y log p + (1-y) log(1-p))."""
    pred = pred.float()
    if kind == "binary":
        pw = None if pos_weight is None else torch.tensor(float(pos_weight), device=pred.device)
        per_row = F.binary_cross_entropy_with_logits(pred[:, 0], y, reduction="none", pos_weight=pw)
    elif kind == "regression":
        per_row = (pred[:, 0] - y) ** 2
    elif kind == "multiclass":
        per_row = F.cross_entropy(pred, y, reduction="none")
    else:
        raise ValueError(f"unknown task kind {kind!r}")
    m = mask.to(per_row.dtype)
    return (per_row * m).sum() / m.sum().clamp(min=1.0)


def transform(kind: str, raw: Tensor, scale: tuple[float, float] = (0.0, 1.0)) -> Tensor:
    """Raw model output [n, d] -> prediction: P(positive) [n], value [n] in original units, or class probs [n, C]."""
    raw = raw.float()
    if kind == "binary":
        return torch.sigmoid(raw[:, 0])
    if kind == "regression":
        mean, std = scale
        return raw[:, 0] * std + mean
    return torch.softmax(raw, -1)


def _finite(x: float) -> float:
    return float(x) if x is not None and math.isfinite(float(x)) else float("nan")


def _auc(y: np.ndarray, p: np.ndarray) -> float:
    """ROC AUC as the Mann-Whitney statistic: tied scores share their average rank (half credit),
    which is what the area under scikit-learn's ROC curve counts too."""
    order = np.argsort(p)              # tie groups get their average rank, so no stable sort is needed
    ps = p[order]
    starts = np.flatnonzero(np.r_[True, ps[1:] != ps[:-1]])           # first position of each tie group
    ends = np.r_[starts[1:], len(ps)]
    avg = (starts + ends + 1) / 2.0                                    # average 1-based rank per group
    ranks = np.empty(len(ps))
    ranks[order] = np.repeat(avg, ends - starts)
    pos = y == 1
    n_pos = int(pos.sum())
    n_neg = len(y) - n_pos
    return (ranks[pos].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def _logloss(probs_of_truth: np.ndarray) -> float:
    return float(-np.mean(np.log(probs_of_truth)))


def compute_metrics(kind: str, y_true: np.ndarray, pred: np.ndarray, n_classes: int = 2) -> dict[str, float]:
    """Validation metrics for one task on rows with a target. pred is the output of ``transform``;
    y_true is 0/1 (binary), the original value (regression) or the class index (multiclass).

    Written with numpy rather than scikit-learn: they run every epoch, and importing scikit-learn
    costs a training command about a second. Each one equals scikit-learn's (``roc_auc_score``,
    ``log_loss``, ``accuracy_score``, ``r2_score``, ``f1_score(average="macro", zero_division=0)``);
    ``tests/test_tasks.py`` holds them to it, ties, absent classes and constant targets included."""
    y_true = np.asarray(y_true)
    pred = np.asarray(pred, dtype=np.float64)
    if len(y_true) == 0:
        return {}
    if not np.isfinite(pred).all():   # a diverged model: report NaN, the trainer says "diverged"
        names = {"binary": ("auc", "logloss", "accuracy"), "regression": ("rmse", "mae", "r2"),
                 "multiclass": ("accuracy", "macro_f1", "logloss")}[kind]
        return dict.fromkeys(names, float("nan"))
    if kind == "binary":
        y = y_true.astype(np.int64)
        p = np.clip(pred, 1e-7, 1 - 1e-7)
        auc = _auc(y, p) if 0 < y.sum() < len(y) else float("nan")
        return {"auc": _finite(auc), "logloss": _finite(_logloss(np.where(y == 1, p, 1 - p))),
                "accuracy": float(np.mean(y == (p >= 0.5)))}
    if kind == "regression":
        y = y_true.astype(np.float64)
        err = pred - y
        sse = float(np.sum(err ** 2))
        sst = float(np.sum((y - y.mean()) ** 2))
        r2 = float("nan") if len(y) < 2 else (1.0 - sse / sst if sst > 0 else (1.0 if sse == 0 else 0.0))
        return {"rmse": float(np.sqrt(sse / len(y))), "mae": float(np.mean(np.abs(err))), "r2": _finite(r2)}
    y = y_true.astype(np.int64)
    p = np.clip(pred, 1e-7, 1.0)
    p = p / p.sum(1, keepdims=True)
    hard = p.argmax(1)
    cm = np.bincount(y * n_classes + hard, minlength=n_classes * n_classes).reshape(n_classes, n_classes)
    tp = np.diag(cm).astype(np.float64)
    denom = cm.sum(0) + cm.sum(1)                                      # 2tp + fp + fn
    f1 = np.divide(2 * tp, denom, out=np.zeros(n_classes), where=denom > 0)
    return {"accuracy": float(np.mean(y == hard)), "macro_f1": _finite(f1.mean()),
            "logloss": _finite(_logloss(p[np.arange(len(y)), y]))}
