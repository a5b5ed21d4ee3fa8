"""Tables larger than memory: read in blocks with pyarrow, preprocessing fitted in one streaming pass,
the prepared tensors written once to a cache of flat files beside the run store, read back block by block.

    python -m mmoe train --data BIG.csv --stream ...      (also a .parquet file or a folder of them)

1. **Head.** The first HEAD_ROWS rows are read by the in-memory reader (``read_csv``: delimiter,
   encoding, decimal commas, missing markers) and decide the column kinds (``select_features``: the
   same rules as in memory, on the head).
2. **Fit pass.** Every block: the row's split is a seeded function of its row number (``row_splits``);
   numeric means and variances, category counts and target values are accumulated over the training
   rows (classes over all rows), so the ``Preprocessor`` is the in-memory one's, fitted on all rows.
3. **Write pass.** Every block is transformed and appended to the cache (float32 numerics, int32
   categories, targets, masks, split codes); the first validation rows (at most PREDICTION_ROWS) are
   kept raw for the stored predictions. The cache is written to a temporary folder and renamed when
   complete, so a failed or killed preparation leaves nothing half-written; the same file (path, size,
   modification time) with the same settings reuses it.

Bad input deep inside a file gets the in-memory reader's message with its row and line number.
Under torchrun rank 0 prepares the cache while the other processes wait, then they open it; training
reads every world-size-th block (``training.streamed``).
"""
from __future__ import annotations

import bz2
import dataclasses
import gzip
import hashlib
import json
import lzma
import os
import re
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

from mmoe.config import DataConfig
from mmoe.data.errors import MISSING_MARKERS, DataError, _as_float, _labels
from mmoe.data.prepared import select_features
from mmoe.data.preprocess import Preprocessor, _numeric_feature, default_embedding_dim
from mmoe.data.reading import read_csv
from mmoe.data.targets import target_encoding

HEAD_ROWS = 50_000
READ_BLOCK_BYTES = 2 << 20          # pyarrow's CSV block size; its reader holds ~25x this (measured), so keep it small
BLOCK_ROWS = 65_536                 # rows per cache block: the unit of the shuffled training order
PREDICTION_ROWS = 20_000            # validation rows kept raw for the stored predictions and gates
CACHE_VERSION = 1
SPLIT_CODES = {"train": 0, "val": 1, "test": 2}
_MASK = (1 << 64) - 1


class PreparationCancelled(Exception):
    """The caller's stop() turned true between two blocks of a pass (nothing is left behind)."""


def row_splits(rows: np.ndarray, config: DataConfig) -> np.ndarray:
    """Split code (SPLIT_CODES) of each row number: a seeded hash (splitmix64) of the row number, so
    any block, read by any process in any order, gets the same split."""
    with np.errstate(over="ignore"):
        z = rows.astype(np.uint64) + np.uint64((0x9E3779B97F4A7C15 * (config.seed + 1)) & _MASK)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    u = (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    out = np.zeros(len(rows), dtype=np.uint8)
    out[u < config.val_fraction + config.test_fraction] = SPLIT_CODES["test"]
    out[u < config.val_fraction] = SPLIT_CODES["val"]
    return out


# ----------------------------------------------------------------------------- reading in blocks

def _is_parquet(path: Path) -> bool:
    if path.is_dir():
        return True
    with open(path, "rb") as f:
        return f.read(4) == b"PAR1"


def _open_text(path: Path):
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic.startswith(b"\x1f\x8b"):
        return gzip.open(path, "rb")
    if magic.startswith(b"BZh"):
        return bz2.open(path, "rb")
    if magic.startswith(b"\xfd7zXZ\x00"):
        return lzma.open(path, "rb")
    return open(path, "rb")


def _head_bytes(path: Path, rows: int) -> bytes:
    """The header and the first ``rows`` lines (whole lines; quoted line breaks are rare in such files)."""
    out, n = [], 0
    with _open_text(path) as f:
        for line in f:
            out.append(line)
            n += 1
            if n > rows:
                break
    return b"".join(out)


@dataclass
class StreamSource:
    """A large table on disk and how its blocks are read (decided from its head)."""

    path: Path
    head: pd.DataFrame
    parquet: bool
    report: dict = field(default_factory=dict)
    regression_targets: frozenset = frozenset()     # named in messages about values that are not numbers

    @classmethod
    def open(cls, path: str | os.PathLike) -> "StreamSource":
        p = Path(path)
        if not p.exists():
            raise DataError(f"file {str(p)!r} does not exist; check the path")
        if _is_parquet(p):
            import pyarrow.dataset as pads

            try:
                ds = pads.dataset(p, format="parquet")
                head = ds.head(HEAD_ROWS).to_pandas()
            except Exception as e:  # pyarrow's errors: not parquet, unreadable footer, ...
                raise DataError(f"{p.name} cannot be read as Parquet ({e}); check the file") from None
            return cls(p, head, True, {"format": "parquet"})
        head = read_csv(_head_bytes(p, HEAD_ROWS), filename=p.name)
        return cls(p, head, False, dict(head.attrs.get("read_report", {}), format="csv"))

    @property
    def name(self) -> str:
        return self.path.name

    def identity(self) -> dict:
        """What makes the file the same file again: its resolved path, size and modification time."""
        files = sorted(self.path.rglob("*.parquet")) if self.path.is_dir() else [self.path]
        return {"path": str(self.path.resolve()),
                "files": [(str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files]}

    def blocks(self, columns: list[str]) -> Iterator[pd.DataFrame]:
        """The table's ``columns`` in file order, one DataFrame per block (numbers as in the head)."""
        if self.parquet:
            import pyarrow.dataset as pads

            for batch in pads.dataset(self.path, format="parquet").to_batches(columns=columns, batch_size=BLOCK_ROWS):
                yield batch.to_pandas()
            return
        yield from self._csv_blocks(columns)

    def _csv_blocks(self, columns: list[str]) -> Iterator[pd.DataFrame]:
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.csv as pacsv

        sep = self.report.get("delimiter", ",")
        comma = set(self.report.get("decimal_comma_columns") or [])
        numeric = {c for c in columns if pd.api.types.is_numeric_dtype(self.head[c].dtype) and c not in comma}
        types = {c: (pa.float64() if c in numeric else pa.string()) for c in columns}
        opts = dict(parse_options=pacsv.ParseOptions(delimiter=sep),
                    convert_options=pacsv.ConvertOptions(column_types=types, include_columns=columns,
                                                         null_values=sorted(MISSING_MARKERS | {""}),
                                                         strings_can_be_null=True, quoted_strings_can_be_null=True))
        enc = self.report.get("encoding", "utf-8")
        done = 0
        with _open_text(self.path) as f:
            reader = pacsv.open_csv(f, read_options=pacsv.ReadOptions(block_size=READ_BLOCK_BYTES,
                                                                      encoding="utf8" if enc == "utf-8" else enc),
                                    **opts)
            while True:
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    return
                except Exception as e:  # pyarrow.ArrowInvalid: a value or a line that does not fit
                    raise self._located(e, done, columns, numeric) from None
                cols = {}
                for c, arr in zip(batch.schema.names, batch.columns):
                    if c not in numeric:
                        arr = pc.utf8_trim_whitespace(arr)
                        if c in comma:
                            arr = pc.cast(pc.replace_substring(arr, ",", "."), pa.float64(), safe=False)
                    cols[c] = arr
                df = pa.table(cols).to_pandas()
                done += len(df)
                yield df[columns]

    def _located(self, err: Exception, done: int, columns: list[str], numeric: set[str]) -> DataError:
        """A pyarrow error in the block after ``done`` rows -> the in-memory reader's message with row and line."""
        msg = str(err)
        m = re.search(r"column #(\d+): (?:Row #(\d+): )?CSV conversion error to double: invalid value '(.*)'", msg)
        if m:
            col = columns[int(m.group(1))] if int(m.group(1)) < len(columns) else "?"
            # pyarrow's "Row #N" counts the header line as row 1 (where it can count lines at all)
            row = int(m.group(2)) - 1 if m.group(2) else self._find_text(done, col, m.group(3))
            where = f"row {row:,} (line {row + 1:,} of {self.name})" if row else f"a row after row {done:,}"
            if col in self.regression_targets:
                return DataError(f"target column {col!r} must be numeric for regression, but {where} has "
                                 f"{m.group(3)!r}; fix or blank such values, or use binary/multiclass",
                                 field=f"target:{col}")
            return DataError(f"numeric column {col!r} has the text {m.group(3)!r} in {where}; write a number "
                             "there, or leave it empty / NA if it is missing", field="kinds")
        m = re.search(r"Expected (\d+) columns, got (\d+)", msg)
        if m:
            return DataError(f"{self.name}: a line after row {done:,} has {m.group(2)} fields where the header has "
                             f"{m.group(1)} ({msg.splitlines()[0][:200]}); fix that line (a missing or extra "
                             "delimiter, or an unclosed quote)")
        return DataError(f"{self.name} cannot be read after row {done:,}: {msg.splitlines()[0][:300]}")

    def _find_text(self, done: int, col: str, text: str) -> int | None:
        """The 1-based data row of the first ``text`` in ``col`` at or after row ``done``."""
        import pyarrow.csv as pacsv

        with _open_text(self.path) as f:
            reader = pacsv.open_csv(f, read_options=pacsv.ReadOptions(block_size=READ_BLOCK_BYTES,
                                                                      skip_rows_after_names=done),
                                    parse_options=pacsv.ParseOptions(delimiter=self.report.get("delimiter", ",")),
                                    convert_options=pacsv.ConvertOptions(include_columns=[col],
                                                                         column_types={col: "string"}))
            seen = done
            for batch in reader:
                vals = batch.column(0).to_pylist()
                for i, v in enumerate(vals):
                    if v is not None and v.strip() == text.strip():
                        return seen + i + 1
                seen += len(vals)
        return None


# ----------------------------------------------------------------------------- the fit pass

class _Moments:
    """Count, mean and sum of squared deviations, merged block by block (Chan et al.)."""

    def __init__(self):
        self.n, self.mean, self.m2, self.missing = 0, 0.0, 0.0, False

    def add(self, a: np.ndarray) -> None:
        ok = ~np.isnan(a)
        self.missing |= bool((~ok).any())
        v = a[ok]
        if not len(v):
            return
        n, mu = len(v), float(v.mean())
        m2 = float(((v - mu) ** 2).sum())
        tot = self.n + n
        d = mu - self.mean
        self.mean += d * n / tot
        self.m2 += m2 + d * d * self.n * n / tot
        self.n = tot

    def std(self) -> float:
        sd = float(np.sqrt(self.m2 / self.n)) if self.n > 1 else 1.0
        return sd if sd > 1e-12 and np.isfinite(sd) else 1.0


def _with_rows(err: DataError, offset: int) -> DataError:
    """A block's DataError with its block-relative 'row N' turned into the file's row and line."""
    def fix(m):
        r = int(m.group(1).replace(",", "")) + offset
        return f"row {r:,} (line {r + 1:,})"
    return DataError(re.sub(r"row ([\d,]+)", fix, str(err)), field=getattr(err, "field", None))


def fit_streamed(src: StreamSource, config: DataConfig, *, min_count: int | None = None,
                 max_vocab: int | None = None, stop=None) -> tuple[Preprocessor, dict]:
    """One pass over the file: the Preprocessor (train statistics, all-row classes) and the row counts."""
    from mmoe.data.errors import MAX_VOCAB, MIN_CATEGORY_COUNT

    min_count = MIN_CATEGORY_COUNT if min_count is None else min_count
    max_vocab = MAX_VOCAB if max_vocab is None else max_vocab
    for t in config.tasks:
        if t.column not in src.head.columns:
            raise DataError(f"target column {t.column!r} is not in the data", field=f"target:{t.column}")
    numeric, categorical, ignored = select_features(src.head, config)
    src.regression_targets = frozenset(t.column for t in config.tasks if t.kind == "regression")
    targets = [t.column for t in config.tasks]
    cols = list(dict.fromkeys(numeric + categorical + targets))
    moments = {c: _Moments() for c in numeric}
    counts: dict[str, pd.Series] = {c: pd.Series(dtype="int64") for c in categorical}
    seen: dict[str, list] = {c: [] for c in targets}
    target_moments = {t.column: _Moments() for t in config.tasks if t.kind == "regression"}
    splits = np.zeros(3, dtype=np.int64)
    offset = 0
    for block in src.blocks(cols):
        if stop is not None and stop():
            raise PreparationCancelled(f"cancelled while reading {src.name} (after {offset:,} rows)")
        sp = row_splits(np.arange(offset, offset + len(block)), config)
        splits += np.bincount(sp, minlength=3)
        train = sp == SPLIT_CODES["train"]
        try:
            for c in numeric:
                moments[c].add(_numeric_feature(block[c], c)[train])
            for c in categorical:
                counts[c] = counts[c].add(_labels(block[c][train]).value_counts(), fill_value=0)
            for t in config.tasks:
                s = block[t.column]
                if t.kind == "regression":
                    a = _as_float(pd.to_numeric(s, errors="coerce"))
                    bad = np.flatnonzero(np.isnan(a) & s.notna().to_numpy())
                    if bad.size:
                        raise DataError(f"target column {t.column!r} must be numeric for regression, but row "
                                        f"{int(bad[0]) + 1} has {str(s.iloc[int(bad[0])])!r}; fix or blank such "
                                        "values, or use binary/multiclass", field=f"target:{t.column}")
                    target_moments[t.column].add(a[train])
                    if (~np.isnan(a)).any():      # the extremes are enough to tell one value from several
                        seen[t.column].append(pd.Series([np.nanmin(a), np.nanmax(a)]))
                else:
                    seen[t.column].append(s.dropna().drop_duplicates())
        except DataError as e:
            raise _with_rows(e, offset) from None
        offset += len(block)
    if offset == 0:
        raise DataError(f"{src.name} has a header but no data rows; add rows below the header line")
    means, stds, indicators, vocab, dims = [], [], [], {}, []
    for c in numeric:
        m = moments[c]
        means.append(m.mean if m.n else 0.0)
        stds.append(m.std())
        if m.missing or m.n < splits[0]:
            indicators.append(c)
    for c in categorical:
        vc = counts[c][counts[c] >= min_count]
        order = sorted(zip(vc.index.tolist(), vc.to_numpy().tolist()), key=lambda t: (-t[1], t[0]))
        vocab[c] = [str(v) for v, _ in order[:max_vocab]]
        dims.append(int(config.embedding_dims.get(c, default_embedding_dim(len(vocab[c]) + 1))))
    encodings = {}
    for t in config.tasks:
        distinct = pd.concat(seen[t.column], ignore_index=True).drop_duplicates() if seen[t.column] else pd.Series()
        enc = target_encoding(distinct, t, config.max_classes)
        if t.kind == "regression":
            tm = target_moments[t.column]
            enc = dataclasses.replace(enc, mean=tm.mean if tm.n else 0.0, std=tm.std())
        encodings[t.column] = enc
    pre = Preprocessor(tasks=config.tasks, numeric_columns=numeric, categorical_columns=categorical,
                       num_mean=means, num_std=stds, indicator_columns=indicators, vocab=vocab,
                       embedding_dims=dims, targets=encodings, ignored=ignored)
    return pre, {"rows": int(offset), "train": int(splits[0]), "val": int(splits[1]), "test": int(splits[2])}


def cache_key(src: StreamSource, config: DataConfig) -> str:
    blob = json.dumps({"v": CACHE_VERSION, "file": src.identity(), "config": config.to_dict()}, sort_keys=True,
                      default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def _fresh_dir(root: Path) -> Path:
    tmp = root / f".tmp-{uuid.uuid4().hex[:12]}"
    tmp.mkdir(parents=True)
    return tmp


STALE_SECONDS = 3600


def remove_partial(root: Path) -> None:
    """Temporary folders a killed preparation left behind (untouched for an hour: not one being written now)."""
    import time

    for p in root.glob(".tmp-*"):
        try:
            if time.time() - p.stat().st_mtime > STALE_SECONDS:
                shutil.rmtree(p, ignore_errors=True)
        except OSError:
            pass


__all__: list[Any] = ["StreamSource", "row_splits", "fit_streamed", "cache_key", "SPLIT_CODES"]
