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


def step_text(step: str) -> str:
    """A run's recorded step (``FitResult.step``) in words: 'fused' -> 'fused training step'; 'fused, CUDA graph,
    780 replays' -> 'fused training step, CUDA graph, 780 replays'; 'autograd (dropout)' -> 'autograd training
    step (the fused step does not cover dropout)'. The fused step is MMoE Lab's hand-written forward, backward
    and Adam (the same numbers as autograd, faster); autograd takes every model and setting."""
    if step.startswith("fused"):
        return "fused training step" + step[len("fused"):]
    if step.startswith("autograd (") and step.endswith(")"):
        why = step[len("autograd ("):-1]
        if why in ("off", "switched off"):
            return "autograd training step (the fused step was switched off)"
        return f"autograd training step (the fused step does not cover {why})"
    return f"{step} step"


def device_text(data_summary: Mapping | None) -> str:
    """Where a run trained and by which step, in words: 'cpu · fused training step', 'cuda:0 · fused training
    step, CUDA graph, 780 replays · 2 processes (torchrun, nccl)', 'cpu · autograd training step (the fused step
    does not cover dropout)' (runs stored before the step was recorded: no step)."""
    summ = data_summary or {}
    parts = [str(summ.get("device") or "")]
    if summ.get("step"):
        parts.append(step_text(str(summ["step"])))
    dist = summ.get("distributed") or {}
    n = int(dist.get("world_size") or 1)
    if n > 1:
        parts.append(f"{n} processes (torchrun, {dist.get('backend', '?')})")
    return " · ".join(p for p in parts if p)
