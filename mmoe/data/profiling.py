"""Column kinds: numeric, categorical, identifier-like, constant or empty, from the values
and the column name; what a target column most likely is (``suggest_task_kind``)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from mmoe.data.errors import (
    _CAMEL_ID,
    _ID_NAME,
    NATURAL_PAIRS,
    _as_float,
    _is_bool_object,
    _is_numeric,
    _label,
    _labels,
    _q,
    label_codes,
)
from mmoe.data.reading import clean_frame


@dataclass
class ColumnProfile:
    """What one column looks like. kind: numeric | categorical | identifier | constant | empty."""

    name: str
    kind: str
    dtype: str
    missing_share: float
    n_distinct: int
    examples: list[str]

    def reason(self) -> str:
        """Why a column of this kind is not used as a feature by default ('' if it is)."""
        if self.kind == "identifier":
            return f"identifier-like ({self.n_distinct} distinct values, e.g. {_q(self.examples[:3])})"
        if self.kind == "constant":
            return f"constant (only value {_q(self.examples, 1)})"
        if self.kind == "empty":
            return "empty (every value is missing)"
        return ""


def _looks_like_id_name(name: str) -> bool:
    return bool(_ID_NAME.search(name) or _CAMEL_ID.search(name))


def _profile(name: str, s: pd.Series, coded: dict | None = None) -> ColumnProfile:
    """``coded``: a dict that receives (and may already hold) ``label_codes`` of a text column by name,
    so preparation codes each column once."""
    n = len(s)
    numeric = _is_numeric(s)
    if numeric:
        nn = s.dropna()
        k = len(nn)
    else:                                  # a text column: its codes say which rows are missing
        codes, uniq = coded[name] if coded is not None and name in coded else label_codes(s)
        if coded is not None:
            coded[name] = (codes, uniq)
        k = int(np.count_nonzero(codes >= 0))
    missing = float(1 - k / n) if n else 1.0
    dtype = str(s.dtype)
    if k == 0:
        return ColumnProfile(name, "empty", dtype, missing, 0, [])
    if numeric:
        a = _as_float(nn)
        vc = pd.Series(a).value_counts()
        nd, top = int(len(vc)), list(vc.index[:5])
    else:
        counts = np.bincount(codes + 1, minlength=len(uniq) + 1)[1:]      # code -1 (missing) counted apart
        order = np.argsort(-counts, kind="stable")             # most frequent first, ties by first appearance
        order = order[counts[order] > 0]
        nd, top = int(len(order)), [uniq[int(i)] for i in order[:5]]
    is_bool = s.dtype == bool or _is_bool_object(s)
    examples = [(str(v > 0.5) if is_bool else _label(v)) for v in top]
    if nd <= 1:
        return ColumnProfile(name, "constant", dtype, missing, nd, examples)
    kind = "numeric" if numeric else "categorical"
    if numeric:
        a = np.sort(vc.index.to_numpy(dtype=np.float64))      # the distinct values (value_counts drops NaN)
        integral = bool(np.all(a == np.round(a)))
        if integral and nd == k and not is_bool:
            consecutive = bool(np.all(np.diff(a) == 1))
            if _looks_like_id_name(name) or (consecutive and k >= 50):
                kind = "identifier"
    else:
        if (nd == k and k >= 10) or (nd >= 0.9 * k and nd > 50) or (_looks_like_id_name(name) and nd == k):
            kind = "identifier"
    return ColumnProfile(name, kind, dtype, missing, nd, examples)


def profile_columns(df: pd.DataFrame) -> list[ColumnProfile]:
    """Infer each column's kind. Integer columns with few values stay numeric (override to
    categorical when they are codes); all-distinct integers named like an id (or consecutive,
    50+ rows) and near-all-distinct text are identifiers; <=1 distinct value is constant."""
    return [_profile(str(c), df[c]) for c in df.columns]


def _natural_positive(labels: list[str]) -> str | None:
    low = {l.lower(): l for l in labels}
    for neg, pos in NATURAL_PAIRS:
        if set(low) == {neg, pos}:
            return low[pos]
    return None


def _sorted_labels(s: pd.Series) -> list[str]:
    """Distinct non-missing labels of a column: numeric order for numbers, else string order."""
    if _is_numeric(s):
        a = _as_float(s)
        u = np.unique(a[~np.isnan(a)])
        if s.dtype == bool or _is_bool_object(s):
            return [("True" if v > 0.5 else "False") for v in u]
        return [_label(float(v)) for v in u]
    return sorted(_labels(s).dropna().unique().tolist())


def suggest_task_kind(series: pd.Series) -> tuple[str, str | None]:
    """Guess (kind, positive) for a would-be target column, for the UI to pre-fill.

    Two distinct values -> binary (positive = the natural one, else the second in sorted
    order); numbers with many values -> regression; a few values -> multiclass.
    """
    s = clean_frame(series.to_frame()).iloc[:, 0] if isinstance(series, pd.Series) else series
    labels = _sorted_labels(s)
    if len(labels) == 2:
        return "binary", _natural_positive(labels) or labels[1]
    if len(labels) < 2:
        return "binary", None
    if _is_numeric(s):
        a = _as_float(s)
        a = a[~np.isnan(a)]
        if len(labels) > 10 or not np.all(a == np.round(a)):
            return "regression", None
        return "multiclass", None
    return "multiclass", None
