"""Per task kind: the training loss, the prediction transform, and validation metrics.

kinds: binary (BCE with logits), regression (MSE on the standardised target),
multiclass (cross-entropy). Metrics come from scikit-learn and are computed in
the target's original units (regression predictions are de-standardised).
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import sklearn
import torch
import torch.nn.functional as F
from sklearn import metrics as skm
from torch import Tensor

# metric -> "max" or "min" (which direction is better); used to highlight the best run
METRIC_DIRECTIONS = {"auc": "max", "logloss": "min", "accuracy": "max", "rmse": "min", "mae": "min",
                     "r2": "max", "macro_f1": "max", "loss": "min"}
# what a run logs or shows about itself that is no score: no direction, never marked "best"
# (gate entropy and expert utilisation describe the routing, uncertainty_log_var the loss weighting)
DIAGNOSTIC_METRICS = frozenset({"gate_entropy", "utilisation", "uncertainty_log_var"})
# the range a metric can take (None: unbounded): an interval over seeds is clipped to it
METRIC_BOUNDS = {"auc": (0.0, 1.0), "accuracy": (0.0, 1.0), "macro_f1": (0.0, 1.0), "r2": (None, 1.0),
                 "rmse": (0.0, None), "mae": (0.0, None), "logloss": (0.0, None), "loss": (0.0, None)}
PRIMARY_METRIC = {"binary": "auc", "regression": "rmse", "multiclass": "accuracy"}


def headline_metric(metrics) -> str | None:
    """The primary metric among a task's metric names when its kind is not at hand: each kind's
    primary metric, in PRIMARY_METRIC's order (a binary task also has an accuracy, so auc first)."""
    names = set(metrics)
    return next((m for m in PRIMARY_METRIC.values() if m in names), None)


def masked_loss(kind: str, pred: Tensor, y: Tensor, mask: Tensor) -> Tensor:
    """Mean loss over rows whose target is present. pred [b, d], y [b], mask [b] bool."""
    pred = pred.float()
    if kind == "binary":
        per_row = F.binary_cross_entropy_with_logits(pred[:, 0], y, reduction="none")
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


def compute_metrics(kind: str, y_true: np.ndarray, pred: np.ndarray, n_classes: int = 2) -> dict[str, float]:
    """Validation metrics for one task on rows with a target. pred is the output of ``transform``;
    y_true is 0/1 (binary), the original value (regression) or the class index (multiclass)."""
    y_true = np.asarray(y_true)
    pred = np.asarray(pred, dtype=np.float64)
    if len(y_true) == 0:
        return {}
    if not np.isfinite(pred).all():   # a diverged model: report NaN, the trainer says "diverged"
        names = {"binary": ("auc", "logloss", "accuracy"), "regression": ("rmse", "mae", "r2"),
                 "multiclass": ("accuracy", "macro_f1", "logloss")}[kind]
        return dict.fromkeys(names, float("nan"))
    # inputs are checked above (finite predictions; targets validated when the data was prepared),
    # so scikit-learn's own re-validation, about 10% of an epoch of a small model, is skipped
    with warnings.catch_warnings(), sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
        warnings.simplefilter("ignore")
        if kind == "binary":
            p = np.clip(pred, 1e-7, 1 - 1e-7)
            auc = skm.roc_auc_score(y_true, p) if len(np.unique(y_true)) == 2 else float("nan")
            return {"auc": _finite(auc), "logloss": _finite(skm.log_loss(y_true, p, labels=[0, 1])),
                    "accuracy": float(skm.accuracy_score(y_true, p >= 0.5))}
        if kind == "regression":
            err = pred - y_true
            r2 = skm.r2_score(y_true, pred) if len(y_true) > 1 else float("nan")
            return {"rmse": float(np.sqrt(np.mean(err ** 2))), "mae": float(np.mean(np.abs(err))),
                    "r2": _finite(r2)}
        labels = list(range(n_classes))
        p = np.clip(pred, 1e-7, 1.0)
        p = p / p.sum(1, keepdims=True)
        hard = p.argmax(1)
        return {"accuracy": float(skm.accuracy_score(y_true, hard)),
                "macro_f1": _finite(skm.f1_score(y_true, hard, labels=labels, average="macro", zero_division=0)),
                "logloss": _finite(skm.log_loss(y_true, p, labels=labels))}
