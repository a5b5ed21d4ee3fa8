"""mmoe.views.comparing: a task's metrics are compared only between runs in which the task is the
same kind with the same target encoding; primary metric first; diagnostics never "best"."""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from mmoe.tasks import DIAGNOSTIC_METRICS, METRIC_DIRECTIONS
from mmoe.views.comparing import (
    MetricColumn,
    TaskGroup,
    best_per_metric,
    compare_metrics,
    curve_title,
    experiment_members,
    experiment_order,
    group_members,
    group_notes,
    metric_direction,
    primary_columns,
    run_task_groups,
    task_groups,
)

REG = {"rmse": 0.9, "mae": 0.7, "r2": 0.5, "loss": 0.30, "gate_entropy": 1.0}
MULTI = {"accuracy": 0.6, "macro_f1": 0.5, "logloss": 0.20, "loss": 0.20, "gate_entropy": 1.3}


def rec(i: int, tasks: list[dict], metrics: dict, experiment_id=None, summary=None) -> SimpleNamespace:
    return SimpleNamespace(id=i, name=f"r{i}", data_config={"tasks": tasks}, final_metrics=metrics,
                           data_summary=summary, experiment_id=experiment_id)


def quality(kind: str, **kw) -> dict:
    return {"column": "quality", "kind": kind, "positive": None, "weight": 1.0, **kw}


@pytest.fixture
def mixed() -> list[SimpleNamespace]:
    """quality: regression in runs 1 and 3, multiclass in run 2 (whose log loss is the smallest 'loss')."""
    return [rec(1, [quality("regression")], {"quality": dict(REG)}),
            rec(2, [quality("multiclass")], {"quality": dict(MULTI)}),
            rec(3, [quality("regression")], {"quality": {**REG, "rmse": 0.8, "loss": 0.25, "gate_entropy": 0.4}})]


def test_groups_are_column_kind_and_positive_class():
    r = rec(1, [{"column": "click", "kind": "binary", "positive": "yes"}, quality("regression"),
                {"column": "c", "kind": "binary"}],
            {"click": {"auc": 0.7}, "quality": {"rmse": 1.0}, "c": {"auc": 0.6}, "old": {"rmse": 2.0}},
            summary={"tasks": {"c": {"kind": "binary", "positive": "1"}}})
    g = run_task_groups(r)
    assert list(g) == ["click", "quality", "c", "old"]
    assert g["click"] == TaskGroup("click", "binary", "yes") and g["click"].label == "click (binary=yes)"
    assert g["quality"].label == "quality (regression)"
    assert g["c"] == TaskGroup("c", "binary", "1")         # the positive class the data decided
    assert g["old"] == TaskGroup("old", "regression")       # not in the data config: kind from its metrics


def test_a_task_of_two_kinds_gets_two_columns_never_ranked_together(mixed):
    cmp = compare_metrics(mixed, ["a", "b", "c"])
    m = cmp.frame
    reg, multi = "quality (regression)", "quality (multiclass)"
    assert "quality · loss" not in m.columns and "quality · rmse" not in m.columns
    assert [c for c in m.columns if c.startswith(reg)] == [f"{reg} · rmse", f"{reg} · mae", f"{reg} · r2",
                                                          f"{reg} · loss (MSE, standardised target)",
                                                          f"{reg} · gate_entropy"]
    assert [c for c in m.columns if c.startswith(multi)] == [f"{multi} · accuracy", f"{multi} · logloss",
                                                            f"{multi} · macro_f1", f"{multi} · gate_entropy"]
    # each run's values only in its own kind's columns
    assert m[f"{reg} · rmse"].isna().tolist() == [False, True, False]
    assert m[f"{multi} · accuracy"].isna().tolist() == [True, False, True]
    best = cmp.best()
    # the multiclass log loss (0.20) is smaller than both regression losses, but it is not in their column
    assert best[f"{reg} · loss (MSE, standardised target)"] == ["c"]
    assert best[f"{reg} · rmse"] == ["c"]
    # a column held by one run has nothing to beat: no best
    assert f"{multi} · accuracy" not in best and f"{multi} · logloss" not in best
    # the main table: one primary metric per task and kind, primary first
    assert cmp.main == [f"{reg} · rmse", f"{multi} · accuracy"]


def test_the_note_says_which_runs_and_why(mixed):
    assert group_notes(mixed) == [("quality is a regression task in runs #1, #3 and a multiclass task in run #2: "
                                  "their losses and metrics are different quantities, so they are shown apart.")]
    yes = rec(4, [{"column": "click", "kind": "binary", "positive": "yes"}], {"click": {"auc": 0.8}})
    no = rec(5, [{"column": "click", "kind": "binary", "positive": "no"}], {"click": {"auc": 0.3}})
    assert group_notes([yes, no]) == [("click is a binary task with positive class “yes” in run #4 and a binary task "
                                      "with positive class “no” in run #5: they predict different targets, so their "
                                      "metrics are shown apart.")]
    assert best_per_metric(compare_metrics([yes, no], ["y", "n"]).frame) == {}
    assert group_notes([mixed[0], mixed[2]]) == []


def test_gate_entropy_is_a_diagnostic_never_best(mixed):
    assert "gate_entropy" in DIAGNOSTIC_METRICS and "gate_entropy" not in METRIC_DIRECTIONS
    cmp = compare_metrics(mixed, ["a", "b", "c"])
    col = "quality (regression) · gate_entropy"
    assert cmp.frame[col].notna().sum() == 2
    assert col not in cmp.best()
    assert col not in best_per_metric(cmp.frame, {col: "max"})   # not even when asked to
    assert metric_direction(col) is None
    header = cmp.headers()[col]
    assert "diagnostic" in header and "↑" not in header and "↓" not in header


def test_headers_carry_the_direction(mixed):
    h = compare_metrics(mixed, ["a", "b", "c"]).headers()
    assert h["quality (regression) · rmse"] == "quality (regression) · rmse ↓"
    assert h["quality (multiclass) · accuracy"] == "quality (multiclass) · accuracy ↑"
    assert h["quality (regression) · loss (MSE, standardised target)"].endswith("↓")
    assert MetricColumn(TaskGroup("t", "binary"), "custom").header == "t (binary) · custom"   # unknown: no arrow


def test_binary_loss_is_shown_once_as_log_loss():
    r = rec(1, [{"column": "a", "kind": "binary"}], {"a": {"auc": 0.8, "loss": 0.3, "logloss": 0.3, "accuracy": 0.7,
                                                            "gate_entropy": None}})
    m = compare_metrics([r], ["x"]).frame
    assert list(m.columns) == ["a (binary) · auc", "a (binary) · logloss", "a (binary) · accuracy",
                               "a (binary) · gate_entropy"]
    assert (m.dtypes == np.float64).all() and math.isnan(m.iloc[0, -1])


def test_groups_and_members_keep_a_tasks_kinds_together(mixed):
    extra = rec(4, [{"column": "click", "kind": "binary"}, quality("regression")], {"click": {"auc": 0.5}})
    groups = task_groups([*mixed, extra])
    assert [g.label for g in groups] == ["quality (regression)", "quality (multiclass)", "click (binary)"]
    members = group_members([*mixed, extra])
    assert [r.id for r in members[TaskGroup("quality", "regression")]] == [1, 3, 4]


def test_primary_columns_for_the_runs_table(mixed):
    frame = pd.DataFrame({"id": [3, 2, 1], "metric:quality:rmse": [0.8, np.nan, 0.9],
                          "metric:quality:accuracy": [np.nan, 0.6, np.nan], "metric:quality:loss": [0.25, 0.2, 0.3]})
    wrong = frame.assign(**{"metric:quality:rmse": [0.8, 5.0, 0.9]})   # a stray rmse on the multiclass run
    out, cols = primary_columns(mixed, wrong)
    assert [c.name for c in cols] == ["quality (regression) · rmse", "quality (multiclass) · accuracy"]
    assert out["quality (regression) · rmse"].tolist()[0::2] == [0.8, 0.9]
    assert math.isnan(out["quality (regression) · rmse"].iloc[1])      # the multiclass run: not in this column
    assert out["quality (multiclass) · accuracy"].iloc[1] == 0.6


def test_curve_title_names_the_loss_of_each_kind():
    assert curve_title("loss", "regression") == "MSE (standardised target)"
    assert "log loss" in curve_title("loss", "multiclass") and "log loss" in curve_title("loss", "binary")
    assert curve_title("auc", "binary") is None


def test_experiment_members_and_order():
    rs = [rec(5, [], {}, experiment_id=2), rec(4, [], {}), rec(3, [], {}, experiment_id=1),
          rec(2, [], {}, experiment_id=2), rec(1, [], {}, experiment_id=1)]
    assert experiment_members(rs) == {2: [2, 5], 1: [1, 3]}
    assert [r.id for r in experiment_order(rs)] == [5, 2, 3, 1, 4]
    assert experiment_members([SimpleNamespace(id=1)]) == {}       # a store without experiments
