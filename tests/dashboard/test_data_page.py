"""Data page: built-in datasets, uploads, target/feature choices, and every refusal shown as an error."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from mmoe.views.datasets import IS_VALUE

from helpers import shown

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")
DATA_KEY = "mmoe.dataset"


@pytest.fixture
def at(mmoe_home, process_manager):
    app = AppTest.from_file(APP, default_timeout=60)
    app.run()
    return app


def upload(at: AppTest, name: str, data: bytes) -> AppTest:
    """Upload through the widget (its key changes after each kept upload, which resets it)."""
    n = at.session_state["data.upload_n"] if "data.upload_n" in at.session_state else 0
    at.file_uploader(key=f"data.upload.{n}").set_value((name, data, "text/csv")).run()
    assert not at.exception, at.exception
    return at


def errors(at: AppTest) -> list[str]:
    """The error boxes as they read (user text in them is escaped Markdown)."""
    return [shown(e.value) for e in at.error]


def ready(at: AppTest) -> bool:
    return any("Ready to train" in s.value for s in at.success)


def key_of(at: AppTest) -> str:
    return next(m.key for m in at.multiselect if m.key.startswith("data.targets."))[len("data.targets."):]


def test_builtin_dataset_is_ready_with_its_suggested_targets(at):
    at.radio(key="data.source").set_value("Built-in dataset").run()
    assert not at.exception and ready(at), errors(at)
    ds = at.session_state[DATA_KEY]
    assert ds["name"] == "click_like.csv"
    assert [t.label() for t in ds["data_config"].tasks] == ["click:binary", "like:binary=yes"]
    assert len(ds["prepared"]) == 20_000
    # summary: rows and splits, the task table, ignored columns with their reasons
    assert [m.value for m in at.metric][3:6] == ["20,000", "16,000", "4,000"]
    ignored = at.dataframe[-1].value
    assert dict(zip(ignored["column"], ignored["why not a feature"]))["site"].startswith("constant")
    tasks = at.dataframe[-3].value
    assert "positive = 'yes'" in tasks.set_index("task").at["like", "details"]


def test_paper_synthetic_generates_a_fresh_table_for_the_chosen_correlation(at):
    at.radio(key="data.source").set_value("Built-in dataset").run()
    at.selectbox(key="data.builtin").set_value("Paper synthetic (choose the task correlation)").run()
    at.number_input(key="data.synth.rows").set_value(500).run()
    at.slider(key="data.synth.p").set_value(0.9).run()
    assert not at.exception and ready(at), errors(at)
    ds = at.session_state[DATA_KEY]
    assert ds["name"].startswith("synthetic p=0.9 n=500")
    assert len(ds["frame"]) == 500 and {"y1", "y2"} <= set(ds["frame"].columns)
    assert [t.kind for t in ds["data_config"].tasks] == ["regression", "regression"]


def test_upload_pick_targets_and_kinds(at, tiny_frame):
    upload(at, "tiny.csv", tiny_frame.to_csv(index=False).encode())
    assert not ready(at) and any("Pick at least one target" in i.value for i in at.info)
    key = key_of(at)
    at.multiselect(key=f"data.targets.{key}").set_value(["click", "score", "kind"]).run()
    assert not at.exception and ready(at), errors(at)
    assert at.selectbox(key=f"data.kind.{key}.click").value == "binary"
    assert at.selectbox(key=f"data.kind.{key}.score").value == "regression"
    assert at.selectbox(key=f"data.kind.{key}.kind").value == "multiclass"
    # default features: all the other usable columns
    assert at.multiselect(key=f"data.features.{key}").value == ["a", "b", "color"]
    # what training will get: the uploaded table as read, these tasks and features, 200 rows split
    ds = at.session_state[DATA_KEY]
    assert ds["name"] == "tiny.csv"
    pd.testing.assert_frame_equal(ds["frame"][list(tiny_frame.columns)], tiny_frame, check_dtype=False)
    assert [t.label() for t in ds["data_config"].tasks] == ["click:binary", "score:regression", "kind:multiclass"]
    assert ds["prepared"].feature_columns == ["a", "b", "color"] and len(ds["prepared"]) == 200
    assert "200" in [m.value for m in at.metric]
    # "is VALUE": the categorical column as a binary task with a chosen positive value
    at.selectbox(key=f"data.kind.{key}.kind").set_value(IS_VALUE).run()
    at.selectbox(key=f"data.value.{key}.kind").set_value("hi").run()
    assert not at.exception and ready(at), errors(at)
    spec = at.session_state[DATA_KEY]["data_config"].tasks[2]
    assert (spec.kind, spec.positive) == ("binary", "hi")


def test_gzipped_upload(at, tiny_frame):
    upload(at, "tiny.csv.gz", gzip.compress(tiny_frame.to_csv(index=False).encode()))
    at.multiselect(key=f"data.targets.{key_of(at)}").set_value(["click"]).run()
    assert ready(at), errors(at)


def test_fewer_features(at, tiny_frame):
    upload(at, "tiny.csv", tiny_frame.to_csv(index=False).encode())
    key = key_of(at)
    at.multiselect(key=f"data.targets.{key}").set_value(["click"]).run()
    at.multiselect(key=f"data.features.{key}").set_value(["a"]).run()
    assert ready(at), errors(at)
    assert at.session_state[DATA_KEY]["prepared"].feature_columns == ["a"]
    at.multiselect(key=f"data.features.{key}").set_value([]).run()
    assert not at.exception and not ready(at)
    assert any("no usable feature" in e for e in errors(at)), errors(at)
    assert DATA_KEY not in at.session_state


@pytest.mark.parametrize("name,data,needle", [
    ("empty.csv", b"", "empty"),
    ("garbage.csv", bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8)), "not"),
    ("one_row.csv", b"a,b,c\n1,2,3\n", "row"),
    ("header_only.csv", b"a,b,c\n", "no data rows"),
    ("ragged.csv", b"a,b,c\n1,2,3\n4,5\n6,7,8\n", "line 3"),
    ("image.csv", b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, "PNG"),
    ("broken.csv.gz", b"\x1f\x8b\x08\x00garbage", "compressed"),
])
def test_bad_uploads_show_an_error_not_a_traceback(at, name, data, needle):
    upload(at, name, data)
    assert not at.exception
    assert any(needle in e for e in errors(at)), errors(at)
    assert DATA_KEY not in at.session_state


def test_binary_target_with_three_values_is_refused_next_to_its_kind(at, tiny_frame):
    upload(at, "tiny.csv", tiny_frame.to_csv(index=False).encode())
    key = key_of(at)
    at.multiselect(key=f"data.targets.{key}").set_value(["kind"]).run()
    at.selectbox(key=f"data.kind.{key}.kind").set_value("binary").run()
    assert not at.exception and not ready(at)
    assert any("3 values" in e and "binary=VALUE" in e for e in errors(at)), errors(at)


def test_target_with_one_value_is_refused(at, tiny_frame):
    df = tiny_frame.assign(same="x")
    upload(at, "tiny.csv", df.to_csv(index=False).encode())
    at.multiselect(key=f"data.targets.{key_of(at)}").set_value(["same"]).run()
    assert not at.exception and not ready(at)
    assert any("only one value" in e for e in errors(at)), errors(at)


def test_regression_on_text_and_split_problems(at):
    df = pd.DataFrame({"x": range(8), "y": ["a", "b"] * 4, "t": [0, 0, 0, 0, 0, 0, 0, 1]})
    upload(at, "small.csv", df.to_csv(index=False).encode())
    key = key_of(at)
    at.multiselect(key=f"data.targets.{key}").set_value(["t"]).run()
    # 1 positive in 8 rows: depending on the split seed the training split can lack it
    msgs = []
    for seed in range(6):
        at.number_input(key="data.seed").set_value(seed).run()
        assert not at.exception
        msgs += errors(at)
    assert any("training split has no rows of class" in m for m in msgs), msgs


def test_upload_survives_a_page_switch(at, tiny_frame):
    upload(at, "tiny.csv", tiny_frame.to_csv(index=False).encode())
    key = key_of(at)
    at.multiselect(key=f"data.targets.{key}").set_value(["click"]).run()
    assert ready(at)
    at.switch_page("app_pages/train.py").run()
    assert not at.exception
    at.switch_page("app_pages/data.py").run()
    assert not at.exception and ready(at), errors(at)
    assert at.multiselect(key=f"data.targets.{key}").value == ["click"]


def test_a_threshold_target_from_a_number(at, tiny_frame):
    upload(at, "tiny.csv", tiny_frame.to_csv(index=False).encode())
    key = key_of(at)
    at.multiselect(key=f"data.targets.{key}").set_value(["score"]).run()
    at.selectbox(key=f"data.kind.{key}.score").set_value("threshold").run()
    at.selectbox(key=f"data.op.{key}.score").set_value(">").run()
    at.number_input(key=f"data.cut.{key}.score").set_value(1.0).run()
    assert not at.exception and ready(at), errors(at)
    spec = at.session_state[DATA_KEY]["data_config"].tasks[0]
    assert (spec.kind, spec.threshold) == ("binary", ">1")
    y = at.session_state[DATA_KEY]["prepared"].y["score"].numpy()
    assert y.tolist() == (tiny_frame["score"] > 1).astype(float).tolist()
