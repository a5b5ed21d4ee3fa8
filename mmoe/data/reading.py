"""Files -> DataFrame: bytes from a path, upload or file-like; decompression (gzip, bz2, xz)
recognised from the bytes; encoding (UTF-8 with/without BOM, Latin-1, UTF-16); the dialect sniffed
(, ; tab |); ragged lines refused; missing markers, stray spaces and decimal commas cleaned."""
from __future__ import annotations

import bz2
import csv
import gzip
import hashlib
import io
import lzma
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mmoe.data.errors import (
    DELIMITERS,
    MIN_ROWS,
    MISSING_MARKERS,
    DataError,
    _clean_labels,
    _clean_uniques,
    _is_bool_object,
    _label,
    _q,
)

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
    if raw.isascii():                      # plain ASCII is UTF-8 (a check 10x quicker than decoding)
        return raw, "utf-8"
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


def _newlines(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """(the bytes as uint8, the positions of their newlines), for the ragged-row check and the count of
    blank lines in a file with quotes."""
    arr = np.frombuffer(data, dtype=np.uint8)
    return arr, np.flatnonzero(arr == 10)


def _blank_lines(data: bytes, parsed_rows: int) -> int:
    """Lines the parser skipped because nothing is on them. Without quotes (no field spans lines) that is
    every line but the header and the rows it parsed, counted from the newlines alone; with quotes, the
    lines with nothing on them (``\n\n`` or ``\n\r\n``)."""
    if b'"' not in data:
        lines = data.count(b"\n") + (not data.endswith(b"\n"))
        return max(0, lines - 1 - parsed_rows)
    arr, nl = _newlines(data)
    gap = np.diff(nl)
    return int(np.count_nonzero(gap == 1) + np.count_nonzero((gap == 2) & (arr[nl[:-1] + 1] == 13)))


def _check_ragged(data: bytes, sep: str, ncols: int, name: str) -> None:
    """Refuse rows with more or fewer fields than the header, naming the first such line."""
    if ncols < 2:
        return
    if b'"' not in data:
        arr, nl = _newlines(data)
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


def content_id(data: bytes) -> str:
    """A table's id: the first 16 hex digits of the SHA-256 of its bytes as given (the same file is the
    same dataset whether it was uploaded or read from a path)."""
    return hashlib.sha256(data).hexdigest()[:16]


def read_csv(source: Any, *, filename: str | None = None, min_rows: int = MIN_ROWS) -> pd.DataFrame:
    """Read a CSV (path, bytes or binary file-like) into a clean DataFrame.

    Sniffs the delimiter (, ; tab |), the encoding (UTF-8 with or without BOM, UTF-16 with BOM,
    else cp1252/Latin-1) and compression (gzip, bzip2, xz by magic bytes). Strips spaces around
    header names and values, reads MISSING_MARKERS as NaN, turns all-numeric columns into numbers
    and drops rows that are entirely empty. ``min_rows`` data rows are required (1 for scoring).
    """
    return _read_csv(source, filename=filename, min_rows=min_rows)[0]


def _read_csv(source: Any, *, filename: str | None = None, min_rows: int = MIN_ROWS) -> tuple[pd.DataFrame, dict]:
    """``read_csv`` and the label codes of its clean text columns (see ``_clean_frame``)."""
    raw, name = _source_bytes(source, filename)
    content = content_id(raw)
    name = repr(name) if not name.startswith("the ") else name
    if not raw or raw.isspace():          # (isspace stops at the first other byte; strip would copy the file)
        raise DataError(f"{name} is empty; choose a CSV file with a header line and data rows")
    for magic, what in _MAGIC:
        if raw.startswith(magic):
            raise DataError(f"{name} is {what}")
    compressed = len(raw)
    compression = next((kind for magic, kind in ((b"\x1f\x8b", "gzip"), (b"BZh", "bzip2"), (b"\xfd7zXZ\x00", "xz"))
                        if raw.startswith(magic)), None)
    raw = _decompress(raw, name)
    for magic, what in _MAGIC:
        if raw.startswith(magic):
            raise DataError(f"{name} (decompressed) is {what}")
    data, encoding = _decode(raw, name)
    if b"\n" not in data and b"\r" in data:
        data = data.replace(b"\r", b"\n")  # classic Mac line endings
    if not data or data.isspace():
        raise DataError(f"{name} is empty; choose a CSV file with a header line and data rows")
    text_head = data[:65536].decode("utf-8", errors="replace")
    if len(data) <= 65536:
        text_head += "\n"
    sep, header = _sniff(text_head)
    names = [h.strip() for h in header]
    if not names:
        raise DataError(f"{name} has no header line; the first line must name the columns")
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
            if m:      # a row longer than the header: name the first ragged line, of either kind
                _check_ragged(data, sep, len(names), name)
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

    # the parser refuses a row longer than the header (above) but fills a shorter one with missing values,
    # which leaves its last column missing: only then is the file searched for the first ragged line
    if len(df.columns) > 1 and df.iloc[:, -1].isna().any():
        _check_ragged(data, sep, len(names), name)
    df.attrs["delimiter"] = sep
    parsed_rows = len(df)
    blank_lines = _blank_lines(data, parsed_rows)     # skipped by the parser
    df, coded = _clean_frame(df)
    coded.pop("__index__", None)
    index_dropped = False
    if drop_first:
        idx = pd.to_numeric(df["__index__"], errors="coerce")
        if idx.notna().all() and (idx.diff().iloc[1:] == 1).all():
            df = df.drop(columns="__index__")
            index_dropped = True
        else:
            raise DataError(f"{name}: column 1 of the header has no name; give every column a name in line 1")
    keep = df.notna().to_numpy().any(axis=1)
    if not keep.all():                   # rows entirely empty (",,"): dropped, and their codes with them
        df = df[keep].reset_index(drop=True)
        coded = {n: (codes[keep], uniq) for n, (codes, uniq) in coded.items()}
    decimal_comma = list(df.attrs.get("decimal_comma", []))
    if len(df) == 0:
        raise DataError(f"{name} has a header but no data rows; add rows below the header line")
    if len(df) < min_rows:
        raise DataError(f"{name} has only {len(df)} data row(s); need at least {min_rows} rows")
    df.attrs.update(encoding=encoding, delimiter=sep, filename=name.strip("'"), dataset_id=content)
    # what the reader did, for the Data page to say (never silent)
    df.attrs["read_report"] = {
        "delimiter": sep, "encoding": encoding, "compression": compression, "bytes": compressed,
        "header_columns": len(names), "rows": len(df), "blank_lines_skipped": blank_lines,
        "empty_rows_dropped": parsed_rows - len(df), "saved_index_dropped": index_dropped,
        "decimal_comma_columns": decimal_comma,
    }
    return df, coded


def clean_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Normalise a frame the way read_csv does (idempotent; returns a new frame).

    Column names become stripped strings (empty or duplicate -> DataError); text values are
    stripped; MISSING_MARKERS become NaN; text columns that are all numbers become numeric.
    """
    return _clean_frame(df)[0]


def _clean_frame(df: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """``clean_frame`` and the ``label_codes`` of the text columns it found clean, by name: each text
    column is hashed once, for the check and for the codes that preparation uses."""
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
    coded: dict = {}
    converted: list[str] = []   # columns read with a decimal comma ("3,14" -> 3.14)
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
        m = s.notna() if s.dtype == object else None          # else already a string column
        if m is not None and m.any():
            s = s.astype(object)
            s[m] = s[m].map(lambda v: v if isinstance(v, str) else _label(v))
            s = s.astype("str")
        codes = None
        if isinstance(s.dtype, pd.StringDtype):
            codes, uniq = pd.factorize(s)
            clean = _clean_uniques(pd.Series(uniq, dtype=s.dtype))
        else:
            clean = _clean_labels(s)
        if not clean:               # checked on the distinct values: a clean column is not rewritten
            s = s.str.strip()
            s = s.where(~s.isin(MISSING_MARKERS))
            codes = None
        if codes is not None and not decimal_comma and (not len(uniq) or not _parses_as_number(uniq[0])):
            out[n] = s                          # text (its first value is no number), or all missing
        else:
            out[n] = _maybe_numeric(s, decimal_comma)
        if codes is not None and out[n] is s:
            coded[n] = (codes, pd.Index(uniq))
        if decimal_comma and pd.api.types.is_numeric_dtype(out[n].dtype) and s.str.contains(",", regex=False).any():
            converted.append(n)
    res = pd.DataFrame(out, index=df.index)
    res.attrs.update(df.attrs)
    if converted:
        res.attrs["decimal_comma"] = converted
    return res, coded


def _maybe_numeric(s: pd.Series, decimal_comma: bool = False) -> pd.Series:
    probe = s.iloc[:400].dropna().iloc[:200]
    if probe.empty:
        probe = s.dropna().iloc[:200]
        if probe.empty:
            return s
    if not decimal_comma and not _parses_as_number(probe.iloc[0]):
        return s                           # text: its first value is no number
    k = int(s.notna().sum())
    conv = pd.to_numeric(probe, errors="coerce")
    if conv.isna().any():
        if decimal_comma and probe.str.fullmatch(r"[-+]?\d+,\d+").any() and \
                pd.to_numeric(probe.str.replace(",", ".", regex=False), errors="coerce").notna().all():
            s2 = s.str.replace(",", ".", regex=False)
            full = pd.to_numeric(s2, errors="coerce")
            if full.notna().sum() == k:
                return _downcast_int(full)
        return s
    full = pd.to_numeric(s, errors="coerce")
    if full.notna().sum() != k:
        return s
    return _downcast_int(full)


def _parses_as_number(v: Any) -> bool:
    try:
        float(v)
    except (TypeError, ValueError):
        return False
    return True


def _downcast_int(x: pd.Series) -> pd.Series:
    x = x.astype(np.float64)
    if x.notna().all() and np.isfinite(x).all() and (x == np.round(x)).all() and (x.abs() < 2 ** 53).all():
        return x.astype(np.int64)
    return x
