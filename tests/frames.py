"""Tiny synthetic frames the tests train on (importable as ``from frames import make_tiny_frame``)."""
import numpy as np
import pandas as pd


def make_tiny_frame(n: int = 200, seed: int = 0) -> pd.DataFrame:
    """``n`` rows: two numeric, one categorical feature; binary, regression, multiclass targets."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n)
    b = rng.normal(size=n)
    color = rng.choice(["red", "green", "blue"], size=n)
    click = np.where(a + 0.5 * (color == "red") + 0.3 * rng.normal(size=n) > 0, "yes", "no")
    score = 2.0 * b - a + 0.1 * rng.normal(size=n)
    kind = np.select([a > 0.5, a < -0.5], ["hi", "lo"], "mid")
    return pd.DataFrame({"a": a, "b": b, "color": color, "click": click, "score": score, "kind": kind})


def small_frame(n: int = 40, **extra) -> pd.DataFrame:
    """``n`` rows: numeric a, categorical color, a balanced click yes/no, a numeric score (+ ``extra`` columns)."""
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"a": rng.normal(size=n), "color": rng.choice(["red", "blue"], size=n),
                       "click": ["no", "yes"] * (n // 2), "score": rng.normal(size=n)})
    for k, v in extra.items():
        df[k] = v
    return df
