"""CSV / DataFrame -> training tensors: reading, column typing, preprocessing, splits.

    read_csv        bytes, path or file-like -> clean DataFrame (dialect, encoding, gzip sniffed)
    profile_columns what each column looks like (numeric, categorical, identifier, constant, empty)
    Preprocessor    fitted on the training rows only, JSON round-trippable, turns frames into tensors
    prepare         DataConfig + data -> PreparedData (tensors, masks, seeded splits, preprocessor)

Tensor legend: n rows, dn numeric inputs (incl. missing indicators), dc categorical columns.
    x_num float32 [n, dn]   x_cat int64 [n, dc]   y[task] [n] (int64 for multiclass, else float32)
    mask[task] bool [n]     (False where the target is missing: that row does not train that task)

Every refusal is a ``DataError`` (a ``ValueError``) whose message says what is wrong, where
(column, row or line) and how to fix it. "Row N" counts data rows from 1 (the header is not a
row); "line N" is the physical line of the file (the header is line 1).
"""
from __future__ import annotations

import bz2
import csv
import difflib
import gzip
import io
import json
import lzma
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd
import torch

from mmoe.config import DataConfig, TaskSpec

__all__ = [
    "DataError", "read_csv", "ColumnProfile", "profile_columns", "suggest_task_kind",
    "Preprocessor", "PreparedData", "prepare", "prepare_for_prediction", "MISSING_MARKERS",
]

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
    """The data cannot be used as asked; the message says what, where and how to fix it."""


# ----------------------------------------------------------------------------------------- helpers

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
    s = s.str.strip()
    return s.where(~s.isin(MISSING_MARKERS))


def _row_word(pos: int) -> str:
    return f"row {pos + 1}"


# ----------------------------------------------------------------------------------------- reading

_MAGIC = (
    (b"PK\x03\x04", "a ZIP archive (or an Excel .xlsx workbook); unzip it or save the sheet as CSV"),
    (b"\xd0\xcf\x11\xe0", "an old Excel/Office document; save the sheet as CSV"),
    (b"\x89PNG", "a PNG image, not a table; choose the CSV file instead"),
    (b"\xff\xd8\xff", "a JPEG image, not a table; choose the CSV file instead"),
    (b"GIF8", "a GIF image, not a table; choose the CSV file instead"),
    (b"%PDF", "a PDF document; export the table as CSV"),
    (b"PAR1", "a Parquet file; convert it to CSV (e.g. pandas.read_parquet(...).to_csv(...))"),
    (b"SQLite format 3", "an SQLite database; export the table as CSV"),
    (b"7z\xbc\xaf", "a 7-Zip archive; extract the CSV first"),
    (b"Rar!", "a RAR archive; extract the CSV first"),
)


def _source_bytes(source: Any, filename: str | None) -> tuple[bytes, str]:
    """Whatever the caller gave -> (raw bytes, a name to use in messages)."""
    if isinstance(source, str) and "\n" in source:  # CSV text itself, not a path
        return source.encode("utf-8"), filename or "the given text"
    if isinstance(source, (str, Path)):
        path = Path(source)
        name = filename or path.name
        if not path.exists():
            raise DataError(f"file {str(path)!r} does not exist; check the path")
        if path.is_dir():
            raise DataError(f"{str(path)!r} is a folder, not a file; give the path of a CSV file")
        try:
            return path.read_bytes(), name
        except OSError as e:
            raise DataError(f"cannot read {str(path)!r} ({e.strerror or e}); check the file's permissions") from None
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), filename or "the uploaded data"
    if hasattr(source, "read"):
        name = filename or getattr(source, "name", None) or "the uploaded data"
        data = source.read()
        if isinstance(data, str):
            data = data.encode("utf-8")
        return bytes(data), str(name)
    raise DataError(f"cannot read data from a {type(source).__name__}; give a CSV path, bytes or a DataFrame")


def _decompress(raw: bytes, name: str) -> bytes:
    for magic, opener, kind in ((b"\x1f\x8b", gzip.decompress, "gzip"), (b"BZh", bz2.decompress, "bzip2"),
                                (b"\xfd7zXZ\x00", lzma.decompress, "xz")):
        if raw.startswith(magic):
            try:
                return opener(raw)
            except Exception as e:  # zlib.error, OSError, EOFError, LZMAError: all mean "corrupt"
                raise DataError(f"{name} looks {kind}-compressed but cannot be decompressed ({e}); "
                                "the file is probably truncated or corrupt — download it again") from None
    return raw


def _decode(raw: bytes, name: str) -> tuple[bytes, str]:
    """Any supported encoding -> (UTF-8 bytes without BOM, the encoding it was in)."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return raw.decode("utf-16").encode("utf-8"), "utf-16"
        except UnicodeDecodeError:
            raise DataError(f"{name} starts like UTF-16 text but is not valid UTF-16; "
                            "save it as UTF-8 CSV") from None
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    head = raw[:65536]
    if b"\x00" in head:
        raise DataError(f"{name} is not a text file (it contains NUL bytes); "
                        "choose a CSV file (comma, semicolon or tab separated text)")
    ctrl = sum(head.count(bytes([c])) for c in range(1, 32) if c not in (9, 10, 12, 13))
    if head and ctrl > 0.05 * len(head):
        raise DataError(f"{name} looks like a binary file, not CSV text; choose a CSV file")
    try:
        raw.decode("utf-8")
        return raw, "utf-8"
    except UnicodeDecodeError:
        pass
    for enc in ("cp1252", "latin-1"):
        try:
            return raw.decode(enc).encode("utf-8"), enc
        except UnicodeDecodeError:
            continue
    raise AssertionError("latin-1 decodes any bytes")  # pragma: no cover


def _sniff(text: str) -> tuple[str, list[str]]:
    """Pick the delimiter from a text sample; return it and the raw header fields."""
    lines_cut = text.rfind("\n")
    sample = text if lines_cut < 0 else text[: lines_cut + 1]
    best: tuple | None = None
    for rank, d in enumerate(DELIMITERS):
        try:
            rows = [r for r in csv.reader(io.StringIO(sample), delimiter=d, skipinitialspace=True)
                    if r and any(f.strip() for f in r)]
        except csv.Error:
            continue
        if not rows:
            continue
        h = len(rows[0])
        if h < 2:
            continue
        body = rows[1:] or rows
        score = sum(len(r) == h for r in body) / len(body)
        key = (score >= 0.999, round(score, 2), h, -rank)
        if best is None or key > best[0]:
            best = (key, d, rows[0])
    if best is None:
        first = next((r for r in csv.reader(io.StringIO(sample)) if r and any(f.strip() for f in r)), [])
        return ",", first
    return best[1], best[2]


def _check_ragged(data: bytes, sep: str, ncols: int, name: str) -> None:
    """Refuse rows with more or fewer fields than the header, naming the first such line."""
    if ncols < 2:
        return
    if b'"' not in data:
        arr = np.frombuffer(data, dtype=np.uint8)
        nl = np.flatnonzero(arr == 10)
        ends = np.append(nl, len(arr))
        starts = np.concatenate(([0], nl + 1))
        seps = np.flatnonzero(arr == ord(sep))
        counts = np.searchsorted(seps, ends) - np.searchsorted(seps, starts) + 1
        for i in np.flatnonzero(counts != ncols):
            if data[starts[i]:ends[i]].strip():  # blank lines are skipped, not ragged
                _ragged(name, int(i) + 1, int(counts[i]), ncols)
        return
    reader = csv.reader(io.StringIO(data.decode("utf-8")), delimiter=sep, skipinitialspace=True)
    try:
        for row in reader:
            if len(row) != ncols and (len(row) > 1 or (row and row[0].strip())):
                _ragged(name, reader.line_num, len(row), ncols)
    except csv.Error as e:
        raise DataError(f"{name}: cannot parse line {reader.line_num} ({e}); "
                        "check the quotes on that line") from None


def _ragged(name: str, line: int, got: int, want: int) -> None:
    how = ("remove the extra values or quote the text that contains the delimiter" if got > want else
           "add the missing values (leave a cell empty, e.g. 'a,,c', when a value is missing)")
    raise DataError(f"{name}: line {line} has {got} fields but the header has {want}; {how}")


def read_csv(source: Any, *, filename: str | None = None, min_rows: int = MIN_ROWS) -> pd.DataFrame:
    """Read a CSV (path, bytes or binary file-like) into a clean DataFrame.

    Sniffs the delimiter (, ; tab |), the encoding (UTF-8 with or without BOM, UTF-16 with BOM,
    else cp1252/Latin-1) and compression (gzip, bzip2, xz by magic bytes). Strips spaces around
    header names and values, reads MISSING_MARKERS as NaN, turns all-numeric columns into numbers
    and drops rows that are entirely empty. ``min_rows`` data rows are required (1 for scoring).
    """
    raw, name = _source_bytes(source, filename)
    name = repr(name) if not name.startswith("the ") else name
    if not raw.strip():
        raise DataError(f"{name} is empty; choose a CSV file with a header line and data rows")
    for magic, what in _MAGIC:
        if raw.startswith(magic):
            raise DataError(f"{name} is {what}")
    raw = _decompress(raw, name)
    for magic, what in _MAGIC:
        if raw.startswith(magic):
            raise DataError(f"{name} (decompressed) is {what}")
    data, encoding = _decode(raw, name)
    if b"\n" not in data and b"\r" in data:
        data = data.replace(b"\r", b"\n")  # classic Mac line endings
    if not data.strip():
        raise DataError(f"{name} is empty; choose a CSV file with a header line and data rows")
    text_head = data[:65536].decode("utf-8", errors="replace")
    if len(data) <= 65536:
        text_head += "\n"
    sep, header = _sniff(text_head)
    names = [h.strip() for h in header]
    if not names:
        raise DataError(f"{name} has no header line; the first line must name the columns")
    _check_ragged(data, sep, len(names), name)

    drop_first = False
    empty = [i for i, n in enumerate(names) if not n]
    if empty == [0] and len(names) > 1:
        drop_first = True  # a saved pandas index (",a,b"): checked below, else refused
        names[0] = "__index__"
    elif empty:
        where = ", ".join(str(i + 1) for i in empty)
        raise DataError(f"{name}: column {where} of the header has no name; give every column a name in line 1")
    seen: dict[str, int] = {}
    dups = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        if seen[n] == 2:
            dups.append(n)
    if dups:
        raise DataError(f"{name}: the header names column(s) {_q(dups)} more than once; "
                        "rename them so every column name is unique")

    opts = dict(sep=sep, header=0, names=names, index_col=False, skipinitialspace=True, quotechar='"',
                na_values=sorted(MISSING_MARKERS), keep_default_na=False, skip_blank_lines=True,
                encoding="utf-8")
    try:
        try:
            df = pd.read_csv(io.BytesIO(data), engine="c", low_memory=False, **opts)
        except pd.errors.ParserError as e:
            m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(e))
            if m:
                _ragged(name, int(m.group(2)), int(m.group(3)), int(m.group(1)))
            m = re.search(r"EOF inside string starting at row (\d+)", str(e))
            if m:
                raise DataError(f"{name}: a quoted field starting on line {int(m.group(1)) + 1} is never closed; "
                                "add the closing '\"' (quotes inside a quoted field are written twice: \"\")") \
                    from None
            df = pd.read_csv(io.BytesIO(data), engine="python", **opts)
    except DataError:
        raise
    except pd.errors.EmptyDataError:
        raise DataError(f"{name} is empty; choose a CSV file with a header line and data rows") from None
    except (pd.errors.ParserError, csv.Error, ValueError, UnicodeDecodeError) as e:
        msg = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
        raise DataError(f"{name} cannot be parsed as CSV ({msg}); check that it is a delimited text file") from None

    df.attrs["delimiter"] = sep
    df = clean_frame(df)
    if drop_first:
        idx = pd.to_numeric(df["__index__"], errors="coerce")
        if idx.notna().all() and (idx.diff().iloc[1:] == 1).all():
            df = df.drop(columns="__index__")
        else:
            raise DataError(f"{name}: column 1 of the header has no name; give every column a name in line 1")
    df = df.dropna(how="all").reset_index(drop=True)
    if len(df) == 0:
        raise DataError(f"{name} has a header but no data rows; add rows below the header line")
    if len(df) < min_rows:
        raise DataError(f"{name} has only {len(df)} data row(s); need at least {min_rows} rows")
    df.attrs.update(encoding=encoding, delimiter=sep, filename=name.strip("'"))
    return df


def clean_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Normalise a frame the way read_csv does (idempotent; returns a new frame).

    Column names become stripped strings (empty or duplicate -> DataError); text values are
    stripped; MISSING_MARKERS become NaN; text columns that are all numbers become numeric.
    """
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"expected a table (DataFrame), got {type(df).__name__}")
    names = [str(c).strip() for c in df.columns]
    if any(not n for n in names):
        pos = ", ".join(str(i + 1) for i, n in enumerate(names) if not n)
        raise DataError(f"column {pos} has no name; give every column a name")
    dups = sorted({n for n in names if names.count(n) > 1}) if len(set(names)) != len(names) else []
    if dups:
        raise DataError(f"column name(s) {_q(dups)} appear more than once; rename them so every column name is unique")
    out = {}
    decimal_comma = df.attrs.get("delimiter", ",") != ","
    for n, c in zip(names, df.columns):
        s = df[c]
        if isinstance(s.dtype, pd.CategoricalDtype):
            s = s.astype(object)
        if pd.api.types.is_numeric_dtype(s.dtype) or _is_bool_object(s):
            out[n] = s
            continue
        if not pd.api.types.is_string_dtype(s.dtype) and s.dtype != object:
            out[n] = s  # datetimes etc.: leave as they are
            continue
        m = s.notna()
        if m.any() and not (pd.api.types.is_string_dtype(s.dtype) and s.dtype != object):
            s = s.astype(object)
            s[m] = s[m].map(lambda v: v if isinstance(v, str) else _label(v))
            s = s.astype("str")
        s = s.str.strip()
        s = s.where(~s.isin(MISSING_MARKERS))
        out[n] = _maybe_numeric(s, decimal_comma)
    res = pd.DataFrame(out, index=df.index)
    res.attrs.update(df.attrs)
    return res


def _maybe_numeric(s: pd.Series, decimal_comma: bool = False) -> pd.Series:
    nn = s.dropna()
    if nn.empty:
        return s
    probe = nn.iloc[:200]
    conv = pd.to_numeric(probe, errors="coerce")
    if conv.isna().any():
        if decimal_comma and probe.str.fullmatch(r"[-+]?\d+,\d+").any() and \
                pd.to_numeric(probe.str.replace(",", ".", regex=False), errors="coerce").notna().all():
            s2 = s.str.replace(",", ".", regex=False)
            full = pd.to_numeric(s2, errors="coerce")
            if full.notna().sum() == len(nn):
                return _downcast_int(full)
        return s
    full = pd.to_numeric(s, errors="coerce")
    if full.notna().sum() != len(nn):
        return s
    return _downcast_int(full)


def _downcast_int(x: pd.Series) -> pd.Series:
    x = x.astype(np.float64)
    if x.notna().all() and np.isfinite(x).all() and (x == np.round(x)).all() and (x.abs() < 2 ** 53).all():
        return x.astype(np.int64)
    return x


# ----------------------------------------------------------------------------------------- profiling

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


def _profile(name: str, s: pd.Series) -> ColumnProfile:
    n = len(s)
    nn = s.dropna()
    k = len(nn)
    missing = float(1 - k / n) if n else 1.0
    dtype = str(s.dtype)
    if k == 0:
        return ColumnProfile(name, "empty", dtype, missing, 0, [])
    numeric = _is_numeric(s)
    if numeric:
        a = _as_float(nn)
        vc = pd.Series(a).value_counts()
    else:
        vc = _labels(nn).value_counts()
    nd = int(len(vc))
    is_bool = s.dtype == bool or _is_bool_object(s)
    examples = [(str(v > 0.5) if is_bool else _label(v)) for v in vc.index[:5]]
    if nd <= 1:
        return ColumnProfile(name, "constant", dtype, missing, nd, examples)
    kind = "numeric" if numeric else "categorical"
    if numeric:
        a = np.unique(a[~np.isnan(a)])
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


# ----------------------------------------------------------------------------------------- targets

def _target_info(s: pd.Series, task: TaskSpec, max_classes: int) -> dict:
    """Decide how a target column is encoded (classes, positive label); refuse what cannot work."""
    col = task.column
    nn = s.dropna()
    if nn.empty:
        raise DataError(f"target column {col!r} has no values (every row is missing); choose another target")
    if task.kind == "regression":
        if not _is_numeric(s) or _is_bool_object(s) or s.dtype == bool:
            conv = pd.to_numeric(s, errors="coerce")
            bad = np.flatnonzero((conv.isna() & s.notna()).to_numpy())
            if bad.size:
                raise DataError(f"target column {col!r} must be numeric for regression, but {_row_word(int(bad[0]))} "
                                f"has {str(s.iloc[int(bad[0])])!r}; fix or blank such values, or use binary/multiclass")
        a = _as_float(s)
        inf = np.flatnonzero(np.isinf(pd.to_numeric(s, errors="coerce").to_numpy(dtype=float, na_value=np.nan)))
        if inf.size:
            raise DataError(f"target column {col!r} has an infinite value in {_row_word(int(inf[0]))}; "
                            "fix or blank it")
        if len(np.unique(a[~np.isnan(a)])) < 2:
            raise DataError(f"target column {col!r} has only one value ({_label(nn.iloc[0])}); "
                            "a target needs at least two different values")
        return {"kind": "regression", "classes": [], "positive": None, "negative": None}
    labels = _sorted_labels(s)
    if len(labels) < 2:
        raise DataError(f"target column {col!r} has only one value ({labels[0]!r}); "
                        "a target needs at least two different values — choose another column")
    if task.kind == "multiclass":
        if len(labels) > max_classes:
            hint = "use regression for a number" if _is_numeric(s) else "choose a coarser column"
            raise DataError(f"target column {col!r} has {len(labels)} classes, more than the limit of {max_classes}; "
                            f"{hint}, or raise max_classes")
        return {"kind": "multiclass", "classes": labels, "positive": None, "negative": None}
    if task.positive is None:
        if len(labels) != 2:
            raise DataError(f"column {col!r} has {len(labels)} values ({', '.join(labels[:5])}"
                            f"{', ...' if len(labels) > 5 else ''}); a binary target needs two — use "
                            f"binary=VALUE to pick the positive class, or multiclass")
        pos = _natural_positive(labels) or labels[1]
        neg = labels[0] if pos == labels[1] else labels[1]
        return {"kind": "binary", "classes": [neg, pos], "positive": pos, "negative": neg}
    pos = _match_positive(s, labels, task.positive)
    if pos is None:
        top = _labels(s).value_counts().index[:8].tolist()
        raise DataError(f"target column {col!r} has no value {task.positive!r}; its most frequent values are "
                        f"{_q(top, 8)} — use one of them as binary=VALUE")
    rest = [l for l in labels if l != pos]
    neg = rest[0] if len(rest) == 1 else None
    return {"kind": "binary", "classes": [neg if neg is not None else f"not {pos}", pos],
            "positive": pos, "negative": neg}


def _match_positive(s: pd.Series, labels: list[str], value: str) -> str | None:
    v = str(value).strip()
    if v in labels:
        return v
    if _is_numeric(s):
        try:
            lab = _label(float(v))
        except ValueError:
            lab = None
        if lab in labels:
            return lab
        if v.lower() in ("true", "false"):
            lab = "True" if v.lower() == "true" else "False"
            if lab in labels:
                return lab
    low = [l for l in labels if l.lower() == v.lower()]
    return low[0] if len(low) == 1 else None


def _encode_target(s: pd.Series, info: dict, mean: float, std: float, col: str,
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Column -> (y, mask) numpy arrays following ``info`` (unknown classes are masked)."""
    n = len(s)
    if info["kind"] == "regression":
        conv = pd.to_numeric(s, errors="coerce") if not _is_bool_object(s) else pd.Series(_as_float(s))
        bad = np.flatnonzero((conv.isna() & s.notna()).to_numpy())
        if bad.size:
            raise DataError(f"target column {col!r} must be numeric, but {_row_word(int(bad[0]))} has "
                            f"{str(s.iloc[int(bad[0])])!r}; fix or blank such values")
        a = _as_float(s)
        mask = ~np.isnan(a)
        y = np.where(mask, (np.nan_to_num(a) - mean) / std, 0.0).astype(np.float32)
        return y, mask
    lab = _labels(s)
    if info["kind"] == "multiclass":
        idx = pd.Index(info["classes"]).get_indexer(lab)
        mask = idx >= 0
        return np.where(mask, idx, 0).astype(np.int64), mask
    is_pos = lab.eq(info["positive"]).to_numpy()
    present = lab.notna().to_numpy()
    if info["negative"] is None:
        mask = present
    else:
        mask = present & (is_pos | lab.eq(info["negative"]).to_numpy())
    return (is_pos & mask).astype(np.float32), mask


# ----------------------------------------------------------------------------------------- preprocessor

def default_embedding_dim(cardinality: int) -> int:
    """fastai's rule: min(16, round(1.6 * V ** 0.56)), at least 1."""
    return max(1, min(16, int(round(1.6 * cardinality ** 0.56))))


class Preprocessor:
    """Turns frames into tensors with statistics fitted on the training rows only.

    Numeric columns: standardised with train mean/std (std 0 -> 1), missing -> train mean (0),
    plus a 0/1 ``col__missing`` indicator for each column that had missing values in train;
    z-scores clipped to +-CLIP_Z. Categorical columns: train vocabulary (count >= min_count, at
    most max_vocab most frequent), index 0 = other / unseen / missing. Targets: binary 0/1,
    regression standardised with train mean/std, multiclass class index.
    """

    VERSION = 1

    def __init__(self, *, tasks: Iterable[TaskSpec], numeric_columns: list[str], categorical_columns: list[str],
                 num_mean: list[float], num_std: list[float], indicator_columns: list[str],
                 vocab: dict[str, list[str]], embedding_dims: list[int], targets: dict[str, dict],
                 ignored: dict[str, str] | None = None, clip: float = CLIP_Z):
        self.tasks = tuple(tasks)
        self.numeric_columns = list(numeric_columns)
        self.categorical_columns = list(categorical_columns)
        self.num_mean = [float(v) for v in num_mean]
        self.num_std = [float(v) for v in num_std]
        self.indicator_columns = list(indicator_columns)
        self.vocab = {k: list(v) for k, v in vocab.items()}
        self.embedding_dims = [int(d) for d in embedding_dims]
        self.targets = {k: dict(v) for k, v in targets.items()}
        self.ignored = dict(ignored or {})
        self.clip = float(clip)
        self._index = {c: pd.Index(self.vocab[c]) for c in self.categorical_columns}

    # ---- fitting
    @classmethod
    def fit(cls, frame: pd.DataFrame, *, tasks: Iterable[TaskSpec], numeric_columns: list[str],
            categorical_columns: list[str], train_rows: Any = None, embedding_dims: dict[str, int] | None = None,
            max_classes: int = 50, min_count: int = MIN_CATEGORY_COUNT, max_vocab: int = MAX_VOCAB,
            ignored: dict[str, str] | None = None) -> "Preprocessor":
        """Fit on ``frame`` rows ``train_rows`` (positions; None = all). Target classes come from
        all rows (a class seen only outside train still gets an output); statistics from train."""
        tasks = tuple(tasks)
        rows = np.arange(len(frame)) if train_rows is None else np.asarray(train_rows, dtype=np.int64)
        train = frame.iloc[rows]
        means, stds, indicators = [], [], []
        for c in numeric_columns:
            a = _numeric_feature(train[c], c)
            ok = ~np.isnan(a)
            mu = float(a[ok].mean()) if ok.any() else 0.0
            sd = float(a[ok].std()) if ok.sum() > 1 else 1.0
            means.append(mu)
            stds.append(sd if sd > 1e-12 and math.isfinite(sd) else 1.0)
            if not ok.all():
                indicators.append(c)
        vocab, dims = {}, []
        embedding_dims = embedding_dims or {}
        for c in categorical_columns:
            vc = _labels(train[c]).value_counts()
            vc = vc[vc >= min_count]
            order = sorted(zip(vc.index.tolist(), vc.to_numpy().tolist()), key=lambda t: (-t[1], t[0]))
            vocab[c] = [str(v) for v, _ in order[:max_vocab]]
            dims.append(int(embedding_dims.get(c, default_embedding_dim(len(vocab[c]) + 1))))
        targets = {}
        for t in tasks:
            info = _target_info(frame[t.column], t, max_classes)
            if info["kind"] == "regression":
                a = _as_float(train[t.column])
                ok = ~np.isnan(a)
                mu = float(a[ok].mean()) if ok.any() else 0.0
                sd = float(a[ok].std()) if ok.sum() > 1 else 1.0
                info["mean"], info["std"] = mu, (sd if sd > 1e-12 and math.isfinite(sd) else 1.0)
            else:
                info["mean"], info["std"] = 0.0, 1.0
            targets[t.column] = info
        return cls(tasks=tasks, numeric_columns=list(numeric_columns), categorical_columns=list(categorical_columns),
                   num_mean=means, num_std=stds, indicator_columns=indicators, vocab=vocab, embedding_dims=dims,
                   targets=targets, ignored=ignored)

    # ---- what the model needs to know
    @property
    def feature_columns(self) -> list[str]:
        return self.numeric_columns + self.categorical_columns

    @property
    def feature_names(self) -> list[str]:
        return self.numeric_columns + [f"{c}__missing" for c in self.indicator_columns] + self.categorical_columns

    @property
    def num_numeric(self) -> int:
        return len(self.numeric_columns) + len(self.indicator_columns)

    @property
    def cardinalities(self) -> list[int]:
        return [len(self.vocab[c]) + 1 for c in self.categorical_columns]

    @property
    def task_dims(self) -> dict[str, int]:
        return {t.column: (len(self.targets[t.column]["classes"]) if t.kind == "multiclass" else 1)
                for t in self.tasks}

    def class_labels(self, task: str | TaskSpec) -> list[str]:
        info = self.targets[_task_name(task)]
        return [] if info["kind"] == "regression" else list(info["classes"])

    def target_scale(self, task: str | TaskSpec) -> tuple[float, float]:
        info = self.targets[_task_name(task)]
        return (info["mean"], info["std"]) if info["kind"] == "regression" else (0.0, 1.0)

    # ---- transforming
    def _require(self, df: pd.DataFrame, cols: list[str], what: str) -> None:
        missing = [c for c in cols if c not in df.columns]
        if missing:
            c = missing[0]
            more = f" (and {len(missing) - 1} more: {_q(missing[1:])})" if len(missing) > 1 else ""
            raise DataError(f"the data has no {what} column {c!r}{more}, which the model was trained with; "
                            f"add it (values may be empty).{_close(c, df.columns)}")

    def transform_features(self, df: pd.DataFrame) -> tuple[torch.Tensor, torch.Tensor]:
        """df -> (x_num float32 [n, dn], x_cat int64 [n, dc])."""
        self._require(df, self.feature_columns, "feature")
        n = len(df)
        x_num = np.zeros((n, self.num_numeric), dtype=np.float32)
        k = len(self.numeric_columns)
        ind = {c: k + i for i, c in enumerate(self.indicator_columns)}
        for j, c in enumerate(self.numeric_columns):
            a = _numeric_feature(df[c], c)
            miss = np.isnan(a)
            z = (np.where(miss, self.num_mean[j], a) - self.num_mean[j]) / self.num_std[j]
            x_num[:, j] = np.clip(z, -self.clip, self.clip)
            if c in ind:
                x_num[:, ind[c]] = miss
        x_cat = np.zeros((n, len(self.categorical_columns)), dtype=np.int64)
        for j, c in enumerate(self.categorical_columns):
            idx = self._index[c].get_indexer(_labels(df[c]))
            x_cat[:, j] = idx + 1  # unseen / missing: -1 -> 0
        return torch.from_numpy(x_num), torch.from_numpy(x_cat)

    def transform_targets(self, df: pd.DataFrame, tasks: Iterable[str] | None = None,
                          ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """df -> (y, mask) per task name. Missing or unknown labels: y 0, mask False."""
        names = [t.column for t in self.tasks] if tasks is None else list(tasks)
        self._require(df, names, "target")
        y, mask = {}, {}
        for name in names:
            info = self.targets[name]
            yy, mm = _encode_target(df[name], info, info["mean"], info["std"], name)
            y[name], mask[name] = torch.from_numpy(yy), torch.from_numpy(mm.astype(bool))
        return y, mask

    # ---- persistence
    def to_dict(self) -> dict:
        return {"version": self.VERSION, "tasks": [_task_dict(t) for t in self.tasks],
                "numeric_columns": self.numeric_columns, "categorical_columns": self.categorical_columns,
                "num_mean": self.num_mean, "num_std": self.num_std, "indicator_columns": self.indicator_columns,
                "vocab": self.vocab, "embedding_dims": self.embedding_dims, "targets": self.targets,
                "ignored": self.ignored, "clip": self.clip}

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, d: dict) -> "Preprocessor":
        d = dict(d)
        if d.pop("version", None) != cls.VERSION:
            raise DataError("the saved preprocessing is from an incompatible version; retrain the run")
        d["tasks"] = tuple(TaskSpec(**t) for t in d["tasks"])
        return cls(**d)

    @classmethod
    def from_json(cls, s: str) -> "Preprocessor":
        try:
            d = json.loads(s)
        except (TypeError, ValueError):
            raise DataError("the saved preprocessing is not valid JSON; retrain the run") from None
        return cls.from_dict(d)

    def __repr__(self) -> str:
        return (f"Preprocessor(numeric={len(self.numeric_columns)}, indicators={len(self.indicator_columns)}, "
                f"categorical={self.cardinalities}, tasks={self.task_dims})")


def _task_dict(t: TaskSpec) -> dict:
    return {"column": t.column, "kind": t.kind, "positive": t.positive, "weight": t.weight}


def _task_name(task: str | TaskSpec) -> str:
    return task.column if isinstance(task, TaskSpec) else str(task)


def _numeric_feature(s: pd.Series, col: str) -> np.ndarray:
    """A numeric feature column -> float64 with NaN for missing; text that is not a number is refused."""
    if not _is_numeric(s):
        txt = s.astype(object).map(lambda v: v.strip() if isinstance(v, str) else v)
        txt = txt.where(~txt.isin(MISSING_MARKERS))
        conv = pd.to_numeric(txt, errors="coerce")
        bad = np.flatnonzero((conv.isna() & txt.notna()).to_numpy())
        if bad.size:
            i = int(bad[0])
            raise DataError(f"numeric column {col!r} has the text {str(txt.iloc[i])!r} in {_row_word(i)}; "
                            "write a number there, or leave it empty / NA if it is missing")
        s = conv
    return _as_float(s)


# ----------------------------------------------------------------------------------------- prepared data

@dataclass
class PreparedData:
    """Tensors for training plus everything needed to explain them (row i of ``frame`` is tensor row i)."""

    x_num: torch.Tensor                 # float32 [n, dn]
    x_cat: torch.Tensor                 # int64   [n, dc]
    y: dict[str, torch.Tensor]          # per task [n]
    mask: dict[str, torch.Tensor]       # per task bool [n]
    splits: dict[str, torch.Tensor]     # "train", "val" (and "test"): int64 row indices
    preprocessor: Preprocessor
    frame: pd.DataFrame
    config: DataConfig
    source: dict = field(default_factory=dict)   # filename / encoding / delimiter when read from a file

    @property
    def tasks(self) -> tuple[TaskSpec, ...]:
        return self.preprocessor.tasks

    @property
    def task_dims(self) -> dict[str, int]:
        return self.preprocessor.task_dims

    @property
    def num_numeric(self) -> int:
        return int(self.x_num.shape[1])

    @property
    def cardinalities(self) -> list[int]:
        return self.preprocessor.cardinalities

    @property
    def embedding_dims(self) -> list[int]:
        return self.preprocessor.embedding_dims

    @property
    def feature_columns(self) -> list[str]:
        return self.preprocessor.feature_columns

    @property
    def feature_names(self) -> list[str]:
        return self.preprocessor.feature_names

    def __len__(self) -> int:
        return int(self.x_num.shape[0])

    def summary(self) -> dict:
        """JSON-able overview: rows, splits, features used, ignored columns and why, per-task stats."""
        p = self.preprocessor
        train = self.splits["train"]
        tasks = {}
        for t in self.tasks:
            info, m, y = p.targets[t.column], self.mask[t.column], self.y[t.column]
            d: dict[str, Any] = {"kind": info["kind"], "labelled": int(m.sum()), "missing": int((~m).sum()),
                                 "train_labelled": int(m[train].sum())}
            if info["kind"] == "binary":
                d["classes"] = list(info["classes"])
                d["positive"] = info["positive"]
                d["positive_rate"] = float(y[m].mean()) if m.any() else None
            elif info["kind"] == "multiclass":
                d["classes"] = list(info["classes"])
                counts = torch.bincount(y[m], minlength=len(info["classes"])).tolist()
                d["class_counts"] = dict(zip(info["classes"], counts))
            else:
                d["mean"], d["std"] = info["mean"], info["std"]
            tasks[t.column] = d
        return {
            "rows": len(self),
            "splits": {k: int(v.numel()) for k, v in self.splits.items()},
            "features": {"numeric": list(p.numeric_columns), "missing_indicators": list(p.indicator_columns),
                         "categorical": list(p.categorical_columns),
                         "cardinalities": dict(zip(p.categorical_columns, p.cardinalities)),
                         "inputs": {"numeric": self.num_numeric, "categorical": len(p.categorical_columns)}},
            "ignored": dict(p.ignored),
            "tasks": tasks,
            "source": dict(self.source),
        }


def _load(source: Any, filename: str | None, min_rows: int) -> pd.DataFrame:
    if isinstance(source, pd.DataFrame):
        df = clean_frame(source).reset_index(drop=True)
        if len(df) < min_rows:
            raise DataError(f"the table has {len(df)} row(s); need at least {min_rows} rows")
        return df
    return read_csv(source, filename=filename, min_rows=min_rows)


def _select_features(df: pd.DataFrame, config: DataConfig) -> tuple[list[str], list[str], dict[str, str]]:
    cols = list(df.columns)
    targets = [t.column for t in config.tasks]
    for c in config.drop:
        if c not in df.columns:
            raise DataError(f"column {c!r} to drop is not in the data.{_close(c, cols)}")
    for c in config.kind_overrides:
        if c not in df.columns:
            raise DataError(f"column {c!r} in the kind overrides is not in the data.{_close(c, cols)}")
    ignored: dict[str, str] = {}
    if config.features is not None:
        if not config.features:
            raise DataError("the feature list is empty; list at least one column, or leave it unset to use all")
        for c in config.features:
            if c not in df.columns:
                raise DataError(f"feature column {c!r} is not in the data.{_close(c, cols)}")
            if c in targets:
                raise DataError(f"column {c!r} is both a target and a feature; remove it from the features")
            if c in config.drop:
                raise DataError(f"column {c!r} is both a feature and dropped; remove it from one of the two lists")
        candidates, explicit = list(config.features), True
        for c in cols:
            if c not in candidates:
                ignored[c] = "target" if c in targets else "dropped" if c in config.drop else "not in the feature list"
    else:
        candidates, explicit = [], False
        for c in cols:
            if c in targets:
                ignored[c] = "target"
            elif c in config.drop:
                ignored[c] = "dropped"
            else:
                candidates.append(c)
    numeric, categorical = [], []
    for c in candidates:
        prof = _profile(c, df[c])
        kind = config.kind_overrides.get(c, prof.kind)
        if prof.kind == "empty":
            if explicit:
                raise DataError(f"feature column {c!r} has no values (every row is missing); "
                                "remove it from the features")
            ignored[c] = prof.reason()
            continue
        if kind in ("identifier", "constant") and not explicit:
            ignored[c] = prof.reason() if kind == prof.kind else f"marked {kind}"
            continue
        if kind in ("identifier", "constant"):  # listed explicitly: the user wants it
            kind = "numeric" if _is_numeric(df[c]) else "categorical"
        if kind == "numeric":
            _numeric_feature(df[c], c)  # refuses text in a column forced numeric
            numeric.append(c)
        else:
            categorical.append(c)
    if not numeric and not categorical:
        why = "; ".join(f"{c}: {r}" for c, r in ignored.items() if r != "target") or "only targets in the data"
        raise DataError(f"no usable feature columns are left ({why}); add feature columns, "
                        "or force a column's kind (e.g. numeric or categorical)")
    return numeric, categorical, ignored


def _split(n: int, config: DataConfig) -> dict[str, torch.Tensor]:
    perm = np.random.default_rng(config.seed).permutation(n)
    n_val = max(1, int(round(n * config.val_fraction)))
    n_test = max(1, int(round(n * config.test_fraction))) if config.test_fraction > 0 else 0
    if n - n_val - n_test < 1:
        raise DataError(f"only {n} rows: too few to keep training rows after the validation/test split; "
                        "add rows or lower the validation fraction")
    out = {"val": perm[:n_val]}
    if n_test:
        out["test"] = perm[n_val:n_val + n_test]
    out["train"] = perm[n_val + n_test:]
    return {k: torch.from_numpy(np.sort(v).astype(np.int64)) for k, v in
            (("train", out["train"]), ("val", out["val"])) + ((("test", out["test"]),) if n_test else ())}


def prepare(source: Any, config: DataConfig, *, filename: str | None = None) -> PreparedData:
    """Data (DataFrame, path, bytes or file-like) + DataConfig -> PreparedData, fitted on train rows."""
    if not isinstance(config, DataConfig):
        raise TypeError("prepare() needs a DataConfig")
    df = _load(source, filename, MIN_ROWS)
    for t in config.tasks:
        if t.column not in df.columns:
            raise DataError(f"target column {t.column!r} is not in the data.{_close(t.column, df.columns)}")
    numeric, categorical, ignored = _select_features(df, config)
    splits = _split(len(df), config)
    pre = Preprocessor.fit(df, tasks=config.tasks, numeric_columns=numeric, categorical_columns=categorical,
                           train_rows=splits["train"].numpy(), embedding_dims=config.embedding_dims,
                           max_classes=config.max_classes, ignored=ignored)
    x_num, x_cat = pre.transform_features(df)
    y, mask = pre.transform_targets(df)
    tr = splits["train"]
    for t in config.tasks:
        m = mask[t.column][tr]
        if not m.any():
            raise DataError(f"target {t.column!r} has no labelled rows in the training split "
                            f"({int(mask[t.column].sum())} labelled rows in all); add labelled rows "
                            "or change the split seed")
        if t.kind == "binary":
            pos = int(y[t.column][tr][m].sum())
            classes = pre.class_labels(t.column)
            if pos == 0 or pos == int(m.sum()):
                lacking = classes[1] if pos == 0 else classes[0]
                raise DataError(f"target {t.column!r}: the training split has no rows of class {lacking!r}; "
                                "a binary task needs both classes in training — add rows of that class, "
                                "or change the split seed")
    source_info = {k: df.attrs[k] for k in ("filename", "encoding", "delimiter") if k in df.attrs}
    return PreparedData(x_num=x_num, x_cat=x_cat, y=y, mask=mask, splits=splits, preprocessor=pre,
                        frame=df, config=config, source=source_info)


def prepare_for_prediction(df: Any, preprocessor: Preprocessor, *, filename: str | None = None,
                           ) -> tuple[torch.Tensor, torch.Tensor, dict | None, dict | None]:
    """Encode new data with a fitted preprocessor -> (x_num, x_cat, y, mask).

    ``df`` may be a DataFrame or anything read_csv takes (one row is enough). y / mask cover
    the target columns present in the data (unknown classes masked); None when none are.
    """
    frame = _load(df, filename, 1)
    x_num, x_cat = preprocessor.transform_features(frame)
    present = [t.column for t in preprocessor.tasks if t.column in frame.columns]
    if not present:
        return x_num, x_cat, None, None
    y, mask = preprocessor.transform_targets(frame, present)
    return x_num, x_cat, y, mask
