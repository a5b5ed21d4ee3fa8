"""Downloads: predictions as a readable CSV, the model files as a zip."""
from __future__ import annotations

import io
import warnings
import zipfile

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


def predictions_csv(frame: pd.DataFrame) -> bytes:
    return readable_predictions(frame).to_csv(index=False).encode("utf-8")




def model_archive(store, run_id: int) -> bytes | None:
    """model.pt + model.json + preprocessor.json of a run, zipped (None when it saved no model)."""
    if not store.has_artifact(run_id, MODEL):
        return None
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name in MODEL_FILES:
            if store.has_artifact(run_id, name):
                z.writestr(name, store.read_bytes(run_id, name))
    return buf.getvalue()


def quiet(fn, *args, **kwargs):
    """Call ``fn`` with sklearn/numpy warnings silenced (undefined metrics on tiny data)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)
