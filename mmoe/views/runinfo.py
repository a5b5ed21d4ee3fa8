"""Facts about a stored run that the pages show: the kind of each task, the feature columns."""
from __future__ import annotations

from typing import Iterable, Mapping

import pandas as pd

from mmoe.runs.predictions import is_output_column
from mmoe.runs.verdicts import CHANCE_AUC, no_better_than_baseline, task_kinds  # noqa: F401 - re-exported


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
            if not is_output_column(c) and c not in tasks]


def device_text(data_summary: Mapping | None) -> str:
    """Where a run trained and by which step, in words: 'cpu · fused step', 'cuda:0 · fused, CUDA graph, 780
    replays step · 2 processes (torchrun, nccl)', 'cpu · autograd (dropout) step' (runs stored before the step
    was recorded: no step)."""
    summ = data_summary or {}
    parts = [str(summ.get("device") or "")]
    if summ.get("step"):
        parts.append(f"{summ['step']} step")
    dist = summ.get("distributed") or {}
    n = int(dist.get("world_size") or 1)
    if n > 1:
        parts.append(f"{n} processes (torchrun, {dist.get('backend', '?')})")
    return " · ".join(p for p in parts if p)
