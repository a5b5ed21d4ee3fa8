"""mmoe.data.preprocess: preprocessing fitted on the training rows only, saved as JSON, reused to score."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from mmoe.config import DataConfig, TaskSpec
from mmoe.data import PreparedData, Preprocessor, default_embedding_dim, prepare, prepare_for_prediction

TASKS3 = (TaskSpec("click"), TaskSpec("score", "regression"), TaskSpec("kind", "multiclass"))


def cfg(*tasks, **kw) -> DataConfig:
    return DataConfig(tasks=tasks or TASKS3, **kw)

def test_numeric_preprocessing_fits_on_train_only(tiny_frame):
    df = tiny_frame.copy()
    df.loc[[1, 2, 3], "a"] = np.nan
    d = prepare(df, cfg())
    p = d.preprocessor
    tr = d.splits["train"].numpy()
    a_train = df["a"].iloc[tr]
    j = p.numeric_columns.index("a")
    assert p.num_mean[j] == pytest.approx(a_train.mean()) and p.num_std[j] == pytest.approx(a_train.std(ddof=0))
    assert p.num_mean[j] != pytest.approx(df["a"].mean())
    assert p.feature_names == ["a", "b", "a__missing", "color"]
    assert d.x_num.dtype == torch.float32 and d.x_num.shape == (200, 3) and d.num_numeric == 3
    assert d.x_num[[1, 2, 3], 0].tolist() == [0.0, 0.0, 0.0]          # imputed with the train mean
    assert d.x_num[:, 2].sum() == 3 and d.x_num[[1, 2, 3], 2].tolist() == [1.0, 1.0, 1.0]
    xa = d.x_num[tr, 0].double().numpy()
    ok = ~np.isnan(df["a"].iloc[tr].to_numpy())
    assert xa[ok].mean() == pytest.approx(0, abs=1e-6) and xa[ok].std() == pytest.approx(1, abs=1e-5)


def test_constant_numeric_and_extreme_values_are_safe():
    n = 50
    df = pd.DataFrame({"c": [5.0] * n, "x": np.r_[np.zeros(n - 1), 1e9], "t": ["a", "b"] * (n // 2)})
    d = prepare(df, cfg(TaskSpec("t"), features=("c", "x")))
    assert torch.isfinite(d.x_num).all()
    assert d.x_num[:, 0].abs().max() == 0  # std 0 -> 1, value - mean = 0
    assert d.x_num.abs().max() <= 10.0


def test_categorical_vocab_from_train_unknown_is_zero(tiny_frame):
    df = tiny_frame.copy()
    probe = prepare(df, cfg())
    val_row = int(probe.splits["val"][0])
    df.loc[val_row, "color"] = "purple"  # only outside train
    df.loc[int(probe.splits["train"][0]), "color"] = np.nan
    d = prepare(df, cfg())
    p = d.preprocessor
    assert set(p.vocab["color"]) == {"red", "green", "blue"}
    assert p.cardinalities == [4] and d.cardinalities == [4]
    assert d.embedding_dims == [default_embedding_dim(4)] == [min(16, round(1.6 * 4 ** 0.56))]
    assert d.x_cat.dtype == torch.int64 and d.x_cat.shape == (200, 1)
    assert d.x_cat[val_row, 0] == 0 and d.x_cat[int(probe.splits["train"][0]), 0] == 0
    assert set(d.x_cat[:, 0].tolist()) == {0, 1, 2, 3}
    new = df.head(3).copy()
    new["color"] = ["red", "never-seen", None]
    _, x_cat = p.transform_features(new)
    assert x_cat[:, 0].tolist()[1:] == [0, 0] and x_cat[0, 0] == p.vocab["color"].index("red") + 1


def test_embedding_dim_override_and_kind_override(tiny_frame):
    df = tiny_frame.copy()
    df["zip"] = (np.arange(len(df)) % 4) * 1000 + 10000
    d = prepare(df, cfg(kind_overrides={"zip": "categorical", "b": "identifier"}, embedding_dims={"zip": 7}))
    assert d.preprocessor.categorical_columns == ["color", "zip"]
    assert d.embedding_dims == [default_embedding_dim(4), 7]
    assert "b" not in d.feature_columns and "marked identifier" in d.summary()["ignored"]["b"]


def test_identifier_and_constant_columns_are_ignored_with_reason(tiny_frame):
    df = tiny_frame.copy()
    df.insert(0, "id", np.arange(len(df)) + 1)
    df["const"] = "same"
    df["empty"] = np.nan
    d = prepare(df, cfg(drop=("b",)))
    ign = d.summary()["ignored"]
    assert ign["id"].startswith("identifier-like") and ign["const"].startswith("constant")
    assert ign["empty"].startswith("empty") and ign["b"] == "dropped" and ign["click"] == "target"
    assert d.feature_columns == ["a", "color"]
    d2 = prepare(df, cfg(features=("a", "id")))  # listed explicitly: the user says so
    assert d2.feature_columns == ["a", "id"]


def test_summary_is_json_and_complete(tiny_frame):
    d = prepare(tiny_frame, cfg(test_fraction=0.1))
    s = json.loads(json.dumps(d.summary()))
    assert s["rows"] == 200 and s["splits"] == {"train": 140, "val": 40, "test": 20}
    assert s["features"]["numeric"] == ["a", "b"] and s["features"]["categorical"] == ["color"]
    assert s["tasks"]["click"]["positive"] == "yes" and 0 < s["tasks"]["click"]["positive_rate"] < 1
    assert s["tasks"]["kind"]["classes"] == ["hi", "lo", "mid"]
    assert {"mean", "std"} <= set(s["tasks"]["score"])
    assert isinstance(d, PreparedData) and [t.column for t in d.tasks] == ["click", "score", "kind"]


def test_json_round_trip_gives_identical_tensors(tiny_frame):
    df = tiny_frame.copy()
    df.loc[[4, 9], "a"] = np.nan
    d = prepare(df, cfg())
    s = d.preprocessor.to_json()
    p2 = Preprocessor.from_json(s)
    assert p2.to_json() == s
    rng = np.random.default_rng(7)
    new = df.sample(50, random_state=1).reset_index(drop=True)
    new["a"] = rng.normal(size=50) * 3
    new.loc[0, "color"] = "teal"
    for x, y in zip(d.preprocessor.transform_features(new), p2.transform_features(new)):
        assert torch.equal(x, y)
    y1, m1 = d.preprocessor.transform_targets(new)
    y2, m2 = p2.transform_targets(new)
    assert all(torch.equal(y1[k], y2[k]) and torch.equal(m1[k], m2[k]) for k in y1)
    for attr in ("feature_names", "cardinalities", "embedding_dims", "task_dims"):
        assert getattr(p2, attr) == getattr(d.preprocessor, attr)
    assert [p2.class_labels(t) for t in ("click", "kind")] == [["no", "yes"], ["hi", "lo", "mid"]]
    assert p2.target_scale("score") == d.preprocessor.target_scale("score")


def test_prepare_for_prediction(tiny_frame):
    d = prepare(tiny_frame, cfg())
    p = Preprocessor.from_json(d.preprocessor.to_json())
    feats = tiny_frame[["b", "color", "a"]].head(1)  # one row, other column order
    x_num, x_cat, y, mask = prepare_for_prediction(feats, p)
    assert x_num.shape == (1, 2) and x_cat.shape == (1, 1) and y is None and mask is None
    new = tiny_frame.head(4).copy()
    new.loc[0, "kind"] = "ultra"  # unseen class -> masked
    new.loc[1, "click"] = "maybe"
    x_num, x_cat, y, mask = prepare_for_prediction(new, p)
    assert torch.equal(x_num, d.x_num[:4]) and torch.equal(x_cat, d.x_cat[:4])
    assert mask["kind"].tolist() == [False, True, True, True] and mask["click"].tolist() == [True, False, True, True]
    _, _, y, _ = prepare_for_prediction(tiny_frame.drop(columns=["score", "kind"]).head(3).to_csv(index=False)
                                        .encode(), p)
    assert set(y) == {"click"}


def test_label_codes_equal_factorizing_the_cleaned_labels():
    """label_codes cleans a text column on its distinct values only; it must give what factorizing the
    cleaned column gives: stray spaces merged, missing markers missing, first-appearance order kept."""
    import numpy as np
    import pandas as pd

    from mmoe.data.errors import _labels, label_codes

    raw = pd.Series([" b", "a", "NA", None, "b ", "a", "?", "c", " a "], dtype="str")
    clean = pd.Series(["x", "y", None, "x", "z"], dtype="str")
    for s in (raw, clean, pd.Series([1.0, 2.0, np.nan, 1.0]), pd.Series([True, False, True])):
        codes, uniq = label_codes(s)
        want_codes, want_uniq = pd.factorize(_labels(s))
        assert np.array_equal(codes, want_codes)
        assert list(uniq) == list(want_uniq)
    assert list(label_codes(raw)[1]) == ["b", "a", "c"]
