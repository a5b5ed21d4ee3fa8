"""Downloads: predictions as a readable CSV, the model files as a zip.

    people_csv(frame, path)   every CSV written for people (the dashboard's downloads, ``mmoe predict``):
                              ``spreadsheet_safe``, text cells quoted
    spreadsheet_safe(frame)   a text cell or column name that a spreadsheet would run as a formula (it
                              starts with = + - @ tab or carriage return) gets a leading ' (OWASP's
                              advice against CSV injection); numbers are left as they are
    model_archive(store, id)  model.pt + model.json + preprocessor.json zipped, never following a link
                              out of the run folder (``model_archive_problems`` says what was left out)
"""
from __future__ import annotations

import csv
import io
import os
import re
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from mmoe.runs.artifacts import MODEL, MODEL_FILES
from mmoe.runs.predictions import target_col, target_tasks
from mmoe.views.evaluation import class_labels


def readable_predictions(frame: pd.DataFrame) -> pd.DataFrame:
    """The predictions frame as a user reads it: a multiclass ``target:<task>`` as its class label
    (stored as the class index, which the charts use), not a number."""
    out = frame.copy()
    for task in target_tasks(frame):
        col = target_col(task)
        labels = class_labels(frame, task)
        if labels:
            idx = pd.to_numeric(frame[col], errors="coerce")
            ok = idx.notna() & (idx >= 0) & (idx < len(labels))
            lab = pd.Series(pd.NA, index=frame.index, dtype="object")
            lab[ok] = np.asarray(labels, dtype=object)[idx[ok].astype(int).to_numpy()]
            out[col] = lab
    return out


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
FORMULA_GUARD = "'"
# a plain number written as text ("-5", "+1.5e3") is no formula: a spreadsheet reads it as the number
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def _guard(v):
    if isinstance(v, str) and v.startswith(FORMULA_START) and not _NUMBER.fullmatch(v):
        return FORMULA_GUARD + v
    return v


def spreadsheet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every text cell and column name that starts with = + - @ tab or CR prefixed
    with ' so no spreadsheet runs it as a formula (OWASP, CSV injection). Numeric columns, and
    numbers written as text, are unchanged; so is ``frame``."""
    out = frame.copy()
    for i, col in enumerate(frame.columns):
        s = frame.iloc[:, i]
        if not (pd.api.types.is_object_dtype(s) or pd.api.types.is_string_dtype(s)
                or isinstance(s.dtype, pd.CategoricalDtype)):
            continue
        values = s.to_numpy(dtype=object, na_value=None) if not isinstance(s.dtype, pd.CategoricalDtype) \
            else s.astype(object).to_numpy()
        guarded = [_guard(v) for v in values]
        if any(a is not b for a, b in zip(guarded, values)):
            out.isetitem(i, pd.Series(guarded, index=frame.index, dtype=object))
    out.columns = [_guard(c) for c in frame.columns]
    return out


def people_csv(frame: pd.DataFrame, path=None) -> bytes | None:
    """``frame`` as a CSV for people (UTF-8, no index): ``spreadsheet_safe``, and every text cell quoted,
    so a cell holding a line break or carriage return stays one cell. Written to ``path`` when given,
    else returned."""
    safe = spreadsheet_safe(frame)
    if path is not None:
        safe.to_csv(path, index=False, quoting=csv.QUOTE_NONNUMERIC, encoding="utf-8")
        return None
    return safe.to_csv(index=False, quoting=csv.QUOTE_NONNUMERIC).encode("utf-8")


def predictions_csv(frame: pd.DataFrame) -> bytes:
    return people_csv(readable_predictions(frame))


def _inside(path: Path, folder: Path) -> bool:
    return os.path.realpath(path) == os.path.realpath(folder) or \
        Path(os.path.realpath(path)).is_relative_to(os.path.realpath(folder))


def _archive_files(store, run_id: int) -> tuple[list[tuple[str, Path]], list[str]]:
    """((name, real path) of each model file to zip, what was left out and why)."""
    folder = store.artifact_dir(run_id)
    if not folder.exists():
        return [], []
    if not _inside(folder, store.home):
        return [], [f"the run folder {folder} is a link to {os.path.realpath(folder)}, outside the run store "
                    f"{store.home}: nothing is read from it"]
    files, problems = [], []
    for name in MODEL_FILES:
        path = folder / name
        if not (path.is_file() or path.is_symlink()):
            continue
        if not _inside(path, folder):
            problems.append(f"{name} is a link to {os.path.realpath(path)}, outside the run folder: left out")
        elif not Path(os.path.realpath(path)).is_file():
            problems.append(f"{name} is not a file: left out")
        else:
            files.append((name, Path(os.path.realpath(path))))
    return files, problems


def model_archive_problems(store, run_id: int) -> list[str]:
    """Why files of the run's model download are left out (links out of the run folder or store)."""
    return _archive_files(store, run_id)[1]


def _read_no_links(path: Path) -> bytes:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as f:
        return f.read()


def model_archive(store, run_id: int) -> bytes | None:
    """model.pt + model.json + preprocessor.json of a run, zipped; None when it saved no model, or when
    model.pt is not inside the run folder. A file that links out of the run folder (or a run folder
    that links out of the store) is never read."""
    files, _ = _archive_files(store, run_id)
    if MODEL not in {name for name, _ in files}:
        return None
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, path in files:
            z.writestr(name, _read_no_links(path))
    return buf.getvalue()


def quiet(fn, *args, **kwargs):
    """Call ``fn`` with sklearn/numpy warnings silenced (undefined metrics on tiny data)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)
