"""mmoe.data.profiling: column kinds and the suggested kind of a target."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mmoe.config import DataConfig, TaskSpec
from mmoe.data import profile_columns, suggest_task_kind

TASKS3 = (TaskSpec("click"), TaskSpec("score", "regression"), TaskSpec("kind", "multiclass"))


def cfg(*tasks, **kw) -> DataConfig:
    return DataConfig(tasks=tasks or TASKS3, **kw)

def test_profile_columns_kinds():
    n = 100
    rng = np.random.default_rng(1)
    df = pd.DataFrame({
        "user_id": rng.permutation(n) + 1000,
        "paid": rng.permutation(n) * 3 + 7,        # all-distinct ints, not an id despite ending in 'id'
        "customerID": [f"c{i}" for i in range(n)],
        "row": np.arange(n),                       # consecutive, all distinct
        "x": rng.normal(size=n),
        "stars": rng.integers(1, 6, size=n),       # few ints: stays numeric
        "color": rng.choice(["red", "blue"], size=n),
        "code": [f"u{i:04d}" for i in range(n)],   # distinct strings
        "same": ["k"] * n,
        "blank": [np.nan] * n,
        "flag": rng.choice([True, False], size=n),
    })
    df.loc[3, "x"] = np.nan
    kinds = {p.name: p.kind for p in profile_columns(df)}
    assert kinds == {"user_id": "identifier", "paid": "numeric", "customerID": "identifier", "row": "identifier", "x": "numeric", "stars": "numeric",
                     "color": "categorical", "code": "identifier", "same": "constant", "blank": "empty",
                     "flag": "numeric"}
    x = next(p for p in profile_columns(df) if p.name == "x")
    assert x.missing_share == pytest.approx(0.01) and x.n_distinct == 99 and len(x.examples) == 5
    assert all(isinstance(e, str) for p in profile_columns(df) for e in p.examples)


@pytest.mark.parametrize("values,expected", [
    (["no", "yes", "yes", None], ("binary", "yes")),
    ([0, 1, 1, 0], ("binary", "1")),
    (["b", "a", "b"], ("binary", "b")),
    ([1.5, 2.25, 3.0, 4.1, 5.0, 6.2, 7.0, 8.3, 9.1, 10.4, 11.0, 12.5], ("regression", None)),
    (list(range(30)), ("regression", None)),
    (["x", "y", "z", "x"], ("multiclass", None)),
    ([1, 2, 3, 1, 2], ("multiclass", None)),
])
def test_suggest_task_kind(values, expected):
    assert suggest_task_kind(pd.Series(values)) == expected
