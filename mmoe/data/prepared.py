"""``prepare``: DataConfig + a file or frame -> ``PreparedData`` (tensors, masks, seeded splits,
the fitted preprocessor); ``prepare_for_prediction`` for a later file scored by a stored run."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from mmoe.config import DataConfig, TaskSpec
from mmoe.data.errors import MIN_ROWS, DataError, _close, _is_numeric
from mmoe.data.preprocess import Preprocessor, _numeric_feature, label_codes
from mmoe.data.profiling import _profile
from mmoe.data.reading import _clean_frame, _read_csv


class ModelInputs:
    """What a model is built from, read off a table's fitted ``preprocessor`` (in memory or streamed)."""

    preprocessor: Preprocessor

    @property
    def tasks(self) -> tuple[TaskSpec, ...]:
        return self.preprocessor.tasks

    @property
    def task_dims(self) -> dict[str, int]:
        return self.preprocessor.task_dims

    @property
    def num_numeric(self) -> int:
        return self.preprocessor.num_numeric

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


@dataclass
class PreparedData(ModelInputs):
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

    def __len__(self) -> int:
        return int(self.x_num.shape[0])

    def summary(self) -> dict:
        """JSON-able overview: rows, splits, features used, ignored columns and why, per-task stats."""
        p = self.preprocessor
        train = self.splits["train"]
        tasks = {}
        for t in self.tasks:
            enc, m, y = p.targets[t.column], self.mask[t.column], self.y[t.column]
            d: dict[str, Any] = {"kind": enc.kind, "labelled": int(m.sum()), "missing": int((~m).sum()),
                                 "train_labelled": int(m[train].sum())}
            if enc.kind == "binary":
                d["classes"] = list(enc.classes)
                d["positive"] = enc.positive
                d["positive_rate"] = float(y[m].mean()) if m.any() else None
            elif enc.kind == "multiclass":
                d["classes"] = list(enc.classes)
                counts = torch.bincount(y[m], minlength=len(enc.classes)).tolist()
                d["class_counts"] = dict(zip(enc.classes, counts))
            else:
                d["mean"], d["std"] = enc.mean, enc.std
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


def _load(source: Any, filename: str | None, min_rows: int) -> tuple[pd.DataFrame, dict]:
    """(the clean frame, the label codes of its clean text columns by name)."""
    if isinstance(source, pd.DataFrame):
        df, coded = _clean_frame(source)
        df = df.reset_index(drop=True)
        if len(df) < min_rows:
            raise DataError(f"the table has {len(df)} row(s); need at least {min_rows} rows", field="split")
        return df, coded
    return _read_csv(source, filename=filename, min_rows=min_rows)


def select_features(df: pd.DataFrame, config: DataConfig, coded: dict | None = None,
                    ) -> tuple[list[str], list[str], dict[str, str]]:
    """(numeric, categorical, ignored {column: why}) feature columns of ``df`` under ``config``: the
    explicit feature list or all non-target columns, less drops; identifier-like, constant and empty
    columns ignored unless the kind overrides say otherwise."""
    cols = list(df.columns)
    targets = [t.column for t in config.tasks]
    for c in config.drop:
        if c not in df.columns:
            raise DataError(f"column {c!r} to drop is not in the data.{_close(c, cols)}", field="features")
    for c in config.kind_overrides:
        if c not in df.columns:
            raise DataError(f"column {c!r} in the kind overrides is not in the data.{_close(c, cols)}", field="kinds")
    ignored: dict[str, str] = {}
    if config.features is not None:
        if not config.features:
            raise DataError("the feature list is empty; list at least one column, or leave it unset to use all",
                            field="features")
        for c in config.features:
            if c not in df.columns:
                raise DataError(f"feature column {c!r} is not in the data.{_close(c, cols)}", field="features")
            if c in targets:
                raise DataError(f"column {c!r} is both a target and a feature; remove it from the features",
                                field="features")
            if c in config.drop:
                raise DataError(f"column {c!r} is both a feature and dropped; remove it from one of the two lists",
                                field="features")
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
        prof = _profile(c, df[c], coded)
        kind = config.kind_overrides.get(c, prof.kind)
        if prof.kind == "empty":
            if explicit:
                raise DataError(f"feature column {c!r} has no values (every row is missing); "
                                "remove it from the features", field="features")
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
                        "or force a column's kind (e.g. numeric or categorical)", field="features")
    return numeric, categorical, ignored


def _split(n: int, config: DataConfig) -> dict[str, torch.Tensor]:
    perm = np.random.default_rng(config.seed).permutation(n)
    n_val = max(1, int(round(n * config.val_fraction)))
    n_test = max(1, int(round(n * config.test_fraction))) if config.test_fraction > 0 else 0
    if n - n_val - n_test < 1:
        raise DataError(f"only {n} rows: too few to keep training rows after the validation/test split; "
                        "add rows or lower the validation fraction", field="split")
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
    df, coded = _load(source, filename, MIN_ROWS)
    for t in config.tasks:
        if t.column not in df.columns:
            raise DataError(f"target column {t.column!r} is not in the data.{_close(t.column, df.columns)}",
                            field=f"target:{t.column}")
    # label codes of each text column, made once (by the reader's check, else by the profiling)
    numeric, categorical, ignored = select_features(df, config, coded)
    splits = _split(len(df), config)
    coded = {c: coded[c] if c in coded else label_codes(df[c]) for c in categorical}   # for the fit and transform
    pre = Preprocessor.fit(df, tasks=config.tasks, numeric_columns=numeric, categorical_columns=categorical,
                           train_rows=splits["train"].numpy(), embedding_dims=config.embedding_dims,
                           max_classes=config.max_classes, ignored=ignored, coded=coded)
    x_num, x_cat = pre.transform_features(df, coded=coded)
    y, mask = pre.transform_targets(df)
    tr = splits["train"].numpy()
    for t in config.tasks:
        m = mask[t.column].numpy()[tr]
        if not m.any():
            raise DataError(f"target {t.column!r} has no labelled rows in the training split "
                            f"({int(mask[t.column].sum())} labelled rows in all); add labelled rows "
                            "or change the split seed", field=f"target:{t.column}")
        if t.kind == "binary":
            pos = int(y[t.column].numpy()[tr][m].sum())
            classes = pre.class_labels(t.column)
            if pos == 0 or pos == int(m.sum()):
                lacking = classes[1] if pos == 0 else classes[0]
                raise DataError(f"target {t.column!r}: the training split has no rows of class {lacking!r}; "
                                "a binary task needs both classes in training — add rows of that class, "
                                "or change the split seed", field=f"target:{t.column}")
    source_info = {k: df.attrs[k] for k in ("filename", "encoding", "delimiter", "dataset_id", "dataset_key")
                   if k in df.attrs}
    return PreparedData(x_num=x_num, x_cat=x_cat, y=y, mask=mask, splits=splits, preprocessor=pre,
                        frame=df, config=config, source=source_info)


def prepare_for_prediction(df: Any, preprocessor: Preprocessor, *, filename: str | None = None,
                           ) -> tuple[torch.Tensor, torch.Tensor, dict | None, dict | None]:
    """Encode new data with a fitted preprocessor -> (x_num, x_cat, y, mask).

    ``df`` may be a DataFrame or anything read_csv takes (one row is enough). y / mask cover
    the target columns present in the data (unknown classes masked); None when none are.
    """
    frame = _load(df, filename, 1)[0]
    x_num, x_cat = preprocessor.transform_features(frame)
    present = [t.column for t in preprocessor.tasks if t.column in frame.columns]
    if not present:
        return x_num, x_cat, None, None
    y, mask = preprocessor.transform_targets(frame, present)
    return x_num, x_cat, y, mask
