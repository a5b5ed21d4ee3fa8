"""Verdicts on a stored run that the command line and the pages both give: the kind of each task, and
whether a finished run learned anything (kept out of ``mmoe.views``, whose package imports the plotting
and statistics libraries, so that ``python -m mmoe train`` does not pay for them)."""
from __future__ import annotations

from typing import Mapping


def task_kinds(data_config: Mapping) -> dict[str, str]:
    """task name -> kind (binary | regression | multiclass), in the run's task order."""
    out = {}
    for t in (data_config or {}).get("tasks", []) or []:
        if isinstance(t, Mapping) and t.get("column"):
            out[str(t["column"])] = str(t.get("kind", "binary"))
    return out


CHANCE_AUC = 0.55      # an AUC below this is "hardly better than chance"


def no_better_than_baseline(record) -> list[str]:
    """The tasks of a finished run whose validation metric is no better than a constant prediction:
    R² <= 0 (the mean), AUC below CHANCE_AUC (chance), accuracy at most the majority class's share.
    One sentence each, empty when the run learned something everywhere."""
    if getattr(record, "status", None) != "finished":
        return []
    out = []
    stats = ((getattr(record, "data_summary", None) or {}).get("tasks") or {})
    for task, kind in task_kinds(record.data_config).items():
        m = (record.final_metrics or {}).get(task, {})
        if kind == "regression" and m.get("r2") is not None and m["r2"] <= 0:
            out.append(f"{task}: R² {m['r2']:.3f} — no better than predicting the mean of the training rows")
        elif kind == "binary" and m.get("auc") is not None and m["auc"] < CHANCE_AUC:
            out.append(f"{task}: AUC {m['auc']:.3f} — hardly better than chance (0.5)")
        elif kind == "multiclass" and m.get("accuracy") is not None:
            counts = (stats.get(task) or {}).get("class_counts") or {}
            total = sum(counts.values())
            if total and m["accuracy"] <= max(counts.values()) / total + 0.005:
                share = max(counts.values()) / total
                out.append(f"{task}: accuracy {m['accuracy']:.3f} — no better than always predicting the most "
                           f"frequent class ({share:.3f} of the rows)")
    return out
