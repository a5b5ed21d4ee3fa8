"""The prepared tensors of a streamed table (see ``streaming``), written once as flat files and read back
block by block with positional reads (not memory-mapped: pages a process reads stay out of its RSS).

    <cache root>/<key>/manifest.json    rows, splits, blocks, the fitted preprocessor, the read report
                      x_num.f32 [n, dn]  x_cat.i32 [n, dc]  y.<t> [n]  mask.u8 [n, t]  split.u8 [n]
                      sample.parquet     the first validation rows, raw (for stored predictions and gates)
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from mmoe.config import DataConfig
from mmoe.data.errors import DataError
from mmoe.data.prepared import ModelInputs
from mmoe.data.preprocess import Preprocessor
from mmoe.data.streaming import (
    BLOCK_ROWS,
    PREDICTION_ROWS,
    SPLIT_CODES,
    PreparationCancelled,
    StreamSource,
    _fresh_dir,
    _with_rows,
    cache_key,
    fit_streamed,
    remove_partial,
    row_splits,
)

MANIFEST = "manifest.json"


def _y_dtype(kind: str):
    return np.int64 if kind == "multiclass" else np.float32


class StreamedData(ModelInputs):
    """What ``fit`` and the runner need of a prepared table, for one that lives on disk: the fitted
    preprocessor, row counts per split, and blocks of tensors read on demand."""

    streamed = True

    def __init__(self, folder: Path, config: DataConfig):
        self.folder, self.config = Path(folder), config
        self.manifest = json.loads((self.folder / MANIFEST).read_text())
        self.preprocessor = Preprocessor.from_dict(self.manifest["preprocessor"])
        self.n_rows = int(self.manifest["rows"])
        self.split_counts = dict(self.manifest["splits"])
        self.source = dict(self.manifest.get("source", {}))

    def __len__(self) -> int:
        return self.n_rows

    @property
    def n_blocks(self) -> int:
        return (self.n_rows + BLOCK_ROWS - 1) // BLOCK_ROWS

    # -- reading
    def _read(self, name: str, dtype, width: int | None, start: int, stop: int) -> np.ndarray:
        """Rows start..stop of a flat file: [rows, width], or [rows] for ``width`` None."""
        if width == 0:
            return np.zeros((stop - start, 0), dtype=dtype)
        item = np.dtype(dtype).itemsize * (width or 1)
        with open(self.folder / name, "rb") as f:
            buf = os.pread(f.fileno(), (stop - start) * item, start * item)
        a = np.frombuffer(buf, dtype=dtype).copy()
        return a if width is None else a.reshape(stop - start, width)

    def block(self, b: int, *, features: bool = True) -> dict[str, Any]:
        """Block ``b``'s tensors: x_num, x_cat (unless ``features`` is false), y / mask per task, split codes."""
        start, stop = b * BLOCK_ROWS, min((b + 1) * BLOCK_ROWS, self.n_rows)
        pre = self.preprocessor
        dc = len(pre.categorical_columns)
        out = {"split": self._read("split.u8", np.uint8, None, start, stop), "y": {}, "mask": {}}
        if features:
            out["x_num"] = torch.from_numpy(self._read("x_num.f32", np.float32, pre.num_numeric, start, stop))
            out["x_cat"] = torch.from_numpy(self._read("x_cat.i32", np.int32, dc, start, stop).astype(np.int64))
        masks = self._read("mask.u8", np.uint8, len(pre.tasks), start, stop).astype(bool)
        for t, spec in enumerate(pre.tasks):
            out["y"][spec.column] = torch.from_numpy(self._read(f"y.{t}", _y_dtype(spec.kind), None, start, stop))
            out["mask"][spec.column] = torch.from_numpy(np.ascontiguousarray(masks[:, t]))
        return out

    def sample(self) -> pd.DataFrame:
        """The first validation rows, raw, with their row numbers (``_row``)."""
        return pd.read_parquet(self.folder / "sample.parquet")

    def summary(self) -> dict:
        p = self.preprocessor
        tasks = {t.column: {"kind": p.targets[t.column].kind, **({"classes": list(p.targets[t.column].classes),
                                                                    "positive": p.targets[t.column].positive}
                                                                   if p.targets[t.column].kind != "regression" else
                                                                   {"mean": p.targets[t.column].mean,
                                                                    "std": p.targets[t.column].std})}
                 for t in self.tasks}
        return {"rows": self.n_rows, "splits": {k: v for k, v in self.split_counts.items() if v or k != "test"},
                "features": {"numeric": list(p.numeric_columns), "missing_indicators": list(p.indicator_columns),
                             "categorical": list(p.categorical_columns),
                             "cardinalities": dict(zip(p.categorical_columns, p.cardinalities)),
                             "inputs": {"numeric": self.num_numeric, "categorical": len(p.categorical_columns)}},
                "ignored": dict(p.ignored), "tasks": tasks, "source": dict(self.source),
                "streamed": {"cache": str(self.folder), "blocks": self.n_blocks, "block_rows": BLOCK_ROWS}}


def _write(src: StreamSource, config: DataConfig, pre: Preprocessor, folder: Path, stop=None) -> None:
    """The write pass: every block transformed and appended; the first validation rows kept raw."""
    feats = pre.feature_columns
    cols = list(dict.fromkeys(feats + [t.column for t in pre.tasks]))
    files = {n: open(folder / n, "wb") for n in ("x_num.f32", "x_cat.i32", "mask.u8", "split.u8")}
    files.update({f"y.{t}": open(folder / f"y.{t}", "wb") for t in range(len(pre.tasks))})
    kept, n_kept, offset = [], 0, 0
    try:
        for block in src.blocks(cols):
            if stop is not None and stop():
                raise PreparationCancelled(f"cancelled while preparing {src.name} (after {offset:,} rows)")
            try:
                x_num, x_cat = pre.transform_features(block)
                y, mask = pre.transform_targets(block)
            except DataError as e:
                raise _with_rows(e, offset) from None
            sp = row_splits(np.arange(offset, offset + len(block)), config)
            files["x_num.f32"].write(x_num.numpy().astype(np.float32, copy=False).tobytes())
            files["x_cat.i32"].write(x_cat.numpy().astype(np.int32).tobytes())
            files["mask.u8"].write(np.stack([mask[t.column].numpy() for t in pre.tasks], 1).astype(np.uint8).tobytes())
            files["split.u8"].write(sp.tobytes())
            for t, spec in enumerate(pre.tasks):
                files[f"y.{t}"].write(y[spec.column].numpy().astype(_y_dtype(spec.kind)).tobytes())
            if n_kept < PREDICTION_ROWS:
                pick = np.flatnonzero(sp == SPLIT_CODES["val"])[:PREDICTION_ROWS - n_kept]
                if len(pick):
                    raw = block.iloc[pick].copy()
                    raw.insert(0, "_row", offset + pick)
                    kept.append(raw)
                    n_kept += len(pick)
            offset += len(block)
    finally:
        for f in files.values():
            f.close()
    sample = pd.concat(kept, ignore_index=True) if kept else pd.DataFrame({"_row": []})
    sample.to_parquet(folder / "sample.parquet", index=False)


def prepare_streamed(path: str | os.PathLike, config: DataConfig, cache_root: str | os.PathLike, *,
                     stop=None) -> StreamedData:
    """A large table -> StreamedData: the cache for (file, settings) if complete, else written now
    (two passes over the file; a failure leaves no partial cache behind). ``stop``: checked between
    blocks; when it turns true, ``PreparationCancelled`` is raised and nothing is kept."""
    if config.val_fraction <= 0:
        raise DataError("a streamed table needs a validation share above 0", field="split")
    src = StreamSource.open(path)
    root = Path(cache_root)
    folder = root / cache_key(src, config)
    if (folder / MANIFEST).exists():
        return StreamedData(folder, config)
    root.mkdir(parents=True, exist_ok=True)
    remove_partial(root)
    pre, counts = fit_streamed(src, config, stop=stop)
    if counts["train"] < 1 or counts["val"] < 1:
        raise DataError(f"only {counts['rows']} rows: too few to keep training and validation rows", field="split")
    tmp = _fresh_dir(root)
    try:
        _write(src, config, pre, tmp, stop)
        manifest = {"rows": counts["rows"], "splits": {k: counts[k] for k in ("train", "val", "test")},
                    "preprocessor": pre.to_dict(), "config": config.to_dict(),
                    "source": {"filename": src.name, **src.report, "path": str(src.path)}}
        (tmp / MANIFEST).write_text(json.dumps(manifest, default=str))
        try:
            tmp.rename(folder)
        except OSError:              # another process finished the same cache first: use that one
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return StreamedData(folder, config)
