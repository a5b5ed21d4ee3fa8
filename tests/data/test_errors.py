"""mmoe.data.errors: every refusal is a DataError saying what, where and how to fix, naming its control."""
from __future__ import annotations

import gzip
import io
import zipfile

import numpy as np
import pandas as pd
import pytest
from frames import small_frame as _frame

from mmoe.config import DataConfig, TaskSpec
from mmoe.data import DataError, Preprocessor, prepare, prepare_for_prediction, read_csv

TASKS3 = (TaskSpec("click"), TaskSpec("score", "regression"), TaskSpec("kind", "multiclass"))


def cfg(*tasks, **kw) -> DataConfig:
    return DataConfig(tasks=tasks or TASKS3, **kw)

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
