"""``Preprocessor``: fitted on the training rows only, JSON round-trippable; turns frames into
tensors (standardised numerics with missing flags, categorical vocabularies, encoded targets)."""
from __future__ import annotations

import json
import math
from typing import Any, Iterable

import numpy as np
import pandas as pd
import torch

from mmoe.config import TaskSpec
from mmoe.data.errors import (
    CLIP_Z,
    MAX_VOCAB,
    MIN_CATEGORY_COUNT,
    MISSING_MARKERS,
    DataError,
    _as_float,
    _close,
    _is_numeric,
    _q,
    _row_word,
    label_codes,
)
from mmoe.data.targets import TargetEncoding, encode_target, target_encoding


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
                 vocab: dict[str, list[str]], embedding_dims: list[int],
                 targets: dict[str, TargetEncoding | dict],
                 ignored: dict[str, str] | None = None, clip: float = CLIP_Z):
        self.tasks = tuple(tasks)
        self.numeric_columns = list(numeric_columns)
        self.categorical_columns = list(categorical_columns)
        self.num_mean = [float(v) for v in num_mean]
        self.num_std = [float(v) for v in num_std]
        self.indicator_columns = list(indicator_columns)
        self.vocab = {k: list(v) for k, v in vocab.items()}
        self.embedding_dims = [int(d) for d in embedding_dims]
        self.targets = {k: v if isinstance(v, TargetEncoding) else TargetEncoding.from_dict(v)
                        for k, v in targets.items()}
        self.ignored = dict(ignored or {})
        self.clip = float(clip)
        self._index = {c: pd.Index(self.vocab[c]) for c in self.categorical_columns}

    # ---- fitting
    @classmethod
    def fit(cls, frame: pd.DataFrame, *, tasks: Iterable[TaskSpec], numeric_columns: list[str],
            categorical_columns: list[str], train_rows: Any = None, embedding_dims: dict[str, int] | None = None,
            max_classes: int = 50, min_count: int = MIN_CATEGORY_COUNT, max_vocab: int = MAX_VOCAB,
            ignored: dict[str, str] | None = None, coded: dict[str, tuple] | None = None) -> "Preprocessor":
        """Fit on ``frame`` rows ``train_rows`` (positions; None = all). Target classes come from
        all rows (a class seen only outside train still gets an output); statistics from train.
        ``coded``: ``label_codes`` of the categorical columns of the whole frame, when the caller has them."""
        tasks = tuple(tasks)
        rows = np.arange(len(frame)) if train_rows is None else np.asarray(train_rows, dtype=np.int64)
        means, stds, indicators = [], [], []
        for c in numeric_columns:      # whole columns converted, then the training rows taken (no frame copy)
            a = _numeric_feature(frame[c], c)[rows]
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
            codes, uniques = coded[c] if coded and c in coded else label_codes(frame[c])
            counts = np.bincount(codes[rows][codes[rows] >= 0], minlength=len(uniques))   # per distinct label
            keep = np.flatnonzero(counts >= min_count)
            order = sorted(zip(np.asarray(uniques, dtype=object)[keep].tolist(), counts[keep].tolist()),
                           key=lambda t: (-t[1], t[0]))
            vocab[c] = [str(v) for v, _ in order[:max_vocab]]
            dims.append(int(embedding_dims.get(c, default_embedding_dim(len(vocab[c]) + 1))))
        targets = {}
        for t in tasks:
            enc = target_encoding(frame[t.column], t, max_classes)
            # the train mean and std standardise a regression target (the others have no scale to fit)
            targets[t.column] = enc.scaled(_as_float(frame[t.column])[rows]) if enc.kind == "regression" else enc
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
        return {t.column: (len(self.targets[t.column].classes) if t.kind == "multiclass" else 1)
                for t in self.tasks}

    def class_labels(self, task: str | TaskSpec) -> list[str]:
        enc = self.targets[_task_name(task)]
        return [] if enc.kind == "regression" else list(enc.classes)

    def target_scale(self, task: str | TaskSpec) -> tuple[float, float]:
        enc = self.targets[_task_name(task)]
        return (enc.mean, enc.std) if enc.kind == "regression" else (0.0, 1.0)

    # ---- transforming
    def _require(self, df: pd.DataFrame, cols: list[str], what: str) -> None:
        missing = [c for c in cols if c not in df.columns]
        if missing:
            c = missing[0]
            more = f" (and {len(missing) - 1} more: {_q(missing[1:])})" if len(missing) > 1 else ""
            raise DataError(f"the data has no {what} column {c!r}{more}, which the model was trained with; "
                            f"add it (values may be empty).{_close(c, df.columns)}")

    def transform_features(self, df: pd.DataFrame, *, coded: dict[str, tuple] | None = None,
                           ) -> tuple[torch.Tensor, torch.Tensor]:
        """df -> (x_num float32 [n, dn], x_cat int64 [n, dc]); ``coded`` as in ``fit``."""
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
            # each distinct label is looked up once: codes of the column's values, then their vocabulary index
            codes, uniques = coded[c] if coded and c in coded else label_codes(df[c])
            look = self._index[c].get_indexer(uniques) + 1          # unseen: -1 -> 0
            x_cat[:, j] = np.where(codes >= 0, look[np.maximum(codes, 0)], 0)   # missing (code -1) -> 0
        return torch.from_numpy(x_num), torch.from_numpy(x_cat)

    def transform_targets(self, df: pd.DataFrame, tasks: Iterable[str] | None = None,
                          ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """df -> (y, mask) per task name. Missing or unknown labels: y 0, mask False."""
        names = [t.column for t in self.tasks] if tasks is None else list(tasks)
        self._require(df, names, "target")
        y, mask = {}, {}
        for name in names:
            yy, mm = encode_target(df[name], self.targets[name], name)
            y[name], mask[name] = torch.from_numpy(yy), torch.from_numpy(mm.astype(bool))
        return y, mask

    # ---- persistence
    def to_dict(self) -> dict:
        return {"version": self.VERSION, "tasks": [_task_dict(t) for t in self.tasks],
                "numeric_columns": self.numeric_columns, "categorical_columns": self.categorical_columns,
                "num_mean": self.num_mean, "num_std": self.num_std, "indicator_columns": self.indicator_columns,
                "vocab": self.vocab, "embedding_dims": self.embedding_dims,
                "targets": {k: v.to_dict() for k, v in self.targets.items()},
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
    return {"column": t.column, "kind": t.kind, "positive": t.positive, "weight": t.weight, "threshold": t.threshold}


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
                            "write a number there, or leave it empty / NA if it is missing", field="kinds")
        s = conv
    return _as_float(s)
