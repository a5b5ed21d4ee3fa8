"""The learned task weights of a run, per epoch: what Inspect's Training tab draws for GradNorm
(the metric ``task_weight`` its step records) and for uncertainty weighting (exp(-s_k) of the logged
log variance ``uncertainty_log_var``, the factor on task k's loss in Kendall et al.'s objective)."""
from __future__ import annotations

import numpy as np
import pandas as pd

METHODS = {"task_weight": "GradNorm", "uncertainty_log_var": "uncertainty weighting"}


def learned_task_weights(history: pd.DataFrame) -> tuple[pd.DataFrame, str | None]:
    """(epoch, task, weight) rows sorted by task and epoch, and the method's name; empty and None for a
    run whose weights were fixed (or an older run that logged none)."""
    empty = pd.DataFrame(columns=["epoch", "task", "weight"])
    if history is None or history.empty:
        return empty, None
    for metric, method in METHODS.items():
        h = history[(history["metric"] == metric) & (history["split"] == "train")]
        if h.empty:
            continue
        values = pd.to_numeric(h["value"], errors="coerce").to_numpy(np.float64)
        weight = values if metric == "task_weight" else np.exp(-values)
        out = pd.DataFrame({"epoch": h["epoch"].to_numpy(), "task": h["task"].to_numpy(), "weight": weight})
        return out.sort_values(["task", "epoch"]).reset_index(drop=True), method
    return empty, None
