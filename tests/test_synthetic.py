"""mmoe.synthetic: the paper generator's correlation control, determinism,
validation, the realistic tables, and the committed sample files in data/."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mmoe.synthetic import click_like, paper_parameters, paper_synthetic, wine_like

DATA = Path(__file__).resolve().parents[1] / "data"
CORRELATIONS = [1.0, 0.9, 0.7, 0.5, 0.3, 0.0]


# ----------------------------------------------------------------------------- paper generator

def test_label_correlation_falls_with_p():
    corr = [paper_synthetic(20_000, p, seed=0)[["y1", "y2"]].corr().iloc[0, 1] for p in CORRELATIONS]
    assert all(a > b for a, b in zip(corr, corr[1:])), corr
    assert corr[0] > 0.95
    assert abs(corr[-1]) < 0.1


@pytest.mark.parametrize("p", CORRELATIONS + [-0.5, -1.0])
def test_weight_cosine_equals_p_and_norm_equals_scale(p):
    w = paper_parameters(p, n_features=100, scale=3.0, seed=1)
    cos = w.w1 @ w.w2 / (np.linalg.norm(w.w1) * np.linalg.norm(w.w2))
    assert cos == pytest.approx(p, abs=1e-9)
    assert np.linalg.norm(w.w1) == pytest.approx(3.0)
    assert np.linalg.norm(w.w2) == pytest.approx(3.0)
    assert w.alpha.shape == w.beta.shape == (10,)


def test_labels_follow_the_published_formula():
    df = paper_synthetic(500, 0.3, n_features=8, m_sin=4, noise=0.0, seed=3, decimals=None)
    w = paper_parameters(0.3, n_features=8, m_sin=4, seed=3)
    x = df[[f"x{j}" for j in range(8)]].to_numpy()
    for col, wk in (("y1", w.w1), ("y2", w.w2)):
        z = x @ wk
        expected = z + np.sin(np.outer(z, w.alpha) + w.beta).sum(axis=1)
        np.testing.assert_allclose(df[col].to_numpy(), expected, rtol=0, atol=1e-12)


def test_paper_columns_and_rounding():
    df = paper_synthetic(50, 0.5, n_features=5, seed=0, decimals=3)
    assert list(df.columns) == ["x0", "x1", "x2", "x3", "x4", "y1", "y2"]
    assert len(df) == 50 and all(df.dtypes == "float64")
    np.testing.assert_array_equal(df.to_numpy(), np.round(df.to_numpy(), 3))


def test_paper_deterministic_and_seed_sensitive():
    a = paper_synthetic(300, 0.5, n_features=10, seed=7)
    pd.testing.assert_frame_equal(a, paper_synthetic(300, 0.5, n_features=10, seed=7))
    assert not a.equals(paper_synthetic(300, 0.5, n_features=10, seed=8))


def test_positional_cli_signature():
    df = paper_synthetic(100, 0.9, seed=2)          # what `python -m mmoe synth` calls
    assert df.shape == (100, 102)


def test_only_p_changes_with_p():
    """Same seed, different p: same inputs and same task-1 labels."""
    a, b = paper_synthetic(200, 0.2, seed=0), paper_synthetic(200, 0.8, seed=0)
    pd.testing.assert_frame_equal(a.drop(columns="y2"), b.drop(columns="y2"))


@pytest.mark.parametrize("kwargs, match", [
    (dict(correlation=1.5), "correlation"),
    (dict(correlation=-1.01), "correlation"),
    (dict(correlation=float("nan")), "correlation"),
    (dict(n_rows=0), "n_rows"),
    (dict(n_rows=2.5), "n_rows"),
    (dict(n_features=1), "n_features"),
    (dict(m_sin=-1), "m_sin"),
    (dict(noise=-0.1), "noise"),
    (dict(scale=0.0), "scale"),
    (dict(seed=-1), "seed"),
    (dict(seed="a"), "seed"),
    (dict(decimals=-1), "decimals"),
])
def test_paper_argument_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        paper_synthetic(**{"n_rows": 10, **kwargs})


def test_table_argument_validation():
    with pytest.raises(ValueError, match="n_rows"):
        click_like(0)
    with pytest.raises(ValueError, match="seed"):
        wine_like(10, seed=-3)


# ----------------------------------------------------------------------------- realistic tables

CLICK_COLUMNS = ["impression_id", "user_age", "user_country", "device", "item_category",
                 "item_price", "item_rating", "hour_of_day", "position", "past_ctr",
                 "is_weekend", "site", "click", "like"]


def test_click_like_columns_kinds_and_rates():
    df = click_like(20_000, seed=0)
    assert list(df.columns) == CLICK_COLUMNS and len(df) == 20_000
    assert df["impression_id"].is_unique
    assert df["site"].nunique(dropna=False) == 1
    for col in ["user_age", "item_price", "item_rating", "hour_of_day", "position", "past_ctr"]:
        assert pd.api.types.is_numeric_dtype(df[col]), col
    for col in ["user_country", "device", "item_category"]:
        assert not pd.api.types.is_numeric_dtype(df[col]) and 2 < df[col].nunique() < 20, col
    for col in ["user_age", "user_country", "item_price", "past_ctr"]:
        assert 0 < df[col].isna().mean() < 0.15, col
    assert set(df["click"].unique()) == {0, 1}
    assert set(df["like"].unique()) == {"yes", "no"}
    click_rate = df["click"].mean()
    like = df["like"] == "yes"
    assert 0.10 <= click_rate <= 0.20
    assert 0.01 <= like.mean() < click_rate
    assert like[df["click"] == 1].mean() > 10 * like[df["click"] == 0].mean()   # mostly after clicks
    assert like[df["click"] == 0].any()                                          # but not only
    assert df["hour_of_day"].between(0, 23).all() and df["position"].between(1, 10).all()


def test_click_like_signal_is_learnable_but_not_trivial():
    """A one-feature score already separates clicks a little, nothing separates them perfectly."""
    df = click_like(20_000, seed=0)
    y = df["click"].to_numpy()
    ranks = (-df["position"]).rank().to_numpy()             # Mann-Whitney AUC, ties averaged
    n_pos, n_neg = y.sum(), (1 - y).sum()
    auc = (ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    assert 0.6 < auc < 0.8


def test_wine_like_targets():
    df = wine_like(3_000, seed=0)
    assert pd.api.types.is_float_dtype(df["quality"]) and df["quality"].nunique() > 20
    assert df["quality"].between(0, 10).all()
    shares = df["type"].value_counts(normalize=True)
    assert set(shares.index) == {"white", "red", "rose"} and shares.min() > 0.08
    assert df["lot_id"].is_unique and df["lab"].nunique() == 1
    assert df[["sulphates", "citric_acid"]].isna().to_numpy().any()
    # the tasks share features: alcohol predicts quality, total SO2 predicts type
    assert df["alcohol"].corr(df["quality"]) > 0.3
    red = df["type"] == "red"
    assert df.loc[red, "total_sulfur_dioxide"].mean() < df.loc[~red, "total_sulfur_dioxide"].mean()


def test_tables_deterministic_and_seed_sensitive():
    for make in (click_like, wine_like):
        a = make(500, seed=4)
        pd.testing.assert_frame_equal(a, make(500, seed=4))
        assert not a.equals(make(500, seed=5))


# ----------------------------------------------------------------------------- committed samples

SAMPLES = ["synthetic_p0.5.csv", "click_like.csv", "wine_like.csv", "census_sample.csv.gz"]


@pytest.mark.parametrize("name", SAMPLES)
def test_sample_files_exist_and_are_small(name):
    path = DATA / name
    assert path.exists(), f"{path} missing: run python data/make_samples.py"
    assert path.stat().st_size < 2_000_000


def test_sample_files_match_generators():
    head = pd.read_csv(DATA / "click_like.csv", nrows=200)
    assert list(head.columns) == CLICK_COLUMNS
    syn = pd.read_csv(DATA / "synthetic_p0.5.csv", nrows=5)
    expected = paper_synthetic(2_500, 0.5, seed=0, decimals=3).head(5)
    np.testing.assert_allclose(syn.to_numpy(), expected.to_numpy(), atol=1e-9)


def test_census_sample_keeps_raw_format():
    with gzip.open(DATA / "census_sample.csv.gz", "rt", encoding="utf-8") as f:
        lines = f.read().splitlines()
    assert len(lines) == 15_001
    header = lines[0].split(",")
    assert len(header) == 42 and header[-1] == "income_50k" and "marital_stat" in header
    assert lines[1].split(",")[1].startswith(" ")     # leading spaces kept for the reader to strip
