"""Shared by the page tests: a tiny frame with one task of each kind."""
from __future__ import annotations

import numpy as np
import pandas as pd

from mmoe.config import TaskSpec

TASKS = (TaskSpec("click", "binary", positive="yes"), TaskSpec("score", "regression"), TaskSpec("kind", "multiclass"))


def make_frame(n: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=n), rng.normal(size=n)
    color = rng.choice(["red", "green", "blue"], size=n)
    click = np.where(a + 0.5 * (color == "red") + 0.3 * rng.normal(size=n) > 0, "yes", "no")
    return pd.DataFrame({"a": a, "b": b, "color": color, "click": click, "score": 2.0 * b - a,
                         "kind": np.select([a > 0.5, a < -0.5], ["hi", "lo"], "mid")})
