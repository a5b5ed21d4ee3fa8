"""mmoe.views.jobview: progress text, curves and metrics tables from job snapshots."""

import pandas as pd
import pytest

from mmoe.runs.jobs import JobManager
from mmoe.views.jobview import (
    curves_frame,
    duration_text,
    experiment_label,
    history_curves,
    jobs_frame,
    metrics_by_task,
    outcome,
    overview_columns,
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
    mf = metrics_by_task(p.last_metrics)
    assert mf.to_dict("records") == [{"task": "click", "metric": "loss", "validation": 0.5},
                                     {"task": "click", "metric": "auc", "validation": 0.7}]
    assert jobs_frame([p])["status"].iloc[0].endswith("diverged")


def test_metrics_frame_final_metrics_and_history():
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


def test_metrics_by_task_one_row_per_task_and_metric():
    """A job card's table stays narrow whatever the task kinds: a row per (task, metric), the metrics of the
    task's own kind only, a column per split. The engine logs only the loss for the train split: its other
    cells are NaN (a number the table shows as "—"), never the object None."""
    mf = metrics_by_task({"train": {"click": {"loss": 0.6}, "score": {"loss": 0.2, "task_weight": 1.5}},
                          "val": {"click": {"loss": 0.5, "auc": 0.7, "accuracy": None, "gate_entropy": 1.1},
                                  "score": {"loss": 0.3, "rmse": 2.0, "r2": 0.4, "mae": 1.5}}})
    assert list(mf.columns) == ["task", "metric", "training", "validation"]
    assert [(r["task"], r["metric"]) for r in mf.to_dict("records")] == [
        ("click", "loss"), ("click", "auc"), ("score", "loss"), ("score", "rmse"), ("score", "mae"), ("score", "r2")]
    assert mf["training"].dtype == "float64" and mf["validation"].dtype == "float64"
    assert mf["training"].tolist()[:2] == [0.6, pytest.approx(float("nan"), nan_ok=True)]
    assert mf.set_index(["task", "metric"]).loc[("score", "r2"), "validation"] == 0.4
    assert metrics_by_task({}).empty and list(metrics_by_task({}).columns) == ["task", "metric"]


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
    assert cols[:5] == ["id", "name", "status", "arch", "click:auc"]      # on screen beside the (wide) name
    assert out.at[0, "why it stopped"] == "early stopping at epoch 3: ..."
    # the page sizes the text columns to their values and gives the metrics one number format
    assert overview_columns(out) == (["name", "status", "arch", "dataset", "created", "why it stopped"],
                                     ["click:auc"])


def test_experiment_label_says_how_many_runs_start():
    assert experiment_label(1, 3) == "Train 3 runs (1 setting × 3 seeds)"
    assert experiment_label(2, 1) == "Train 2 runs (2 settings × 1 seed)"
    assert len(experiment_label(12, 10)) <= 40      # a button label, not a sentence


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


def test_device_and_step_in_words():
    from mmoe.views.runinfo import device_text, step_text

    assert step_text("fused") == "fused training step"
    assert step_text("fused, CUDA graph, 780 replays") == "fused training step, CUDA graph, 780 replays"
    assert step_text("fused, no CUDA graph: switched off") == "fused training step, no CUDA graph: switched off"
    assert step_text("autograd (dropout)") == "autograd training step (the fused step does not cover dropout)"
    assert step_text("autograd (switched off)") == "autograd training step (the fused step was switched off)"
    assert device_text({"device": "cpu", "step": "autograd (sparse top-k gating)"}) == \
        "cpu · autograd training step (the fused step does not cover sparse top-k gating)"
    assert device_text({"device": "cuda:0", "step": "fused", "distributed": {"world_size": 2, "backend": "nccl"}}) \
        == "cuda:0 · fused training step · 2 processes (torchrun, nccl)"
    assert device_text({"device": "cpu"}) == "cpu"           # a run stored before the step was recorded
