"""Synthetic multi-task datasets: the MMoE paper's generator and two realistic tables.

``paper_synthetic`` is the generator of Ma et al., "Modeling Task Relationships
in Multi-task Learning with Multi-gate Mixture-of-Experts" (KDD 2018), section
3.2. Two regression tasks share one input ``x`` and differ only in the
direction they read it from, so their relatedness is one number, ``p``:

    u1, u2       two orthogonal unit vectors in R^d
    w1 = c*u1,   w2 = c*(p*u1 + sqrt(1 - p^2)*u2)        cos(w1, w2) = p
    x ~ N(0, I_d),   alpha_i, beta_i ~ N(0, 1)   i = 1..m (shared by both tasks)
    y1 = w1.x + sum_i sin(alpha_i * w1.x + beta_i) + noise*eps1
    y2 = w2.x + sum_i sin(alpha_i * w2.x + beta_i) + noise*eps2

The random parameters (u1, u2, alpha, beta) and the data (x, eps) come from
two independent streams of one seed, so for a fixed seed changing ``p`` or the
row count changes nothing else: a sweep over ``p`` is a controlled experiment.
``paper_parameters`` returns exactly the weights ``paper_synthetic`` uses.

``click_like`` is a recommender-style impression log with two related binary
tasks (``click``, ``like``) and the mess of real tables: mixed column kinds, an
identifier, a constant column and a few missing values. ``wine_like`` is a
lab-measurement table with a regression target (``quality``) and a 3-class
target (``type``) that share features.

numpy + pandas only; every function is deterministic given ``seed``.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import pandas as pd

__all__ = ["PaperParameters", "paper_parameters", "paper_synthetic", "click_like", "wine_like"]


# ----------------------------------------------------------------------------- validation

def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _check_float(name: str, value, lo: float | None = None, hi: float | None = None,
                 lo_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if lo is not None and (value <= lo if lo_open else value < lo):
        raise ValueError(f"{name} must be {'>' if lo_open else '>='} {lo}, got {value}")
    if hi is not None and value > hi:
        raise ValueError(f"{name} must be <= {hi}, got {value}")
    return value


def _check_seed(seed) -> int:
    return _check_int("seed", seed, 0)


# ----------------------------------------------------------------------------- paper generator

class PaperParameters(NamedTuple):
    """The hidden parameters of one ``paper_synthetic`` task pair."""
    w1: np.ndarray     # [d] weight of task 1, norm = scale
    w2: np.ndarray     # [d] weight of task 2, norm = scale, cos(w1, w2) = correlation
    alpha: np.ndarray  # [m] sine frequencies, shared by both tasks
    beta: np.ndarray   # [m] sine phases, shared by both tasks


def _streams(seed: int) -> tuple[np.random.Generator, np.random.Generator]:
    """Independent generators for the hidden parameters and for the rows."""
    param_ss, data_ss = np.random.SeedSequence(seed).spawn(2)
    return np.random.default_rng(param_ss), np.random.default_rng(data_ss)


def paper_parameters(correlation: float = 0.5, n_features: int = 100, m_sin: int = 10,
                     scale: float = 3.0, seed: int = 0) -> PaperParameters:
    """The weights and sine parameters ``paper_synthetic`` uses for these arguments."""
    p = _check_float("correlation", correlation, -1.0, 1.0)
    d = _check_int("n_features", n_features, 2)
    m = _check_int("m_sin", m_sin, 0)
    c = _check_float("scale", scale, 0.0, lo_open=True)
    rng, _ = _streams(_check_seed(seed))
    q, _ = np.linalg.qr(rng.standard_normal((d, 2)))   # [d, 2] orthonormal columns
    u1, u2 = q[:, 0], q[:, 1]
    w1 = c * u1
    w2 = c * (p * u1 + math.sqrt(max(0.0, 1.0 - p * p)) * u2)
    alpha = rng.standard_normal(m)
    beta = rng.standard_normal(m)
    return PaperParameters(w1, w2, alpha, beta)


def paper_synthetic(n_rows: int = 10_000, correlation: float = 0.5, n_features: int = 100,
                    m_sin: int = 10, noise: float = 0.01, scale: float = 3.0, seed: int = 0,
                    decimals: int | None = 4) -> pd.DataFrame:
    """Two regression tasks whose relatedness is ``correlation`` (Ma et al. 2018, sec. 3.2).

    Returns columns ``x0..x{d-1}``, ``y1``, ``y2`` (all float). With ``decimals``
    the features are rounded *before* the labels are computed, so the stored
    table is exactly consistent with the generator; labels are rounded too.
    ``decimals=None`` keeps full precision. Use ``paper_parameters`` with the
    same arguments to get the hidden weights.
    """
    n = _check_int("n_rows", n_rows, 1)
    noise = _check_float("noise", noise, 0.0)
    if decimals is not None:
        decimals = _check_int("decimals", decimals, 0)
    params = paper_parameters(correlation, n_features, m_sin, scale, seed)
    _, rng = _streams(seed)
    d = params.w1.shape[0]

    x = rng.standard_normal((n, d))                    # [n, d]
    eps = rng.standard_normal((n, 2))                  # [n, 2]
    if decimals is not None:
        x = np.round(x, decimals)

    def label(w: np.ndarray, e: np.ndarray) -> np.ndarray:
        z = x @ w                                      # [n]
        waves = np.sin(np.outer(z, params.alpha) + params.beta).sum(axis=1)  # [n, m] -> [n]
        return z + waves + noise * e

    y1, y2 = label(params.w1, eps[:, 0]), label(params.w2, eps[:, 1])
    if decimals is not None:
        y1, y2 = np.round(y1, decimals), np.round(y2, decimals)
    frame = pd.DataFrame(x, columns=[f"x{j}" for j in range(d)])
    frame["y1"] = y1
    frame["y2"] = y2
    return frame


# ----------------------------------------------------------------------------- helpers

def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _intercept_for_rate(logit: np.ndarray, rate: float) -> float:
    """The shift b with mean(sigmoid(logit + b)) == rate (bisection; deterministic)."""
    lo, hi = -30.0, 30.0
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        if _sigmoid(logit + mid).mean() < rate:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def _punch_holes(frame: pd.DataFrame, rng: np.random.Generator, rates: dict[str, float]) -> None:
    """Set a random fraction of each named column to missing, in place."""
    for col, rate in rates.items():
        mask = rng.random(len(frame)) < rate
        if frame[col].dtype.kind in "iu":
            frame[col] = frame[col].astype("float64")
        frame.loc[mask, col] = np.nan


# ----------------------------------------------------------------------------- click / like

_COUNTRIES = np.array(["US", "DE", "GB", "FR", "BR", "IN", "JP"])
_COUNTRY_P = np.array([0.34, 0.14, 0.12, 0.10, 0.11, 0.12, 0.07])
_COUNTRY_CLICK = np.array([0.0, -0.15, 0.05, -0.10, 0.25, 0.20, -0.30])
_COUNTRY_LIKE = np.array([0.0, -0.40, 0.10, -0.20, 0.50, 0.30, -0.60])
_CATEGORIES = np.array(["electronics", "fashion", "home", "sports", "books", "beauty", "toys"])
_CATEGORY_P = np.array([0.20, 0.20, 0.15, 0.12, 0.12, 0.11, 0.10])
_CATEGORY_PRICE = np.array([5.0, 3.6, 3.9, 3.7, 2.7, 3.0, 3.2])   # mean log price
_CATEGORY_LIKE = np.array([-0.20, 0.30, 0.00, 0.10, 0.50, 0.40, 0.20])
_DEVICES = np.array(["mobile", "desktop", "tablet"])
_DEVICE_P = np.array([0.62, 0.30, 0.08])


def click_like(n_rows: int = 20_000, seed: int = 0) -> pd.DataFrame:
    """A recommender impression log with two related binary tasks.

    Columns (kind in brackets):
      impression_id [identifier], user_age [numeric, some NaN],
      user_country [categorical, some NaN], device [categorical],
      item_category [categorical], item_price [numeric, some NaN],
      item_rating [numeric], hour_of_day [numeric 0-23], position [numeric 1-10],
      past_ctr [numeric, NaN for new users], is_weekend [0/1],
      site [constant "shop"],
      click [binary 0/1, ~15% positive], like [binary "yes"/"no", ~4% "yes"].

    ``click`` is driven by position, the user's past CTR, device, hour, price
    and an age x category affinity. ``like`` happens almost only after a click
    but has its own drivers (item rating, country, category, price, age), so
    the tasks are related, not identical. Both are noisy: a good model reaches
    a ROC AUC of roughly 0.75-0.85, not 1.
    """
    n = _check_int("n_rows", n_rows, 1)
    rng = np.random.default_rng(_check_seed(seed))

    age = np.clip(np.round(rng.gamma(6.0, 6.0, n) + 14), 16, 80)
    country = rng.choice(len(_COUNTRIES), n, p=_COUNTRY_P)
    device = rng.choice(len(_DEVICES), n, p=_DEVICE_P)
    category = rng.choice(len(_CATEGORIES), n, p=_CATEGORY_P)
    price = np.round(np.exp(_CATEGORY_PRICE[category] + 0.6 * rng.standard_normal(n)), 2)
    rating = np.round(np.clip(4.0 + 0.6 * rng.standard_normal(n), 1.0, 5.0), 1)
    hour = (np.round(rng.normal(15, 5, n)) % 24).astype(int)
    position = rng.integers(1, 11, n)
    past_ctr = np.round(rng.beta(2.0, 12.0, n), 4)
    new_user = rng.random(n) < 0.08
    weekend = (rng.random(n) < 2 / 7).astype(int)

    young = age < 30
    old = age >= 50
    cat = _CATEGORIES[category]
    affinity = (0.8 * (young & np.isin(cat, ["fashion", "beauty", "electronics"]))
                + 0.8 * (old & np.isin(cat, ["home", "books"]))
                - 0.5 * (old & np.isin(cat, ["toys", "fashion"])))
    ctr_term = np.where(new_user, 0.0, 9.0 * (past_ctr - 0.14))
    evening = ((hour >= 18) & (hour <= 23)).astype(float)
    click_logit = (-0.30 * (position - 1) + ctr_term + affinity + 0.35 * (_DEVICES[device] == "mobile")
                   + 0.30 * evening + 0.15 * weekend - 0.25 * (np.log(price) - 3.5)
                   + _COUNTRY_CLICK[country] + 0.4 * rng.standard_normal(n))
    click_logit += _intercept_for_rate(click_logit, 0.15)
    click = (rng.random(n) < _sigmoid(click_logit)).astype(int)

    like_logit = (2.0 * (rating - 4.0) + _COUNTRY_LIKE[country] + _CATEGORY_LIKE[category]
                  + 0.4 * old - 0.3 * (_DEVICES[device] == "mobile")
                  + 0.3 * (np.log(price) - 3.5) + 0.5 * rng.standard_normal(n))
    like_logit += _intercept_for_rate(like_logit, 0.25)
    p_like = np.where(click == 1, _sigmoid(like_logit), 0.005 * _sigmoid(like_logit) / 0.25)
    like = np.where(rng.random(n) < p_like, "yes", "no")

    frame = pd.DataFrame({
        "impression_id": [f"imp{seed:02d}-{i:07d}" for i in range(n)],
        "user_age": age,
        "user_country": _COUNTRIES[country].astype(object),
        "device": _DEVICES[device].astype(object),
        "item_category": cat.astype(object),
        "item_price": price,
        "item_rating": rating,
        "hour_of_day": hour,
        "position": position,
        "past_ctr": np.where(new_user, np.nan, past_ctr),
        "is_weekend": weekend,
        "site": "shop",
        "click": click,
        "like": like.astype(object),
    })
    _punch_holes(frame, rng, {"user_age": 0.03, "user_country": 0.02, "item_price": 0.01})
    return frame


# ----------------------------------------------------------------------------- wine quality / type

_TYPES = np.array(["white", "red", "rose"])
_TYPE_P = np.array([0.55, 0.30, 0.15])
# per type: mean, sd of each feature (loosely after the UCI wine-quality data)
_WINE_FEATURES = {
    #                        white         red           rose
    "fixed_acidity":        ((6.9, 0.8), (8.3, 1.6), (7.4, 1.1)),
    "volatile_acidity":     ((0.28, 0.10), (0.53, 0.18), (0.40, 0.13)),
    "citric_acid":          ((0.33, 0.12), (0.27, 0.19), (0.30, 0.14)),
    "residual_sugar":       ((6.4, 4.5), (2.5, 1.2), (4.0, 2.5)),
    "chlorides":            ((0.046, 0.02), (0.087, 0.04), (0.065, 0.03)),
    "free_sulfur_dioxide":  ((35.0, 15.0), (16.0, 10.0), (25.0, 12.0)),
    "total_sulfur_dioxide": ((138.0, 40.0), (46.0, 30.0), (90.0, 35.0)),
    "density":              ((0.9940, 0.0030), (0.9967, 0.0019), (0.9953, 0.0024)),
    "pH":                   ((3.19, 0.15), (3.31, 0.15), (3.25, 0.15)),
    "sulphates":            ((0.49, 0.11), (0.66, 0.16), (0.57, 0.14)),
    "alcohol":              ((10.5, 1.2), (10.4, 1.0), (11.0, 1.1)),
}
_WINE_DECIMALS = {"density": 5, "chlorides": 4, "free_sulfur_dioxide": 0, "total_sulfur_dioxide": 0}
_REGIONS = np.array(["north", "south", "coast", "valley"])


def wine_like(n_rows: int = 6_000, seed: int = 0) -> pd.DataFrame:
    """Lab measurements of wines with a regression and a 3-class target.

    Columns: lot_id [identifier], 11 physico-chemical measurements [numeric;
    a few NaN in sulphates and citric_acid], region [categorical],
    vintage [numeric year], lab [constant "central"],
    quality [regression, a 0-10 score with one decimal],
    type [multiclass: white ~55%, red ~30%, rose ~15%].

    ``type`` decides where the measurements sit (rose lies between red and
    white, so it is the hard class); ``quality`` rises with alcohol and
    sulphates, falls with volatile acidity, with type-specific sugar and
    vintage effects. The tasks share features but are not the same function.
    """
    n = _check_int("n_rows", n_rows, 1)
    rng = np.random.default_rng(_check_seed(seed))

    kind = rng.choice(len(_TYPES), n, p=_TYPE_P)
    cols: dict[str, np.ndarray] = {}
    for name, per_type in _WINE_FEATURES.items():
        mean = np.array([m for m, _ in per_type])[kind]
        sd = np.array([s for _, s in per_type])[kind]
        value = mean + sd * rng.standard_normal(n)
        if name not in ("pH", "density"):
            value = np.abs(value)
        cols[name] = value
    region = rng.choice(len(_REGIONS), n, p=[0.3, 0.3, 0.2, 0.2])
    vintage = rng.integers(2012, 2024, n)

    z = lambda name: (cols[name] - cols[name].mean()) / cols[name].std()  # noqa: E731
    sweet_bonus = np.where(_TYPES[kind] == "white", 0.25, -0.25) * z("residual_sugar")
    age_bonus = np.where(_TYPES[kind] == "red", 0.06, -0.04) * (2023 - vintage)
    quality = (5.8 + 0.75 * z("alcohol") - 0.45 * z("volatile_acidity") + 0.30 * z("sulphates")
               - 0.15 * z("chlorides") + sweet_bonus + age_bonus
               + 0.25 * (_REGIONS[region] == "valley") - 0.15 * (_REGIONS[region] == "coast")
               + 0.2 * (_TYPES[kind] == "red") + 0.55 * rng.standard_normal(n))
    quality = np.round(np.clip(quality, 0.0, 10.0), 1)

    frame = pd.DataFrame({"lot_id": [f"L{seed:02d}{i:06d}" for i in range(n)]})
    for name, value in cols.items():
        value = np.round(value, _WINE_DECIMALS.get(name, 2))
        frame[name] = value.astype(int) if _WINE_DECIMALS.get(name) == 0 else value
    frame["region"] = _REGIONS[region].astype(object)
    frame["vintage"] = vintage
    frame["lab"] = "central"
    frame["quality"] = quality
    frame["type"] = _TYPES[kind].astype(object)
    _punch_holes(frame, rng, {"sulphates": 0.02, "citric_acid": 0.01})
    return frame
