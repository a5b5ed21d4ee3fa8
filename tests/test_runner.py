"""Stored runs end to end, and training as a background job (what the dashboard does)."""
import time

import pytest
import torch

from mmoe.config import DataConfig, ModelConfig, TaskSpec, TrainConfig
from mmoe.data import prepare
from mmoe.jobs import JobManager
from mmoe.runner import load_run, predict_frame, run_training, submit_training
from mmoe.store import RunStore

TASKS = (TaskSpec("click", "binary", positive="yes"), TaskSpec("kind", "multiclass"))
MC = ModelConfig(num_experts=3, expert_hidden=(8,), tower_hidden=(4,))


@pytest.fixture
def manager():
    m = JobManager(1)
    yield m
    m.shutdown(wait=True, cancel=True)


def test_run_training_stores_everything(tiny_frame, mmoe_home):
    store = RunStore(mmoe_home)
    s = run_training(tiny_frame, DataConfig(tasks=TASKS), MC, TrainConfig(epochs=2, batch_size=32), store=store,
                     name="first", dataset="tiny")
    assert s.status == "finished" and s.run_id == 1
    rec = store.get_run(1)
    assert (rec.name, rec.dataset, rec.arch, rec.status, rec.epochs) == ("first", "tiny", "mmoe", "finished", 2)
    assert rec.data_summary["parameters"] > 0
    assert set(rec.final_metrics) == {"click", "kind"}
    h = store.history(1)
    assert set(h["split"]) == {"train", "val"} and h["epoch"].max() == 2
    model, pre = load_run(store, 1)
    assert pre.task_dims == {"click": 1, "kind": 3}
    out = predict_frame(store, 1, tiny_frame.head(5))
    assert len(out) == 5 and "gate:kind:e2" in out and "target:click" in out


def test_background_job_progress_and_store(tiny_frame, mmoe_home, manager):
    data = prepare(tiny_frame, DataConfig(tasks=TASKS))
    job = submit_training(manager, tiny_frame, DataConfig(tasks=TASKS), MC, TrainConfig(epochs=3, batch_size=16),
                          store_home=mmoe_home, name="bg", dataset="tiny", data=data)
    assert job.wait(60)
    snap = job.snapshot()
    assert snap.status == "finished" and snap.run_id is not None
    assert snap.epoch == 3 and snap.fraction == 1.0
    assert len(snap.curves["train"]["click"]) == 3 and len(snap.curves["val"]["kind"]) == 3
    assert RunStore(mmoe_home).get_run(snap.run_id).status == "finished"


def test_cancel_background_job_within_a_second(tiny_frame, mmoe_home, manager):
    big = tiny_frame.sample(20_000, replace=True, random_state=0).reset_index(drop=True)
    job = submit_training(manager, big, DataConfig(tasks=TASKS), MC, TrainConfig(epochs=1000, batch_size=8),
                          store_home=mmoe_home, name="long")
    deadline = time.time() + 30
    while job.snapshot().run_id is None or job.snapshot().samples_seen == 0:
        assert time.time() < deadline
        time.sleep(0.05)
    t = time.time()
    job.cancel()
    assert job.wait(5)
    assert time.time() - t < 1.0
    snap = job.snapshot()
    assert snap.status == "cancelled"
    rec = RunStore(mmoe_home).get_run(snap.run_id)
    assert rec.status == "cancelled"


def test_jobs_queue_one_at_a_time(tiny_frame, mmoe_home, manager):
    data = prepare(tiny_frame, DataConfig(tasks=TASKS))
    jobs = [submit_training(manager, tiny_frame, DataConfig(tasks=TASKS), ModelConfig(arch=a, num_experts=2),
                            TrainConfig(epochs=1), store_home=mmoe_home, data=data)
            for a in ("mmoe", "omoe", "shared-bottom")]
    assert [j.status for j in jobs][1:] == ["queued", "queued"] or jobs[0].done
    for j in jobs:
        assert j.wait(60)
    assert [j.snapshot().status for j in jobs] == ["finished"] * 3
    arches = sorted(r.arch for r in RunStore(mmoe_home).list_runs())
    assert arches == ["mmoe", "omoe", "shared-bottom"]


def test_failure_inside_training_is_recorded(tiny_frame, mmoe_home, monkeypatch):
    import mmoe.runner as runner

    def boom(*a, **k):
        raise RuntimeError("out of memory (simulated)")

    monkeypatch.setattr(runner, "fit", boom)
    store = RunStore(mmoe_home)
    s = run_training(tiny_frame, DataConfig(tasks=TASKS), MC, TrainConfig(epochs=1), store=store)
    assert s.status == "failed" and "simulated" in s.message
    assert store.get_run(s.run_id).status == "failed"
    assert "simulated" in store.get_run(s.run_id).error


@pytest.mark.gpu
def test_gpu_training_matches_contract(tiny_frame, mmoe_home):
    s = run_training(tiny_frame, DataConfig(tasks=TASKS), MC, TrainConfig(epochs=2, device="cuda"),
                     store=RunStore(mmoe_home))
    assert s.status == "finished"
    assert torch.cuda.is_available()


def test_cancelled_run_metrics_describe_the_stored_model(tiny_frame, mmoe_home):
    """A run cancelled mid-epoch keeps weights updated after its last full epoch: its final metrics
    must be those of the stored model (the one its predictions and Inspect charts come from)."""
    import threading

    import numpy as np
    import pandas as pd

    from mmoe.train import Callback

    cancel = threading.Event()

    class CancelMidEpoch(Callback):
        def on_batch_end(self, state):
            if state.epoch == 3 and state.batch == state.batches - 1:
                cancel.set()

    store = RunStore(mmoe_home)
    tasks = (TaskSpec("click", "binary", positive="yes"), TaskSpec("score", "regression"))
    s = run_training(tiny_frame, DataConfig(tasks=tasks), MC, TrainConfig(epochs=10, batch_size=8, lr=0.05),
                     store=store, callbacks=[CancelMidEpoch()], cancel_event=cancel)
    assert s.status == "cancelled" and s.epochs == 2
    frame = pd.read_parquet(store.artifact_dir(s.run_id) / "predictions.parquet")
    y, p = frame["target:score"].to_numpy(float), frame["pred:score"].to_numpy(float)
    ok = ~np.isnan(y)
    rmse = float(np.sqrt(np.mean((y[ok] - p[ok]) ** 2)))
    assert store.get_run(s.run_id).final_metrics["score"]["rmse"] == pytest.approx(rmse, rel=1e-4)
    assert s.metrics["score"]["rmse"] == pytest.approx(rmse, rel=1e-4)
