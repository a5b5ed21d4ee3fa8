"""mmoe.views.jobview: progress text, curves and metrics tables from job snapshots."""

import pandas as pd
import pytest

from mmoe.runs.jobs import JobManager
from mmoe.views.jobview import (
    KEY_METRICS,
    curves_frame,
    duration_text,
    history_curves,
    jobs_frame,
    metrics_frame,
    outcome,
    progress_text,
    run_label,
    runs_overview,
)


def test_duration_text():
    assert duration_text(42) == "0:42" and duration_text(3725) == "1:02:05" and duration_text(None) == "–"


@pytest.fixture
def manager():
    m = JobManager()
    yield m
    m.shutdown(wait=True, cancel=True, timeout=30)


def test_snapshots_to_text_and_tables(manager):
    def work(ctx):
        ctx.update(epoch=1, epochs=4, batch=2, batches=5, samples_seen=100,
                   last_metrics={"val": {"click": {"loss": 0.5, "auc": 0.7}}})
        ctx.append_curve("train", "click", 0.6)
        ctx.append_curve("val", "click", 0.5)
        ctx.update(message="training diverged: NaN")
        return "diverged"
    job = manager.submit(work, name="j")
    assert job.wait(10)
    p = job.snapshot()
    assert outcome(p) == "training diverged: NaN"
    assert "epoch 1/4" in progress_text(p) and "diverged" in progress_text(p)
    c = curves_frame(p)
    assert c.to_dict("records") == [{"epoch": 1, "split": "train", "task": "click", "loss": 0.6},
                                    {"epoch": 1, "split": "val", "task": "click", "loss": 0.5}]
    mf = metrics_frame(p.last_metrics)
    assert mf.to_dict("records") == [{"split": "val", "task": "click", "loss": 0.5, "auc": 0.7}]
    assert jobs_frame([p])["status"].iloc[0].endswith("diverged")


def test_metrics_frame_final_metrics_and_history():
    assert metrics_frame({"click": {"auc": 0.8}}).to_dict("records") == [{"task": "click", "auc": 0.8}]
    h = pd.DataFrame({"epoch": [1, 1], "split": ["val", "val"], "task": ["a", "a"], "metric": ["loss", "auc"],
                      "value": [0.3, 0.9]})
    assert history_curves(h).to_dict("records") == [{"epoch": 1, "split": "val", "task": "a", "loss": 0.3}]
    assert runs_overview(pd.DataFrame()).empty


def test_duration_text_short_runs_and_run_label():
    assert duration_text(0.3) == "< 0:01" and duration_text(0) == "0:00" and duration_text(0.6) == "0:01"
    assert run_label(1, "mmoe on census.csv", "mmoe", "census.csv", "finished") == "#1 mmoe on census.csv (finished)"
    assert run_label(2, "baseline", "omoe", "census.csv", "failed") == "#2 baseline — omoe on census.csv (failed)"
    assert run_label(3, "mmoe on census.csv [mmoe]", "mmoe", "census.csv", "finished").count("on census") == 1
    assert run_label(4, "baseline") == "#4 baseline"          # the short form: Compare legends, run pickers


def test_metrics_frame_train_rows_have_only_the_loss():
    """The engine logs only the loss for the train split: the other cells are NaN (a number the
    table shows as "—"), never the object None."""
    mf = metrics_frame({"train": {"click": {"loss": 0.6}},
                        "val": {"click": {"loss": 0.5, "auc": 0.7, "accuracy": None}}}, KEY_METRICS)
    assert list(mf.columns) == ["split", "task", "loss", "auc", "accuracy"]
    assert mf["auc"].dtype == "float64" and mf["accuracy"].dtype == "float64"
    assert mf["auc"].isna().tolist() == [True, False] and mf["accuracy"].isna().all()


def test_runs_overview_puts_metrics_before_why_it_stopped(tmp_path):
    from mmoe.runs.store import RunStore

    s = RunStore(tmp_path)
    rid = s.create_run("r", dataset="d", data_config={"tasks": [{"column": "click", "kind": "binary"}]},
                       model_config={"arch": "mmoe"}, train_config={})
    s.set_status(rid, "running")
    s.finish(rid, "finished", final_metrics={"click": {"auc": 0.8, "accuracy": 0.7}}, epochs=3, train_seconds=1.0,
             samples_per_second=1.0, stop_reason="early stopping at epoch 3: ...")
    out = runs_overview(s.runs_frame())
    cols = list(out.columns)
    assert cols.index("click:auc") < cols.index("why it stopped")
    assert out.at[0, "why it stopped"] == "early stopping at epoch 3: ..."


def test_a_run_no_better_than_a_constant_is_flagged():
    from types import SimpleNamespace

    from mmoe.views.runinfo import no_better_than_baseline

    dc = {"tasks": [{"column": "y", "kind": "regression"}, {"column": "c", "kind": "binary"},
                    {"column": "k", "kind": "multiclass"}]}
    summ = {"tasks": {"k": {"class_counts": {"a": 70, "b": 20, "c": 10}}}}

    def rec(metrics, status="finished"):
        return SimpleNamespace(status=status, data_config=dc, data_summary=summ, final_metrics=metrics)

    flags = no_better_than_baseline(rec({"y": {"r2": -0.01}, "c": {"auc": 0.51}, "k": {"accuracy": 0.70}}))
    assert [f.split(":")[0] for f in flags] == ["y", "c", "k"]
    assert "R² -0.010" in flags[0] and "chance" in flags[1] and "most frequent class (0.700" in flags[2]
    assert no_better_than_baseline(rec({"y": {"r2": 0.4}, "c": {"auc": 0.8}, "k": {"accuracy": 0.75}})) == []
    assert no_better_than_baseline(rec({"y": {"r2": -1.0}}, status="cancelled")) == []
