"""Per-epoch history of a run: loss and metric curves, smoothing, the final metrics table."""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd


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
