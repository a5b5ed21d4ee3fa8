"""The predictions frame: the schema of the stored ``predictions.parquet`` (and of ``mmoe predict``
output), its one writer and its typed readers. Nothing else spells these column names.

One row per scored sample:
    _row                 the row's position in the input table       (stored runs)
    _split               val | test | train                          (stored runs; train is a seeded
                                                                      sample of at most 20,000 rows)
    <feature columns>    the raw input values
    pred:<task>          probability (binary), value (regression) or class label (multiclass)
    prob:<task>:<class>  class probabilities of a multiclass task, in class-index order
    target:<task>        the true value (class index for multiclass; NaN where missing)
    gate:<task>:e<i>     the weight task <task>'s gate gives expert i (rows sum to 1)
"""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
import torch

from mmoe.data import Preprocessor
from mmoe.tasks import transform

ROW, SPLIT = "_row", "_split"
SPLITS = ("val", "test", "train")                 # the order a reader offers them in; the first present is
SPLIT_NAMES = {"val": "validation", "test": "test", "train": "training"}   # the one a run is judged on
TRAIN_SAMPLE_ROWS = 20_000    # a stored run keeps at most this many training rows (a seeded sample)
_GATE = re.compile(r"^gate:(?P<task>.+):e(?P<e>\d+)$")


def pred_col(task: str) -> str:
    return f"pred:{task}"


def prob_col(task: str, label: str) -> str:
    return f"prob:{task}:{label}"


def target_col(task: str) -> str:
    return f"target:{task}"


def gate_col(task: str, expert: int) -> str:
    return f"gate:{task}:e{expert}"


def is_output_column(column) -> bool:
    """A column the scoring added (not an input feature)."""
    return str(column).startswith(("_", "target:", "pred:", "prob:", "gate:"))


def target_tasks(frame: pd.DataFrame) -> list[str]:
    """Tasks with a ``target:`` column, in column order."""
    return [str(c)[len("target:"):] for c in frame.columns if str(c).startswith("target:")]


def prob_labels(frame: pd.DataFrame, task: str) -> list[str]:
    """Class labels of a multiclass task in class-index order (from its ``prob:`` columns)."""
    prefix = prob_col(task, "")
    return [str(c)[len(prefix):] for c in frame.columns if str(c).startswith(prefix)]


def gate_tasks(frame: pd.DataFrame) -> list[str]:
    """Tasks that have gate columns, in column order."""
    seen: list[str] = []
    for c in frame.columns:
        m = _GATE.match(str(c))
        if m and m["task"] not in seen:
            seen.append(m["task"])
    return seen


def gate_columns(frame: pd.DataFrame, task: str) -> list[str]:
    """``gate:<task>:e<i>`` columns ordered by expert index (e10 after e9)."""
    cols = []
    for c in frame.columns:
        m = _GATE.match(str(c))
        if m and m["task"] == task:
            cols.append((int(m["e"]), c))
    return [c for _, c in sorted(cols)]


def stored_splits(frame: pd.DataFrame) -> list[str]:
    """The splits a predictions frame holds, validation first; [] for a frame without ``_split``."""
    if SPLIT not in frame:
        return []
    present = set(frame[SPLIT].astype(str).unique())
    return [s for s in SPLITS if s in present] + sorted(present - set(SPLITS))


def evaluation_split(frame: pd.DataFrame) -> str | None:
    """The split a run's predictions are judged on: validation, else test, else the training sample."""
    found = stored_splits(frame)
    return found[0] if found else None


def rows_of_split(frame: pd.DataFrame, split: str | None = None) -> pd.DataFrame:
    """The rows of one split (default: the evaluation split), index reset; the frame itself without ``_split``."""
    split = split or evaluation_split(frame)
    if split is None or SPLIT not in frame:
        return frame
    return frame[frame[SPLIT].astype(str) == split].reset_index(drop=True)


def rows_text(frame: pd.DataFrame) -> str:
    """What a predictions frame's rows are, for captions: 'validation rows', 'validation and test rows', ..."""
    found = stored_splits(frame)
    sampled = "train" in found and int((frame[SPLIT] == "train").sum()) >= TRAIN_SAMPLE_ROWS
    if found == ["train"]:
        return f"training rows (a seeded sample of {TRAIN_SAMPLE_ROWS:,})" if sampled else "training rows"
    names = [SPLIT_NAMES.get(x, x) + (" (sample)" if x == "train" and sampled else "") for x in found]
    if not names:
        return "stored rows"
    return (", ".join(names[:-1]) + " and " if len(names) > 1 else "") + names[-1] + " rows"


def decorate_predictions(frame: pd.DataFrame, pre: Preprocessor, raw: dict, gates: torch.Tensor | None, *,
                         split: str | None = None, y: tuple[dict, dict] | None = None) -> pd.DataFrame:
    """The one writer of the predictions columns: ``frame`` plus pred/prob, target and gate columns."""
    out = {}
    if split is not None:
        out[SPLIT] = split
    for t, spec in enumerate(pre.tasks):
        name = spec.column
        p = transform(spec.kind, raw[name], pre.target_scale(name)).numpy()
        labels = pre.class_labels(name)
        if spec.kind == "multiclass":
            out[pred_col(name)] = np.asarray(labels, dtype=object)[p.argmax(1)] if len(p) else []
            for c, lab in enumerate(labels):
                out[prob_col(name, lab)] = p[:, c]
        else:
            out[pred_col(name)] = p
        if y is not None and name in y[0]:     # a file may hold only some of the targets
            yv, mv = y[0][name].numpy().astype(np.float64), y[1][name].numpy()
            if spec.kind == "regression":   # the value as given (de-standardising adds float noise)
                if name in frame:
                    yv = pd.to_numeric(frame[name], errors="coerce").to_numpy(np.float64).copy()
                else:
                    mean, std = pre.target_scale(name)
                    yv = yv * std + mean
            yv[~mv] = np.nan
            out[target_col(name)] = yv
        if gates is not None:
            for e in range(gates.shape[-1]):
                out[gate_col(name, e)] = gates[t, :, e].numpy()
    extra = pd.DataFrame(out, index=frame.index)
    keep = frame.drop(columns=[c for c in extra.columns if c in frame.columns])
    return pd.concat([keep, extra], axis=1)
