"""RunStore in one process: lifecycle, records, NaN metrics, renames, artifacts (ownership and
concurrency with real processes: ``test_store_processes``)."""
from __future__ import annotations

import math
import os
import sqlite3

import numpy as np
import pandas as pd
import pytest
import torch

from mmoe.runs.store import SCHEMA_VERSION, RunRecord, RunStore, StoreError

from store_helpers import _new


def test_home_from_env_and_schema_version(mmoe_home):
    store = RunStore()
    assert store.home == mmoe_home.resolve() and (mmoe_home / "runs.sqlite").is_file()
    # Storage-level facts with no public API: the on-disk schema version is the migration contract
    # between MMoE Lab versions, and WAL mode is what lets the dashboard read while a CLI training
    # writes (other journal modes block readers during each commit).
    con = sqlite3.connect(store.db_path)
    try:
        assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        con.close()


def test_store_from_a_newer_version_is_refused(tmp_path):
    RunStore(tmp_path).close()
    # A newer MMoE Lab wrote this store: simulated by its schema version (a raw write is the only way
    # to get a file from a version that does not exist yet).
    con = sqlite3.connect(tmp_path / "runs.sqlite")
    con.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    con.commit()
    con.close()
    with pytest.raises(StoreError, match="newer MMoE Lab"):
        RunStore(tmp_path)


def test_lifecycle_and_record(tmp_path):
    store = RunStore(tmp_path)
    rid = _new(store)
    rec = store.get_run(rid)
    assert isinstance(rec, RunRecord) and rec.id == rid and rec.name == f"run-{rid}"
    assert (rec.status, rec.arch, rec.dataset) == ("queued", "mmoe", "tiny.csv")
    assert rec.model_config["expert_hidden"] == [8, 4] and rec.data_summary == {"rows": 200}
    assert rec.created_at.endswith("+00:00") and rec.started_at is None
    assert rec.artifact_dir == tmp_path.resolve() / str(rid)

    store.set_status(rid, "running")
    assert store.get_run(rid).started_at is not None
    store.log_epoch(rid, 1, {"train": {"click": {"loss": 0.5}, "_all": {"loss": 0.5}},
                             "val": {"click": {"auc": 0.7, "gate_entropy": 1.2}}})
    store.finish(rid, "finished", final_metrics={"click": {"auc": np.float32(0.75)}}, epochs=1,
                 train_seconds=1.5, samples_per_second=100.0, best_epoch=1)
    rec = store.get_run(rid)
    assert rec.status == "finished" and rec.finished_at and rec.epochs == 1 and rec.best_epoch == 1
    assert rec.final_metrics == {"click": {"auc": pytest.approx(0.75)}}

    with pytest.raises(StoreError, match="cannot go from finished to running"):
        store.set_status(rid, "running")
    with pytest.raises(StoreError, match="unknown status"):
        store.set_status(rid, "done")
    q = _new(store)
    with pytest.raises(StoreError, match="from queued to finished"):
        store.finish(q, "finished", final_metrics={}, epochs=0, train_seconds=0, samples_per_second=0)
    with pytest.raises(StoreError, match="final status"):
        store.finish(q, "running", final_metrics={}, epochs=0, train_seconds=0, samples_per_second=0)
    store.set_status(q, "cancelled")
    assert store.get_run(q).status == "cancelled"
    with pytest.raises(StoreError, match="queued or running"):
        _new(store, status="finished")


def test_missing_run(tmp_path):
    store = RunStore(tmp_path)
    with pytest.raises(StoreError, match="run 7 does not exist") as e:
        store.get_run(7)
    assert isinstance(e.value, KeyError) and str(e.value) == "run 7 does not exist"
    for call in (lambda: store.set_status(7, "running"), lambda: store.history(7),
                 lambda: store.log_epoch(7, 1, {}), lambda: store.rename(7, "x"), lambda: store.delete(7)):
        with pytest.raises(StoreError, match="run 7 does not exist"):
            call()


def test_list_runs_and_runs_frame(tmp_path):
    store = RunStore(tmp_path)
    a = _new(store, "first")
    b = _new(store, "second", status="running", arch="omoe")
    store.finish(b, "finished", final_metrics={"click": {"auc": 0.8, "loss": 0.3}}, epochs=2,
                 train_seconds=2.0, samples_per_second=50.0)
    assert [r.id for r in store.list_runs()] == [b, a]
    assert [r.id for r in store.list_runs(status="queued")] == [a]
    df = store.runs_frame()
    assert list(df["id"]) == [b, a]
    assert {"name", "status", "arch", "metric:click:auc", "metric:click:loss"} <= set(df.columns)
    assert df.loc[df["id"] == b, "metric:click:auc"].item() == pytest.approx(0.8)
    assert math.isnan(df.loc[df["id"] == a, "metric:click:auc"].item())
    assert RunStore(tmp_path / "empty").runs_frame().empty


def test_nan_and_inf_metrics(tmp_path):
    store = RunStore(tmp_path)
    rid = _new(store, status="running")
    store.log_epoch(rid, 1, {"train": {"click": {"loss": 0.7}}})
    store.log_epoch(rid, 2, {"train": {"click": {"loss": float("nan"), "grad": float("inf")},
                                       "_all": {"loss": torch.tensor(float("-inf"))}}})
    store.finish(rid, "diverged", final_metrics={"click": {"loss": float("nan")}}, epochs=2,
                 train_seconds=1.0, samples_per_second=float("nan"), error="loss became NaN at epoch 2")
    h = store.history(rid)
    assert list(h.columns) == ["epoch", "split", "task", "metric", "value"]
    assert list(h["epoch"]) == [1, 2, 2, 2]
    assert h["value"].dtype == np.float64
    v = {(r.epoch, r.task, r.metric): r.value for r in h.itertuples()}
    assert v[(1, "click", "loss")] == pytest.approx(0.7)
    assert math.isnan(v[(2, "click", "loss")])
    assert v[(2, "click", "grad")] == math.inf and v[(2, "_all", "loss")] == -math.inf
    rec = store.get_run(rid)
    assert rec.status == "diverged" and "NaN" in rec.error
    assert math.isnan(rec.final_metrics["click"]["loss"]) and rec.samples_per_second is None

def test_rename_and_delete(tmp_path):
    store = RunStore(tmp_path)
    rid = _new(store, "old", status="running")
    store.rename(rid, "  new name ")
    assert store.get_run(rid).name == "new name"
    with pytest.raises(StoreError, match="empty"):
        store.rename(rid, "   ")
    store.log_epoch(rid, 1, {"train": {"click": {"loss": 0.1}}})
    store.save_text(rid, "preprocessor.json", "{}")
    with pytest.raises(StoreError, match="cancel it"):
        store.delete(rid)
    store.set_status(rid, "cancelled")
    store.delete(rid)
    assert not (tmp_path / str(rid)).exists()
    assert not store.exists(rid) and store.list_runs() == []
    with pytest.raises(StoreError, match=f"run {rid} does not exist"):
        store.history(rid)
    assert not RunStore(tmp_path).exists(rid)   # gone for other processes too
    assert _new(store) == rid + 1  # ids are never reused


def test_artifacts_round_trip(tmp_path):
    store = RunStore(tmp_path)
    rid = _new(store, status="running")
    model = torch.nn.Linear(3, 2)
    store.save_model(rid, model.state_dict(), {"arch": "mmoe", "tasks": {"click": 1}, "in_features": 3})
    state, meta = store.load_model_state(rid)
    assert meta["tasks"] == {"click": 1}
    fresh = torch.nn.Linear(3, 2)
    fresh.load_state_dict(state)
    assert torch.equal(fresh.weight, model.weight) and fresh.weight.device.type == "cpu"

    store.save_text(rid, "preprocessor.json", '{"a": 1}')
    assert store.load_text(rid, "preprocessor.json") == '{"a": 1}'
    df = pd.DataFrame({"click": [0.1, 0.9], "gate_click_0": [0.3, 0.7], "label": ["no", "yes"]})
    store.save_frame(rid, "predictions.parquet", df)
    pd.testing.assert_frame_equal(store.load_frame(rid, "predictions.parquet"), df)
    assert sorted(p.name for p in (tmp_path / str(rid)).iterdir()) == ["model.json", "model.pt",
                                                                       "predictions.parquet", "preprocessor.json",
                                                                       "run.json"]
    assert not [p for p in (tmp_path / str(rid)).iterdir() if p.name.endswith(".tmp")]
    with pytest.raises(StoreError, match="plain file name"):
        store.save_text(rid, "../escape.txt", "x")
    with pytest.raises(StoreError, match="run 99 does not exist"):
        store.save_text(99, "a.txt", "x")


def test_missing_artifact_message(tmp_path):
    store = RunStore(tmp_path)
    rid = _new(store, status="running")
    with pytest.raises(StoreError, match=f"run {rid} has no 'model.pt'.*still running"):
        store.load_model_state(rid)
    store.finish(rid, "failed", final_metrics={}, epochs=0, train_seconds=0.1, samples_per_second=0,
                 error="CUDA out of memory")
    with pytest.raises(StoreError, match="'predictions.parquet'.*ended as failed before saving it "
                                         r"\(CUDA out of memory\)"):
        store.load_frame(rid, "predictions.parquet")
    with pytest.raises(StoreError, match="run 42 does not exist"):
        store.load_text(42, "preprocessor.json")


def test_weights_only_refuses_pickled_objects(tmp_path):
    store = RunStore(tmp_path)
    rid = _new(store, status="running")
    store.save_model(rid, {"w": torch.ones(2), "evil": os.getcwd}, {})
    with pytest.raises(Exception):  # torch's UnpicklingError: arbitrary objects are not loaded
        store.load_model_state(rid)

def test_bad_metric_values(tmp_path):
    store = RunStore(tmp_path)
    rid = _new(store, status="running")
    with pytest.raises(StoreError, match="train/click/auc: 'high' is not a number"):
        store.log_epoch(rid, 1, {"train": {"click": {"auc": "high"}}})
    store.log_epoch(rid, 1, {"train": {"click": {"auc": None}}})
    assert math.isnan(store.history(rid)["value"].item())
    store.finish(rid, "finished", final_metrics={"click": {"auc": 0.5, "note": "ok"}}, epochs=1,
                 train_seconds=1.0, samples_per_second=1.0)
    assert store.get_run(rid).final_metrics["click"] == {"auc": 0.5, "note": "ok"}
