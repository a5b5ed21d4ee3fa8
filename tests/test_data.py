"""mmoe.data: CSV dialects, column kinds, target encoding, train-only preprocessing, refusals."""
from __future__ import annotations

import bz2
import gzip
import io
import json
import zipfile

import numpy as np
import pandas as pd
import pytest
import torch

from mmoe.config import DataConfig, TaskSpec
from mmoe.data import (MISSING_MARKERS, DataError, Preprocessor, PreparedData, clean_frame, default_embedding_dim,
                       prepare, prepare_for_prediction, profile_columns, read_csv, suggest_task_kind)

TASKS3 = (TaskSpec("click"), TaskSpec("score", "regression"), TaskSpec("kind", "multiclass"))


def cfg(*tasks, **kw) -> DataConfig:
    return DataConfig(tasks=tasks or TASKS3, **kw)


# ----------------------------------------------------------------------------------------- reading

@pytest.mark.parametrize("sep", [",", ";", "\t", "|"])
def test_read_csv_sniffs_delimiter(sep):
    text = f'name{sep}x{sep}y\n"a{sep}b"{sep}1{sep}2.5\nc{sep}3{sep}4\n'
    df = read_csv(text.encode())
    assert list(df.columns) == ["name", "x", "y"]
    assert df["name"].tolist() == [f"a{sep}b", "c"]
    assert df["x"].dtype.kind == "i" and df["y"].dtype.kind == "f"
    assert df.attrs["delimiter"] == sep


@pytest.mark.parametrize("raw,encoding", [
    ("\ufeffcity,n\ncafé,1\nZürich,2\n".encode("utf-8"), "utf-8"),
    ("city,n\ncafé,1\nZürich,2\n".encode("utf-8"), "utf-8"),
    ("city,n\ncafé,1\nZürich,2\n".encode("cp1252"), "cp1252"),
    ("city,n\ncafé,1\nZürich,2\n".encode("utf-16"), "utf-16"),
])
def test_read_csv_encodings(raw, encoding):
    df = read_csv(raw)
    assert list(df.columns) == ["city", "n"]  # no BOM glued to the first name
    assert df["city"].tolist() == ["café", "Zürich"]
    assert df.attrs["encoding"] == encoding


def test_read_csv_compressed_by_magic_not_name(tmp_path):
    text = b"a,b\n1,x\n2,y\n"
    p = tmp_path / "plain_name.csv"  # gzip content, misleading name
    p.write_bytes(gzip.compress(text))
    assert read_csv(p)["a"].tolist() == [1, 2]
    q = tmp_path / "data.csv.gz"
    q.write_bytes(gzip.compress(text))
    assert read_csv(str(q))["b"].tolist() == ["x", "y"]
    assert read_csv(bz2.compress(text))["b"].tolist() == ["x", "y"]


def test_read_csv_sources_path_bytes_filelike(tmp_path):
    text = b"a,b\n1,x\n2,y\n"
    p = tmp_path / "d.csv"
    p.write_bytes(text)
    for src in (p, str(p), text, io.BytesIO(text), io.StringIO(text.decode()), text.decode()):
        assert read_csv(src).shape == (2, 2)


def test_read_csv_strips_spaces_and_reads_quotes():
    raw = b' a , b ,c\n 1 , " x, y " , "he said ""hi"""\n2,  z  ,"multi\nline"\n'
    df = read_csv(raw)
    assert list(df.columns) == ["a", "b", "c"]
    assert df["a"].tolist() == [1, 2] and df["a"].dtype.kind == "i"
    assert df["b"].tolist() == ["x, y", "z"]
    assert df["c"].tolist() == ['he said "hi"', "multi\nline"]


@pytest.mark.parametrize("marker", ["", "NA", "NaN", "?", "null", "N/A", "None", "NULL", "nan", " ? ", "na"])
def test_missing_markers_become_nan(marker):
    df = read_csv(f"x,y\n1,a\n{marker},b\n3,{marker}\n".encode())
    assert df["x"].isna().tolist() == [False, True, False]
    assert df["x"].dtype.kind == "f"
    assert df["y"].isna().tolist() == [False, False, True]


def test_read_csv_line_endings_blank_lines_and_pandas_index():
    assert read_csv(b"a,b\r\n1,2\r\n3,4\r\n")["b"].tolist() == [2, 4]
    assert read_csv(b"a,b\r1,2\r3,4\r")["b"].tolist() == [2, 4]  # classic Mac
    df = read_csv(b"a,b\n1,2\n\n   \n3,4\n,\n")
    assert df["a"].tolist() == [1, 3]  # blank and all-empty rows dropped
    df = read_csv(b",a,b\n0,1,x\n1,2,y\n2,3,z\n")  # DataFrame.to_csv() with its index
    assert list(df.columns) == ["a", "b"]


def test_read_csv_decimal_comma_with_semicolons():
    df = read_csv("a;b\n1,5;x\n2,25;y\n".encode())
    assert df["a"].tolist() == [1.5, 2.25]


def test_read_csv_reads_a_wide_file_exactly():
    """20,000 x 21: every float round-trips and stray spaces are stripped (speed is in bench/)."""
    rng = np.random.default_rng(0)
    df = pd.DataFrame(rng.normal(size=(20000, 20)), columns=[f"c{i}" for i in range(20)])
    df["s"] = rng.choice([" a", "b ", " c "], size=len(df))
    raw = df.to_csv(index=False).encode()
    back = read_csv(raw)
    assert back.shape == df.shape and set(back["s"]) == {"a", "b", "c"}
    np.testing.assert_allclose(back[[f"c{i}" for i in range(20)]].to_numpy(float),
                               df[[f"c{i}" for i in range(20)]].to_numpy(), rtol=1e-15)


def test_clean_frame_is_idempotent(tiny_frame):
    once = clean_frame(tiny_frame)
    pd.testing.assert_frame_equal(once, clean_frame(once))


# ----------------------------------------------------------------------------------------- kinds

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


# ----------------------------------------------------------------------------------------- targets

@pytest.mark.parametrize("values,negative,positive", [
    ([0, 1], "0", "1"), ([1, 0], "0", "1"), ([True, False], "False", "True"), (["no", "yes"], "no", "yes"),
    (["Yes", "No"], "No", "Yes"), (["y", "n"], "n", "y"), (["pos", "neg"], "neg", "pos"), ([-1, 1], "-1", "1"),
    (["dog", "cat"], "cat", "dog"), ([2.0, 10.0], "2", "10"),
])
def test_binary_natural_mapping(values, negative, positive):
    n = 40
    col = [values[i % 2] for i in range(n)]
    df = pd.DataFrame({"t": col, "f": np.arange(n) % 7})
    d = prepare(df, cfg(TaskSpec("t")))
    assert d.preprocessor.class_labels("t") == [negative, positive]
    pos_rows = [str(v) if not isinstance(v, float) else f"{v:g}" for v in col]
    expected = [1.0 if r == positive else 0.0 for r in pos_rows]
    assert d.y["t"].tolist() == expected and d.y["t"].dtype == torch.float32
    assert d.task_dims == {"t": 1}


def test_binary_positive_value_with_stray_spaces_and_numbers():
    df = read_csv(b"inc, m ,f\n" + b"".join(
        [b" 50000+., Never married, 1\n", b" - 50000., Divorced, 2\n", b" - 50000., Married, 3\n"] * 10))
    d = prepare(df, cfg(TaskSpec("inc", positive="50000+."), TaskSpec("m", positive="Never married")))
    assert d.y["inc"].tolist()[:3] == [1.0, 0.0, 0.0]
    assert d.preprocessor.class_labels("inc") == ["- 50000.", "50000+."]
    assert d.preprocessor.class_labels("m") == ["not Never married", "Never married"]  # 3 values: rest are 0
    assert d.y["m"].tolist()[:3] == [1.0, 0.0, 0.0]
    num = pd.DataFrame({"t": [0.0, 1.0, 2.0] * 10, "f": range(30)})
    d = prepare(num, cfg(TaskSpec("t", positive="1")))
    assert d.y["t"].tolist()[:3] == [0.0, 1.0, 0.0]
    d = prepare(_frame(), cfg(TaskSpec("click", positive="YES")))  # unique case-insensitive match
    assert d.preprocessor.class_labels("click") == ["no", "yes"]


def test_regression_is_standardised_with_train_stats(tiny_frame):
    d = prepare(tiny_frame, cfg())
    tr = d.splits["train"].numpy()
    mean, std = d.preprocessor.target_scale("score")
    assert mean == pytest.approx(tiny_frame["score"].iloc[tr].mean())
    assert std == pytest.approx(tiny_frame["score"].iloc[tr].std(ddof=0))
    assert mean != pytest.approx(tiny_frame["score"].mean())
    back = d.y["score"].double() * std + mean
    assert np.allclose(back.numpy(), tiny_frame["score"].to_numpy(), atol=1e-5)
    assert d.preprocessor.target_scale("click") == (0.0, 1.0)
    assert d.preprocessor.class_labels("score") == []


def test_multiclass_indices_follow_class_labels(tiny_frame):
    d = prepare(tiny_frame, cfg())
    labels = d.preprocessor.class_labels("kind")
    assert labels == ["hi", "lo", "mid"] and d.task_dims["kind"] == 3
    assert d.y["kind"].dtype == torch.int64
    assert [labels[i] for i in d.y["kind"].tolist()] == tiny_frame["kind"].tolist()


def test_missing_target_is_masked_not_dropped(tiny_frame):
    df = tiny_frame.copy()
    df.loc[[0, 5], "click"] = np.nan
    df.loc[[5, 7], "score"] = np.nan
    d = prepare(df, cfg())
    assert len(d) == len(df)
    assert d.mask["click"][[0, 5]].tolist() == [False, False] and d.y["click"][[0, 5]].tolist() == [0.0, 0.0]
    assert d.mask["score"][[5, 7]].tolist() == [False, False] and d.y["score"][[5, 7]].tolist() == [0.0, 0.0]
    assert d.mask["kind"].all() and d.mask["score"][0]
    s = d.summary()["tasks"]
    assert s["click"]["missing"] == 2 and s["score"]["missing"] == 2 and s["kind"]["missing"] == 0


# ----------------------------------------------------------------------------------------- features

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


# ----------------------------------------------------------------------------------------- splits / JSON

def test_splits_are_seeded_disjoint_and_complete(tiny_frame):
    a = prepare(tiny_frame, cfg(test_fraction=0.1, seed=3))
    b = prepare(tiny_frame, cfg(test_fraction=0.1, seed=3))
    c = prepare(tiny_frame, cfg(test_fraction=0.1, seed=4))
    for k in ("train", "val", "test"):
        assert torch.equal(a.splits[k], b.splits[k]) and a.splits[k].dtype == torch.int64
    assert not torch.equal(a.splits["val"], c.splits["val"])
    allrows = torch.cat([a.splits[k] for k in ("train", "val", "test")]).sort().values
    assert torch.equal(allrows, torch.arange(200))
    assert "test" not in prepare(tiny_frame, cfg()).splits


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


# ----------------------------------------------------------------------------------------- refusals

def _frame(n: int = 40, **extra) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"a": rng.normal(size=n), "color": rng.choice(["red", "blue"], size=n),
                       "click": ["no", "yes"] * (n // 2), "score": rng.normal(size=n)})
    for k, v in extra.items():
        df[k] = v
    return df


def _zip_bytes() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("data.csv", "a,b\n1,2\n")
    return buf.getvalue()


PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00"


def _only_in_val(kind: str):
    """A frame whose only positive (or only label) sits in the validation split."""
    n = 30
    val = prepare(_frame(n), cfg(TaskSpec("click"))).splits["val"].tolist()
    df = _frame(n)
    if kind == "binary":
        df["click"] = "no"
        df.loc[val[0], "click"] = "yes"
        return df, cfg(TaskSpec("click"))
    df["score"] = np.nan
    df.loc[val[:2], "score"] = [1.0, 2.0]
    return df, cfg(TaskSpec("click"), TaskSpec("score", "regression"))


MALFORMED = [
    # (id, thunk, key phrase)
    ("empty-bytes", lambda: read_csv(b""), "is empty"),
    ("whitespace-only", lambda: read_csv(b"  \n\n \n"), "is empty"),
    ("header-only", lambda: read_csv(b"a,b,c\n"), "no data rows"),
    ("one-row", lambda: read_csv(b"a,b\n1,2\n"), "need at least 2 rows"),
    ("duplicate-header", lambda: read_csv(b"a,b,a\n1,2,3\n4,5,6\n"), "'a' more than once"),
    ("empty-header-name", lambda: read_csv(b"a,,b\n1,2,3\n4,5,6\n"), "column 2 of the header has no name"),
    ("unnamed-first-not-index", lambda: read_csv(b",a\nx,1\ny,2\n"), "column 1 of the header has no name"),
    ("png", lambda: read_csv(PNG, filename="photo.csv"), "PNG image"),
    ("zip", lambda: read_csv(_zip_bytes(), filename="data.csv"), "ZIP archive"),
    ("xls", lambda: read_csv(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100), "Excel"),
    ("pdf", lambda: read_csv(b"%PDF-1.4\n..."), "PDF"),
    ("gzipped-png", lambda: read_csv(gzip.compress(PNG)), "PNG image"),
    ("corrupt-gzip", lambda: read_csv(b"\x1f\x8b\x08\x00garbage-not-deflate"), "cannot be decompressed"),
    ("nul-bytes", lambda: read_csv(b"a,b\n1,\x002\n3,4\n"), "NUL bytes"),
    ("control-bytes", lambda: read_csv(bytes(range(1, 9)) * 200), "binary file"),
    ("too-many-fields", lambda: read_csv(b"a,b\n1,2\n3,4,5\n6,7\n"), "line 3 has 3 fields but the header has 2"),
    ("too-few-fields", lambda: read_csv(b"a,b,c\n1,2,3\n4,5\n"), "line 3 has 2 fields but the header has 3"),
    ("ragged-quoted", lambda: read_csv(b'a,b\n"x,y",2\n"p",3,4\n'), "line 3 has 3 fields"),
    ("unclosed-quote", lambda: read_csv(b'a,b\n1,2\n3,"4\n5,6\n'), "never closed"),
    ("missing-path", lambda: read_csv("/nonexistent/dir/file.csv"), "does not exist"),
    ("folder", lambda: read_csv("/tmp"), "is a folder"),
    ("not-a-source", lambda: read_csv(12345), "cannot read data from a int"),
    ("frame-duplicate-columns", lambda: prepare(pd.DataFrame([[1, 2], [3, 4]], columns=["x", "x"]),
                                                cfg(TaskSpec("x"))), "more than once"),
    ("target-not-found", lambda: prepare(_frame(), cfg(TaskSpec("clik"))), "Did you mean 'click'"),
    ("binary-three-values", lambda: prepare(_frame(kind=["a", "b", "c", "a"] * 10), cfg(TaskSpec("kind"))),
     "has 3 values (a, b, c); a binary target needs two — use binary=VALUE"),
    ("positive-absent", lambda: prepare(_frame(), cfg(TaskSpec("click", positive="maybe"))),
     "has no value 'maybe'; its most frequent values are 'no', 'yes'"),
    ("regression-text", lambda: prepare(_frame(), cfg(TaskSpec("color", "regression"))),
     "must be numeric for regression, but row 1 has"),
    ("regression-inf", lambda: prepare(_frame(score=[np.inf] + [1.0, 2.0] * 19 + [3.0]),
                                       cfg(TaskSpec("score", "regression"))), "infinite value in row 1"),
    ("too-many-classes", lambda: prepare(_frame(k=np.arange(40) % 10), cfg(TaskSpec("k", "multiclass"),
                                                                           max_classes=5)),
     "has 10 classes, more than the limit of 5; use regression"),
    ("constant-target", lambda: prepare(_frame(t="same"), cfg(TaskSpec("t"))), "has only one value ('same')"),
    ("all-missing-target", lambda: prepare(_frame(t=np.nan), cfg(TaskSpec("t"))), "has no values"),
    ("feature-not-found", lambda: prepare(_frame(), cfg(TaskSpec("click"), features=("colour",))),
     "feature column 'colour' is not in the data. Did you mean 'color'"),
    ("feature-all-missing", lambda: prepare(_frame(e=np.nan), cfg(TaskSpec("click"), features=("a", "e"))),
     "feature column 'e' has no values"),
    ("feature-is-target", lambda: prepare(_frame(), cfg(TaskSpec("click"), features=("a", "click"))),
     "both a target and a feature"),
    ("drop-not-found", lambda: prepare(_frame(), cfg(TaskSpec("click"), drop=("sCore",))),
     "to drop is not in the data. Did you mean 'score'"),
    ("override-not-found", lambda: prepare(_frame(), cfg(TaskSpec("click"), kind_overrides={"zz": "numeric"})),
     "kind overrides is not in the data"),
    ("override-numeric-text", lambda: prepare(_frame(), cfg(TaskSpec("click"), kind_overrides={"color": "numeric"})),
     "numeric column 'color' has the text"),
    ("no-usable-feature", lambda: prepare(pd.DataFrame({"id": range(30), "k": 1, "y": [0, 1] * 15}),
                                          cfg(TaskSpec("y"))), "no usable feature columns are left (id: identifier"),
    ("binary-class-only-in-val", lambda: prepare(*_only_in_val("binary")), "training split has no rows of class 'yes'"),
    ("no-labels-in-train", lambda: prepare(*_only_in_val("regression")), "no labelled rows in the training split"),
    ("predict-missing-feature", lambda: prepare_for_prediction(
        _frame().drop(columns=["color"]), prepare(_frame(), cfg(TaskSpec("click"))).preprocessor),
     "no feature column 'color'"),
    ("predict-text-in-numeric", lambda: prepare_for_prediction(
        _frame().astype({"a": object}).assign(a=["1.5", "oops"] + ["2"] * 38),
        prepare(_frame(), cfg(TaskSpec("click"))).preprocessor), "has the text 'oops' in row 2"),
    ("bad-json", lambda: Preprocessor.from_json("{not json"), "not valid JSON"),
]


@pytest.mark.parametrize("thunk,phrase", [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_malformed_inputs_raise_clear_data_error(thunk, phrase):
    with pytest.raises(DataError) as info:
        thunk()
    msg = str(info.value)
    assert phrase in msg, msg
    assert "Traceback" not in msg and "\n" not in msg and len(msg) < 400


def test_at_least_25_malformed_cases():
    assert len(MALFORMED) >= 25 and len({m[0] for m in MALFORMED}) == len(MALFORMED)


def test_missing_markers_constant():
    assert {"", "NA", "NaN", "?", "null", "N/A", "None"} <= MISSING_MARKERS


# ----------------------------------------------------------------------------------------- real data

def test_census_income_prepares(census_path):
    d = prepare(census_path, DataConfig(tasks=(TaskSpec("income_50k", "binary", positive="50000+."),
                                               TaskSpec("marital_stat", "binary", positive="Never married")),
                                        drop=("instance_weight",)))
    assert len(d) == 99762
    s = d.summary()
    assert s["tasks"]["income_50k"]["positive_rate"] == pytest.approx(0.062, abs=0.003)
    assert s["tasks"]["marital_stat"]["positive_rate"] == pytest.approx(0.43, abs=0.01)
    assert "instance_weight" not in d.feature_columns and s["ignored"]["instance_weight"] == "dropped"
    assert d.x_num.shape[0] == d.x_cat.shape[0] == 99762 and d.x_cat.shape[1] >= 25
    assert all(m.all() for m in d.mask.values())
    p = Preprocessor.from_json(d.preprocessor.to_json())
    x_num, x_cat, y, _ = prepare_for_prediction(d.frame.iloc[:100], p)
    assert torch.equal(x_num, d.x_num[:100]) and torch.equal(x_cat, d.x_cat[:100])


@pytest.mark.parametrize("config,field", [
    (dict(tasks=(TaskSpec("y", "regression"),)), "target:y"),                  # text in a regression target
    (dict(tasks=(TaskSpec("n"),), drop=("zzz",)), "features"),
    (dict(tasks=(TaskSpec("n"),), kind_overrides={"qq": "numeric"}), "kinds"),
    (dict(tasks=(TaskSpec("n"),), kind_overrides={"t": "numeric"}), "kinds"),  # text in a forced-numeric column
    (dict(tasks=(TaskSpec("n"),), features=()), "features"),
    (dict(tasks=(TaskSpec("n", "binary", positive="maybe"),)), "target:n"),
])
def test_data_error_names_the_control_that_fixes_it(config, field):
    """The form shows each refusal next to the control that fixes it: DataError.field says which."""
    df = pd.DataFrame({"a": range(30), "t": ["x", "2"] * 15, "y": ["1", "b"] * 15, "n": [0, 1, 1] * 10})
    with pytest.raises(DataError) as e:
        prepare(df, DataConfig(**config))
    assert e.value.field == field, str(e.value)
