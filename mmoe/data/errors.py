"""DataError and the helpers that phrase its messages and read values as users see them
(labels, numbers, row words), shared by every step of the data pipeline."""
from __future__ import annotations

import difflib
import re
from typing import Any, Iterable

import numpy as np
import pandas as pd

# Cell values read as "missing" (after stripping spaces). Case variants of the word markers count too.
_MISSING_WORDS = ("NA", "N/A", "NaN", "null", "None", "#N/A", "<NA>", "-NaN")
MISSING_MARKERS: frozenset[str] = frozenset(
    {"", "?"} | {v for w in _MISSING_WORDS for v in (w, w.lower(), w.upper(), w.title())})

DELIMITERS = (",", ";", "\t", "|")
MIN_ROWS = 2                # a file with fewer data rows is refused
MAX_VOCAB = 1000            # categorical vocabulary cap (most frequent train values)
MIN_CATEGORY_COUNT = 1      # a train value needs this many rows to get its own index
CLIP_Z = 10.0               # standardised numeric inputs are clipped to +-CLIP_Z
NATURAL_PAIRS = (("0", "1"), ("false", "true"), ("no", "yes"), ("n", "y"), ("neg", "pos"),
                 ("-1", "1"), ("negative", "positive"), ("f", "t"))
_ID_NAME = re.compile(r"(^|[^a-z0-9])(id|uuid|guid|key|index|idx|rownum|row_?id)($|[^a-z0-9])", re.IGNORECASE)
_CAMEL_ID = re.compile(r"[a-z0-9](Id|ID)$")


class DataError(ValueError):
    """The data cannot be used as asked; the message says what, where and how to fix it.

    ``field`` names the setting that can fix it, so a form shows the message next to that control:
    ``target:<column>``, ``features``, ``kinds`` (column kind overrides), ``split``, or ``general``."""

    def __init__(self, message: str, *, field: str = "general"):
        super().__init__(message)
        self.field = field



def _q(values: Iterable[Any], limit: int = 5) -> str:
    """'a', 'b', 'c' (+2 more)"""
    vals = list(values)
    text = ", ".join(repr(str(v)) for v in vals[:limit])
    return text + (f" (+{len(vals) - limit} more)" if len(vals) > limit else "")


def _close(name: str, candidates: Iterable[str]) -> str:
    """' Did you mean 'x'?' or ' Columns are: a, b, c.'"""
    cands = [str(c) for c in candidates]
    close = difflib.get_close_matches(name, cands, n=3, cutoff=0.6)
    if not close:
        low = {c.lower(): c for c in cands}
        close = [low[m] for m in difflib.get_close_matches(name.lower(), list(low), n=3, cutoff=0.6)]
    if close:
        return " Did you mean " + " or ".join(repr(c) for c in close) + "?"
    return f" Columns in the file: {_q(cands, 12)}."


def _label(v: Any) -> str:
    """One value as the label string users see: 1.0 -> '1', True -> 'True', ' x ' -> 'x'."""
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        f = float(v)
        return str(int(f)) if f.is_integer() and abs(f) < 2 ** 53 else repr(f)
    return str(v).strip()


def _is_bool_object(s: pd.Series) -> bool:
    """An object column holding only True/False (and missing): pandas' reading of a bool column with gaps."""
    if s.dtype != object:
        return False
    nn = s.dropna()
    return len(nn) > 0 and bool(nn.map(type).isin([bool, np.bool_]).all())


def _is_numeric(s: pd.Series) -> bool:
    return (pd.api.types.is_numeric_dtype(s) and not isinstance(s.dtype, pd.CategoricalDtype)) \
        or _is_bool_object(s)


def _as_float(s: pd.Series) -> np.ndarray:
    """A numeric (or bool) column as float64 with NaN for missing and for +-inf."""
    if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
        a = s.to_numpy(dtype=np.float64, na_value=np.nan, copy=True)      # already numbers: no parsing
        a[~np.isfinite(a)] = np.nan
        return a
    if _is_bool_object(s):
        s = s.map(lambda v: float(v) if isinstance(v, (bool, np.bool_)) else np.nan)
    a = pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan).copy()
    a[~np.isfinite(a)] = np.nan
    return a


def _labels(s: pd.Series) -> pd.Series:
    """Column -> str Series of label strings (as _label: 1.0 -> '1'), NaN where missing. Vectorised."""
    if _is_numeric(s):
        a = _as_float(s)
        m = ~np.isnan(a)
        out = np.full(len(s), np.nan, dtype=object)
        v = a[m]
        if s.dtype == bool or _is_bool_object(s):
            strs = np.where(v > 0.5, "True", "False").astype(object)
        else:
            strs = v.astype(str).astype(object)  # numpy's str() of a float is the shortest round-trip repr
            integral = (v == np.round(v)) & (np.abs(v) < 2 ** 53)
            if integral.any():
                strs[integral] = np.round(v[integral]).astype(np.int64).astype(str)
        out[m] = strs
        return pd.Series(out, index=s.index, dtype="str")
    if not isinstance(s.dtype, pd.StringDtype):
        s = s.astype(object)
        m = s.notna()
        s[m] = s[m].map(_label)
        s = s.astype("str")
    elif _clean_labels(s):     # read_csv's columns are clean already: checked on the distinct values only
        return s
    s = s.str.strip()
    return s.where(~s.isin(MISSING_MARKERS))


def label_codes(s: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """``pd.factorize(_labels(s))`` -- (code per row, -1 where missing; the distinct labels in order of
    first appearance) -- with a text column hashed once and cleaned on its distinct values only."""
    if not isinstance(s.dtype, pd.StringDtype):
        return pd.factorize(_labels(s))
    codes, uniq = pd.factorize(s)
    u = pd.Series(uniq, dtype=s.dtype)
    clean = u.str.strip()
    clean = clean.where(~clean.isin(MISSING_MARKERS))
    if clean.equals(u):
        return codes, pd.Index(uniq)
    remap, cleaned = pd.factorize(clean)                 # labels that became equal (or missing) merge
    return np.where(codes >= 0, remap[np.maximum(codes, 0)], -1), pd.Index(cleaned)


def _clean_labels(s: pd.Series) -> bool:
    """True when no value of text column ``s`` has surrounding spaces or is a missing marker."""
    return _clean_uniques(pd.Series(s.unique(), dtype=s.dtype).dropna())   # the distinct values, without NaN


def _clean_uniques(u: pd.Series) -> bool:
    """True when no label of ``u`` (distinct, none missing) has surrounding spaces or is a missing marker."""
    labels = u.tolist()                    # few distinct values: plain Python is quicker than column operations
    return MISSING_MARKERS.isdisjoint(labels) and all(v == v.strip() for v in labels)


def _row_word(pos: int) -> str:
    return f"row {pos + 1}"
