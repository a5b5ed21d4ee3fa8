"""Target encoding: how one target column becomes y and a mask (classes, the positive label,
regression scaling), decided on the training rows; refusals for targets that cannot work."""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from mmoe.config import TaskSpec
from mmoe.data.errors import (
    DataError,
    _as_float,
    _is_bool_object,
    _is_numeric,
    _label,
    _labels,
    _q,
    _row_word,
)
from mmoe.data.profiling import _natural_positive, _sorted_labels


@dataclass(frozen=True)
class TargetEncoding:
    """How one target column is encoded: its kind, classes (index = class id; binary: [negative,
    positive]), the positive and negative label (binary; negative None = "everything else"), and for
    regression the train mean and std it is standardised with. Saved with the run as a dict."""

    kind: str
    classes: tuple[str, ...] = ()
    positive: str | None = None
    negative: str | None = None
    mean: float = 0.0
    std: float = 1.0
    threshold: str | None = None     # binary from a number: positive where ``value OP number`` holds

    def to_dict(self) -> dict:
        return {"kind": self.kind, "classes": list(self.classes), "positive": self.positive,
                "negative": self.negative, "mean": self.mean, "std": self.std, "threshold": self.threshold}

    @classmethod
    def from_dict(cls, d: dict) -> "TargetEncoding":
        return cls(kind=d["kind"], classes=tuple(d.get("classes", ())), positive=d.get("positive"),
                   negative=d.get("negative"), mean=float(d.get("mean", 0.0)), std=float(d.get("std", 1.0)),
                   threshold=d.get("threshold"))

    def scaled(self, values: np.ndarray) -> "TargetEncoding":
        """Regression: with the mean and std of ``values`` (the training rows; std 0 -> 1)."""
        if self.kind != "regression":
            return self
        ok = ~np.isnan(values)
        mu = float(values[ok].mean()) if ok.any() else 0.0
        sd = float(values[ok].std()) if ok.sum() > 1 else 1.0
        return replace(self, mean=mu, std=sd if sd > 1e-12 and math.isfinite(sd) else 1.0)


def target_encoding(s: pd.Series, task: TaskSpec, max_classes: int) -> TargetEncoding:
    """Decide how a target column is encoded (classes, positive label); refuse what cannot work."""
    col = task.column
    nn = s.dropna()
    if nn.empty:
        raise DataError(f"target column {col!r} has no values (every row is missing); choose another target",
                        field=f"target:{col}")
    if task.kind == "regression":
        if not _is_numeric(s) or _is_bool_object(s) or s.dtype == bool:
            conv = pd.to_numeric(s, errors="coerce")
            bad = np.flatnonzero((conv.isna() & s.notna()).to_numpy())
            if bad.size:
                raise DataError(f"target column {col!r} must be numeric for regression, but {_row_word(int(bad[0]))} "
                                f"has {str(s.iloc[int(bad[0])])!r}; fix or blank such values, or use binary/multiclass",
                                    field=f"target:{col}")
        a = _as_float(s)
        inf = np.flatnonzero(np.isinf(pd.to_numeric(s, errors="coerce").to_numpy(dtype=float, na_value=np.nan)))
        if inf.size:
            raise DataError(f"target column {col!r} has an infinite value in {_row_word(int(inf[0]))}; "
                            "fix or blank it", field=f"target:{col}")
        if len(np.unique(a[~np.isnan(a)])) < 2:
            raise DataError(f"target column {col!r} has only one value ({_label(nn.iloc[0])}); "
                            "a target needs at least two different values", field=f"target:{col}")
        return TargetEncoding("regression")
    if task.threshold is not None:
        return _threshold_encoding(s, task)
    labels = _sorted_labels(s)
    if len(labels) < 2:
        raise DataError(f"target column {col!r} has only one value ({labels[0]!r}); "
                        "a target needs at least two different values — choose another column", field=f"target:{col}")
    if task.kind == "multiclass":
        if len(labels) > max_classes:
            hint = "use regression for a number" if _is_numeric(s) else "choose a coarser column"
            raise DataError(f"target column {col!r} has {len(labels)} classes, more than the limit of {max_classes}; "
                            f"{hint}, or raise max_classes", field=f"target:{col}")
        return TargetEncoding("multiclass", tuple(labels))
    if task.positive is None:
        if len(labels) != 2:
            raise DataError(f"column {col!r} has {len(labels)} values ({', '.join(labels[:5])}"
                            f"{', ...' if len(labels) > 5 else ''}); a binary target needs two — use "
                            f"binary=VALUE to pick the positive class, or multiclass", field=f"target:{col}")
        pos = _natural_positive(labels) or labels[1]
        neg = labels[0] if pos == labels[1] else labels[1]
        return TargetEncoding("binary", (neg, pos), pos, neg)
    pos = _match_positive(s, labels, task.positive)
    if pos is None:
        top = _labels(s).value_counts().index[:8].tolist()
        raise DataError(f"target column {col!r} has no value {task.positive!r}; its most frequent values are "
                        f"{_q(top, 8)} — use one of them as binary=VALUE", field=f"target:{col}")
    rest = [l for l in labels if l != pos]
    neg = rest[0] if len(rest) == 1 else None
    return TargetEncoding("binary", (neg if neg is not None else f"not {pos}", pos), pos, neg)


def _numbers(s: pd.Series, col: str) -> np.ndarray:
    """A target column read as numbers (NaN for missing); text that is not a number is refused."""
    conv = pd.to_numeric(s, errors="coerce") if not _is_bool_object(s) else pd.Series(_as_float(s))
    bad = np.flatnonzero((conv.isna() & s.notna()).to_numpy())
    if bad.size:
        raise DataError(f"target column {col!r} must be numeric for a threshold, but {_row_word(int(bad[0]))} has "
                        f"{str(s.iloc[int(bad[0])])!r}; fix or blank such values, or use binary=VALUE",
                        field=f"target:{col}")
    return conv.to_numpy(dtype=float, na_value=np.nan)


def _threshold_encoding(s: pd.Series, task: TaskSpec) -> TargetEncoding:
    from mmoe.config import threshold_holds

    col, rule = task.column, task.threshold
    a = _numbers(s, col)
    ok = ~np.isnan(a)
    hits = threshold_holds(rule, a[ok])
    if hits.all() or not hits.any():
        side = "every" if hits.all() else "no"
        raise DataError(f"target column {col!r}: {side} labelled value is {rule} (values {np.nanmin(a):g} to "
                        f"{np.nanmax(a):g}); choose a threshold inside that range", field=f"target:{col}")
    pos, neg = f"{col} {rule}", f"not {col} {rule}"
    return TargetEncoding("binary", (neg, pos), pos, neg, threshold=rule)


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


def encode_target(s: pd.Series, enc: TargetEncoding, col: str) -> tuple[np.ndarray, np.ndarray]:
    """Column -> (y, mask) numpy arrays following ``enc`` (unknown classes are masked)."""
    if enc.kind == "regression":
        conv = pd.to_numeric(s, errors="coerce") if not _is_bool_object(s) else pd.Series(_as_float(s))
        bad = np.flatnonzero((conv.isna() & s.notna()).to_numpy())
        if bad.size:
            raise DataError(f"target column {col!r} must be numeric, but {_row_word(int(bad[0]))} has "
                            f"{str(s.iloc[int(bad[0])])!r}; fix or blank such values", field=f"target:{col}")
        a = _as_float(s)
        mask = ~np.isnan(a)
        y = np.where(mask, (np.nan_to_num(a) - enc.mean) / enc.std, 0.0).astype(np.float32)
        return y, mask
    if enc.threshold is not None:
        from mmoe.config import threshold_holds

        a = _numbers(s, col)
        mask = ~np.isnan(a)
        return (threshold_holds(enc.threshold, np.nan_to_num(a)) & mask).astype(np.float32), mask
    lab = _labels(s)
    if enc.kind == "multiclass":
        idx = pd.Index(list(enc.classes)).get_indexer(lab)
        mask = idx >= 0
        return np.where(mask, idx, 0).astype(np.int64), mask
    is_pos = lab.eq(enc.positive).to_numpy()
    present = lab.notna().to_numpy()
    if enc.negative is None:
        mask = present
    else:
        mask = present & (is_pos | lab.eq(enc.negative).to_numpy())
    return (is_pos & mask).astype(np.float32), mask
