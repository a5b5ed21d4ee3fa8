"""mmoe.views.datasets: built-in catalogue, target kind choices, config building, staged checks."""
from __future__ import annotations

import pandas as pd
import pytest

from mmoe.config import ConfigError, TaskSpec
from mmoe.data import profile_columns
from mmoe.views.datasets import (BUILTINS, IS_VALUE, build_config, categorical_text, check, column_table,
                                 summary_tables, target_choices, task_from_choice, usable_features, with_task_weights)


def test_builtins_exist_and_their_suggested_targets_prepare():
    for b in BUILTINS:
        assert b.available, b.name
        if b.path is not None:
            df = pd.read_csv(b.path, nrows=5)
            assert {t.column for t in b.tasks} <= set(df.columns)


def test_column_table(tiny_frame):
    t = column_table(tiny_frame.assign(site="shop"))
    assert list(t.columns) == ["column", "kind", "type", "missing", "distinct", "examples"]
    assert t.set_index("column").at["site", "kind"] == "constant"
    assert t.set_index("column").at["color", "distinct"] == 3


def test_column_table_examples_of_a_float_column_are_short():
    df = pd.DataFrame({"x": [0.123456789012345, 5.705163516194235, 12345.6789, 0.123456789012345],
                       "n": [41.0, 41.0, 67.0, None], "i": [1234567, 2, 3, 1234567],
                       "t": ["0.123456789", "b", "c", "c"]})
    ex = column_table(df).set_index("column")["examples"]
    assert ex["x"] == "0.1235, 5.705, 12346"        # examples, not data: at most about 4 significant digits
    assert ex["n"] == "41, 67"                      # whole numbers and ints as they are
    assert ex["i"] == "1234567, 2, 3"
    assert ex["t"] == "c, 0.123456789, b"           # text as it is


def test_target_choices(tiny_frame):
    assert target_choices(tiny_frame["click"])[1:] == ("binary", "yes")
    choices, kind, _ = target_choices(tiny_frame["score"])
    assert kind == "regression" and "regression" in choices
    choices, kind, _ = target_choices(tiny_frame["kind"])
    assert kind == "multiclass" and "regression" not in choices and IS_VALUE in choices


def test_task_from_choice():
    assert task_from_choice("k", IS_VALUE, "hi") == TaskSpec("k", "binary", positive="hi")
    assert task_from_choice("k", "multiclass").kind == "multiclass"
    with pytest.raises(ConfigError, match="positive"):
        task_from_choice("k", IS_VALUE, None)


def test_build_config_keeps_default_features_implicit(tiny_frame):
    prof = profile_columns(tiny_frame)
    tasks = (TaskSpec("click"),)
    feats = usable_features(prof, ["click"])
    assert feats == ["a", "b", "color", "score", "kind"]
    cfg = build_config(prof, tasks, feats)
    assert cfg.features is None and cfg.drop == ()
    cfg = build_config(prof, tasks, ["a", "b"])
    assert cfg.features is None and cfg.drop == ("color", "score", "kind")
    prepared, problems = check(tiny_frame, cfg)
    assert not problems and prepared.feature_columns == ["a", "b"]
    assert prepared.summary()["ignored"]["color"] == "dropped"


def test_build_config_with_overrides_and_identifiers(tiny_frame):
    df = tiny_frame.assign(row_id=range(len(tiny_frame)))
    prof = profile_columns(df)
    assert "row_id" not in usable_features(prof, ["click"])
    assert "row_id" in usable_features(prof, ["click"], {"row_id": "numeric"})
    cfg = build_config(prof, (TaskSpec("click"),), ["a", "row_id"], {"row_id": "numeric", "a": "numeric"})
    assert cfg.kind_overrides == {"row_id": "numeric"}   # same-as-inferred overrides are left out
    prepared, problems = check(df, cfg)
    assert not problems and "row_id" in prepared.feature_columns


@pytest.mark.parametrize("task,control,needle", [
    (TaskSpec("kind", "binary"), "target:kind", "3 values"),
    (TaskSpec("same", "binary"), "target:same", "only one value"),
    (TaskSpec("color", "regression"), "target:color", "numeric"),
    (TaskSpec("kind", "binary", positive="nope"), "target:kind", "no value 'nope'"),
    (TaskSpec("missing_col"), "target:missing_col", "not in the data"),
])
def test_check_puts_each_problem_by_its_control(tiny_frame, task, control, needle):
    prof = profile_columns(tiny_frame.assign(same="x"))
    cfg = build_config(prof, (task,), ["a", "b"])
    prepared, problems = check(tiny_frame.assign(same="x"), cfg)
    assert prepared is None and control in problems and needle in problems[control], problems


def test_check_no_features(tiny_frame):
    prof = profile_columns(tiny_frame)
    prepared, problems = check(tiny_frame, build_config(prof, (TaskSpec("click"),), []))
    assert prepared is None and "no usable feature" in problems["features"]


def test_with_task_weights_shares_tensors(tiny_frame):
    prof = profile_columns(tiny_frame)
    prepared, _ = check(tiny_frame, build_config(prof, (TaskSpec("click"), TaskSpec("score", "regression")),
                                                  ["a", "b", "color"]))
    w = with_task_weights(prepared, {"score": 0.25})
    assert [t.weight for t in w.tasks] == [1.0, 0.25]
    assert [t.weight for t in prepared.tasks] == [1.0, 1.0]        # the original is untouched
    assert w.x_num is prepared.x_num and [t.weight for t in w.config.tasks] == [1.0, 0.25]


def test_summary_tables(tiny_frame):
    prof = profile_columns(tiny_frame)
    prepared, _ = check(tiny_frame, build_config(
        prof, (TaskSpec("click"), TaskSpec("score", "regression"), TaskSpec("kind", "multiclass")), ["a", "b"]))
    t = summary_tables(prepared.summary())
    assert t["splits"]["rows"].sum() == 200
    details = t["tasks"].set_index("task")["details"]
    assert "positive = 'yes'" in details["click"] and "3 classes" in details["kind"] and "mean" in details["score"]


def test_read_report_in_words_and_shares_never_zero():
    from mmoe.views.datasets import read_report_lines, share_text

    lines, changed = read_report_lines({"delimiter": ";", "encoding": "cp1252", "compression": "gzip",
                                        "header_columns": 3, "rows": 741, "blank_lines_skipped": 0,
                                        "empty_rows_dropped": 527, "saved_index_dropped": False,
                                        "decimal_comma_columns": ["X1", "Y1"]})
    assert changed and lines[0].startswith("semicolon-separated, cp1252 text, gzip-compressed")
    assert any("527 row(s) with no value" in line for line in lines)
    assert any("Decimal commas" in line and "X1, Y1" in line for line in lines)
    assert read_report_lines({"delimiter": ",", "encoding": "utf-8", "header_columns": 2, "rows": 5})[1] is False
    assert (share_text(1, 5000), share_text(40, 800), share_text(500, 800), share_text(0, 10)) == \
        ("<0.1%", "5.0%", "62%", "0.0%")


def test_target_details_show_counts():
    from mmoe.views.datasets import summary_tables

    summary = {"splits": {"train": 8}, "ignored": {}, "tasks": {
        "k": {"kind": "multiclass", "labelled": 5001, "missing": 0, "class_counts": {"rare": 1, "common": 5000}},
        "c": {"kind": "binary", "labelled": 800, "missing": 0, "positive": "yes", "positive_rate": 0.05}}}
    t = summary_tables(summary)["tasks"].set_index("task")["details"]
    assert t["k"] == "2 classes: common 5,000 (>99.9%), rare 1 (<0.1%)"
    assert t["c"] == "positive = 'yes': 40 of 800 labelled rows (5.0%)"


def test_categorical_text_counts_the_values_not_the_other_slot(tiny_frame):
    """A categorical feature's cardinality includes the "other" slot: the Data page says how many values of the
    column were learned (the tiny frame's colour has three), and names the slot apart."""
    from mmoe.config import DataConfig
    from mmoe.data import prepare

    data = prepare(tiny_frame, DataConfig(tasks=(TaskSpec("click", "binary", positive="yes"),), seed=0))
    card = data.summary()["features"]["cardinalities"]["color"]
    assert card == tiny_frame["color"].nunique() + 1
    assert categorical_text(card) == "categorical: 3 values + other (rare, unseen or missing)"
    assert categorical_text(2) == "categorical: 1 value + other (rare, unseen or missing)"
    assert categorical_text(1001).startswith("categorical: 1,000 values")

