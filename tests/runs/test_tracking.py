"""Runs into MLflow and TensorBoard, read back with the trackers' own readers: MLflow's client finds the run
on a SQLite tracking URI with its parameters, metric histories (step = epoch) and artifacts; TensorBoard's
EventAccumulator reads every scalar. Exporting again replaces; missing packages are named."""
from __future__ import annotations

import math
import sys

import pytest

from mmoe.config import DataConfig, ModelConfig, TaskSpec, TrainConfig
from mmoe.runs.extras import MissingExtra
from mmoe.runs.runner import DataSource, run_training
from mmoe.runs.store import RunStore
from mmoe.runs.tracking import (
    TrackingError,
    export_mlflow,
    export_tensorboard,
    flat_params,
    gate_summary,
    metric_key,
)

TASKS = (TaskSpec("click", "binary", positive="yes"), TaskSpec("kind", "multiclass"), TaskSpec("score", "regression"))


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from frames import make_tiny_frame

    s = RunStore(tmp_path_factory.mktemp("tracking") / "runs")
    r = run_training(DataSource(make_tiny_frame(), DataConfig(tasks=TASKS)),
                     ModelConfig(num_experts=3, expert_hidden=(8,), tower_hidden=(4,)),
                     TrainConfig(epochs=3, batch_size=32, seed=0, device="cpu"), store=s, name="tracked run")
    assert r.status == "finished" and r.run_id == 1
    # a run cancelled before its first epoch ended: settings, no metrics, no model
    rid = s.create_run("early", dataset="tiny", data_config=DataConfig(tasks=TASKS).to_dict(),
                       model_config=ModelConfig().to_dict(), train_config=TrainConfig(epochs=3).to_dict())
    s.set_status(rid, "running")
    s.finish(rid, "cancelled", final_metrics={}, epochs=0, train_seconds=0.1, samples_per_second=0.0)
    return s


def history_series(store, run_id):
    h = store.history(run_id)
    return {(metric_key(t, s, m), int(e)): v for e, s, t, m, v in h.itertuples(index=False)}


def test_keys_and_parameters():
    assert metric_key("income_50k", "val", "auc") == "income_50k/val/auc"
    assert metric_key("a/b?c", "val", "auc") == "a_b_c/val/auc"
    assert metric_key("..", "val", "auc") == "__/val/auc"


@pytest.mark.slow
def test_mlflow_finds_the_run_with_its_metric_histories(store, tmp_path):
    pytest.importorskip("mlflow", reason="mmoe[mlflow] is not installed")
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'elsewhere' / 'mlflow.db'}"
    (tmp_path / "elsewhere").mkdir()
    report = export_mlflow(store, [1, 2], tracking_uri=uri)
    assert report.location == uri and uri in "\n".join(report.lines())
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("MMoE Lab")
    found = {r.data.tags["mmoe.run_id"]: r for r in client.search_runs([exp.experiment_id])}
    assert set(found) == {"1", "2"}
    run = found["1"]
    assert run.info.run_name == "tracked run" and run.info.status == "FINISHED"
    assert found["2"].info.status == "KILLED"
    rec = store.get_run(1)
    assert run.data.params["model.num_experts"] == "3" and run.data.params["data.tasks.0.column"] == "click"
    assert run.data.params == flat_params(rec)
    want = history_series(store, 1)
    assert {k for k, _ in want} == set(run.data.metrics)
    for key in {k for k, _ in want}:
        hist = client.get_metric_history(run.info.run_id, key)
        steps = {m.step: m.value for m in hist}
        expected = {e: v for (k, e), v in want.items() if k == key}
        assert set(steps) == set(expected) == {1, 2, 3}, key
        for e, v in expected.items():
            assert (math.isnan(v) and math.isnan(steps[e])) or steps[e] == pytest.approx(v, rel=1e-12), (key, e)
    arts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert arts == {"model", "gate_summary.csv"}
    assert {a.path for a in client.list_artifacts(run.info.run_id, "model")} == {
        "model/model.pt", "model/model.json", "model/preprocessor.json"}
    # artifacts beside the database, not in whatever folder the command ran in
    assert (tmp_path / "elsewhere" / "mlflow-artifacts").is_dir()
    assert any("no model files" in n for n in report.runs[1].notes)
    assert client.list_artifacts(found["2"].info.run_id) == []

    again = export_mlflow(store, [1], tracking_uri=uri)           # replaces, does not duplicate
    assert again.runs[0].replaced
    assert [r.data.tags["mmoe.run_id"] for r in client.search_runs([exp.experiment_id])].count("1") == 1


def test_mlflow_default_is_a_sqlite_file_in_the_store(store, tmp_path, monkeypatch):
    pytest.importorskip("mlflow", reason="mmoe[mlflow] is not installed")
    monkeypatch.chdir(tmp_path)
    report = export_mlflow(store, [1])
    assert report.location == f"sqlite:///{(store.home / 'mlflow.db').resolve()}"
    assert (store.home / "mlflow.db").is_file() and not (tmp_path / "mlruns").exists()


def test_gate_summary_rows_sum_to_one_per_task(store):
    g = gate_summary(store, 1)
    assert set(g["task"]) == {"click", "kind", "score"} and len(g) == 9
    for _, part in g.groupby("task"):
        assert part["mean_weight"].sum() == pytest.approx(1.0, abs=1e-5)
        assert part["dominant_share"].sum() == pytest.approx(1.0)
    assert gate_summary(store, 2) is None


def test_tensorboard_scalars_read_back(store, tmp_path):
    pytest.importorskip("tensorboard", reason="mmoe[tensorboard] is not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    report = export_tensorboard(store, [1], tmp_path / "tb")
    folder = tmp_path / "tb" / "run1-tracked-run"
    assert report.runs[0].where == str(folder) and str(tmp_path / "tb") in "\n".join(report.lines())
    export_tensorboard(store, [1], tmp_path / "tb")                # again: replaced, not appended
    assert len(list(folder.glob("events.out.tfevents.*"))) == 1
    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    acc.Reload()
    want = history_series(store, 1)
    assert set(acc.Tags()["scalars"]) == {k for k, _ in want}
    assert "click/val/auc" in acc.Tags()["scalars"]
    for key in acc.Tags()["scalars"]:
        got = {e.step: e.value for e in acc.Scalars(key)}
        expected = {e: v for (k, e), v in want.items() if k == key}
        assert set(got) == set(expected) == {1, 2, 3}, key
        for e, v in expected.items():
            assert got[e] == pytest.approx(v, rel=1e-6, abs=1e-7), (key, e)   # stored as float32


def test_refusals(store, tmp_path):
    with pytest.raises(TrackingError, match="no such run"):
        export_tensorboard(store, [99], tmp_path / "tb")
    (tmp_path / "file").write_text("x")
    with pytest.raises(TrackingError, match="cannot write"):
        export_tensorboard(store, [1], tmp_path / "file" / "tb")
    rid = store.create_run("busy", dataset="tiny", data_config=DataConfig(tasks=TASKS).to_dict(),
                           model_config=ModelConfig().to_dict(), train_config=TrainConfig().to_dict())
    store.set_status(rid, "running")
    try:
        with pytest.raises(TrackingError, match="still running"):
            export_tensorboard(store, [rid], tmp_path / "tb")
    finally:
        store.finish(rid, "cancelled", final_metrics={}, epochs=0, train_seconds=0.0, samples_per_second=0.0)


@pytest.mark.parametrize("to, module", [("mlflow", "mlflow"), ("mlflow", "sqlalchemy"),
                                        ("tensorboard", "tensorboard")])
def test_a_missing_extra_says_what_to_install(store, tmp_path, monkeypatch, to, module):
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(MissingExtra) as e:
        (export_mlflow(store, [1], f"sqlite:///{tmp_path}/m.db") if to == "mlflow"
         else export_tensorboard(store, [1], tmp_path / "tb"))
    assert f'pip install "mmoe[{to}]"' in str(e.value) and "\n" not in str(e.value)
