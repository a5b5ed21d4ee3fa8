"""Facts about a stored run that the pages show: the kind of each task, the feature columns."""
from __future__ import annotations

from typing import Iterable, Mapping

import pandas as pd

from mmoe.runs.predictions import is_output_column


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
            if not is_output_column(c) and c not in tasks]
