"""StoreError (and its ArtifactError, IndexFault) and how run records are encoded for SQLite: JSON
(numpy/torch scalars, tuples, paths, sets), and metric values (NaN stored as NULL)."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np


class StoreError(KeyError):
    """A store operation is impossible; the message says which run and why.

    Subclasses KeyError so ``except KeyError`` around look-ups works, but prints
    its message without KeyError's quotes.
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class ArtifactError(StoreError):
    """A run's artifact file exists but cannot be read (damaged, truncated, from another version):
    only the view or command that needs that file fails; the message names the file."""


class IndexFault(StoreError):
    """The run index (runs.sqlite) itself failed: ``kind`` is corrupt | readonly | cantopen | busy |
    full | io | missing | other (see ``mmoe.runs.connection``)."""

    def __init__(self, message: str, kind: str = "other"):
        super().__init__(message)
        self.kind = kind


def one_line(exc: BaseException, limit: int = 200) -> str:
    """An exception as one short line (its first line, cut at ``limit`` characters)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    text = lines[0] if lines else type(exc).__name__
    return text if len(text) <= limit else text[:limit - 1] + "…"


def plain_json(o: Any) -> Any:
    """json.dumps fallback: numpy / torch scalars, tuples, paths, sets."""
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if hasattr(o, "tolist"):  # torch tensors
        return o.tolist()
    if isinstance(o, (set, frozenset)):
        return sorted(o)
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"cannot store {type(o).__name__} in a run record")


def dumps(d: Any) -> str | None:
    return None if d is None else json.dumps(d, default=plain_json)


def loads(s: str | None, empty: Any = None) -> Any:
    return empty if s is None else json.loads(s)


def metric_value(v: Any, what: str = "value") -> float | None:
    """A metric value as float for SQLite; NaN and None -> None (read back as NaN)."""
    if v is None:
        return None
    try:
        f = float(v.item() if hasattr(v, "item") else v)
    except (TypeError, ValueError):
        raise StoreError(f"{what}: {v!r} is not a number") from None
    return None if math.isnan(f) else f


def final_value(v: Any) -> Any:
    """A final-metric value: a float when it is a number, else kept as given (JSON)."""
    try:
        return float(v.item() if hasattr(v, "item") else v)
    except (TypeError, ValueError):
        return v
