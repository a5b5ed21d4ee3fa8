"""Stored runs end to end, and training as a background job (what the dashboard does).

A run is a function of its data, settings and ``TrainConfig.seed`` (initial weights included).
"""
import itertools
import json
import threading
import time

import pytest
import torch

from mmoe.cli import main as cli_main
from mmoe.config import DataConfig, ModelConfig, TaskSpec, TrainConfig
from mmoe.data import prepare
from mmoe.runs.jobs import JobManager
from mmoe.runs.predictions import rows_of_split
from mmoe.runs import runner
from mmoe.runs.runner import DataSource, load_run, predict_frame, run_training, submit_training
from mmoe.runs.store import RunStore, StoreError
from mmoe.training import Callback

TASKS = (TaskSpec("click", "binary", positive="yes"), TaskSpec("kind", "multiclass"))
MC = ModelConfig(num_experts=3, expert_hidden=(8,), tower_hidden=(4,))


@pytest.fixture
def manager():
    m = JobManager(1)
    yield m
    m.shutdown(wait=True, cancel=True)


def test_run_training_stores_everything(tiny_frame, mmoe_home):
    store = RunStore(mmoe_home)
    s = run_training(DataSource(tiny_frame, DataConfig(tasks=TASKS)), MC, TrainConfig(epochs=2, batch_size=32), store=store,
                     name="first", dataset="tiny")
    assert s.status == "finished" and s.run_id == 1
    rec = store.get_run(1)
    assert (rec.name, rec.dataset, rec.arch, rec.status, rec.epochs) == ("first", "tiny", "mmoe", "finished", 2)
    assert rec.data_summary["parameters"] > 0
    assert (rec.data_summary["device"], rec.data_summary["step"]) == ("cpu", "fused")   # the step: known after fit
    assert json.loads((store.artifact_dir(1) / "run.json").read_text())["run"]["data_summary"]["step"] == "fused"
    assert set(rec.final_metrics) == {"click", "kind"}
    h = store.history(1)
    assert set(h["split"]) == {"train", "val"} and h["epoch"].max() == 2
    model, pre = load_run(store, 1)
    assert pre.task_dims == {"click": 1, "kind": 3}
    out = predict_frame(store, 1, tiny_frame.head(5))
    assert len(out) == 5 and "gate:kind:e2" in out and "target:click" in out


def test_trained_run_reaches_its_quality(tiny_frame, mmoe_home):
    """30 epochs on the tiny frame learn both tasks. Measured with these seeds: click AUC 0.982,
    kind accuracy 0.975 on the 40 validation rows (one row = 2.5 points); thresholds a few points
    below. Two epochs reach only AUC ~0.4 and accuracy ~0.28, so a model that stops learning fails."""
    store = RunStore(mmoe_home)
    s = run_training(DataSource(tiny_frame, DataConfig(tasks=TASKS)), MC, TrainConfig(epochs=30, batch_size=32, lr=0.02, seed=0),
                     store=store)
    assert s.status == "finished" and s.epochs == 30
    assert s.metrics["click"]["auc"] >= 0.95 and s.metrics["click"]["accuracy"] >= 0.85
    assert s.metrics["kind"]["accuracy"] >= 0.92 and s.metrics["kind"]["loss"] <= 0.10
    rec = store.get_run(s.run_id)
    assert rec.final_metrics["click"]["auc"] == pytest.approx(s.metrics["click"]["auc"])
    h = store.history(s.run_id)
    val_loss = h[(h["split"] == "val") & (h["task"] == "kind") & (h["metric"] == "loss")].set_index("epoch")["value"]
    assert val_loss[30] < 0.2 * val_loss[1]   # the stored curve shows the learning
    # the stored model scores its own validation rows as well as training reported
    frame = rows_of_split(store.load_frame(s.run_id, "predictions.parquet"), "val")
    acc = (frame["pred:kind"] == tiny_frame.loc[frame["_row"], "kind"].to_numpy()).mean()
    assert acc == pytest.approx(s.metrics["kind"]["accuracy"])

    # the training rows are stored too (all 160 here), and each split's rows score as that split
    train = rows_of_split(store.load_frame(s.run_id, "predictions.parquet"), "train")
    assert len(train) == 160 and not set(train["_row"]) & set(frame["_row"])
    train_acc = (train["pred:kind"] == tiny_frame.loc[train["_row"], "kind"].to_numpy()).mean()
    assert train_acc >= 0.9


def test_stored_training_rows_are_a_seeded_bounded_sample(tiny_frame, mmoe_home, monkeypatch):
    """A training split larger than the bound is stored as a sample of exactly that many distinct
    training rows, drawn with the split seed: the same rows for the same split seed, other rows for another."""
    monkeypatch.setattr(runner, "MAX_TRAIN_SAMPLE_ROWS", 50)
    store = RunStore(mmoe_home)

    def sample(split_seed: int, seed: int) -> list[int]:
        s = run_training(DataSource(tiny_frame, DataConfig(tasks=TASKS, test_fraction=0.1, seed=split_seed)), MC,
                         TrainConfig(epochs=1, batch_size=32, seed=seed), store=store)
        frame = store.load_frame(s.run_id, "predictions.parquet")
        assert frame["_split"].value_counts().to_dict() == {"val": 40, "test": 20, "train": 50}
        rows = frame.loc[frame["_split"] == "train", "_row"].tolist()
        held_out = set(frame.loc[frame["_split"] != "train", "_row"])
        assert len(set(rows)) == 50 and not set(rows) & held_out
        return rows

    first = sample(3, 0)
    assert sample(3, 1) == first          # the model seed does not move the sample
    assert sample(4, 0) != first


def test_background_job_progress_and_store(tiny_frame, mmoe_home, manager):
    data = prepare(tiny_frame, DataConfig(tasks=TASKS))
    job = submit_training(manager, data, MC, TrainConfig(epochs=3, batch_size=16),
                          store_home=mmoe_home, name="bg", dataset="tiny")
    assert job.wait(60)
    snap = job.snapshot()
    assert snap.status == "finished" and snap.run_id is not None
    assert snap.epoch == 3 and snap.fraction == 1.0
    assert len(snap.curves["train"]["click"]) == 3 and len(snap.curves["val"]["kind"]) == 3
    assert RunStore(mmoe_home).get_run(snap.run_id).status == "finished"


def _wait_until(check, what: str, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.02)


def test_cancel_background_job(tiny_frame, mmoe_home, manager):
    big = tiny_frame.sample(20_000, replace=True, random_state=0).reset_index(drop=True)
    job = submit_training(manager, DataSource(big, DataConfig(tasks=TASKS)), MC, TrainConfig(epochs=1000, batch_size=8),
                          store_home=mmoe_home, name="long")
    _wait_until(lambda: job.snapshot().run_id is not None and job.snapshot().samples_seen > 0,
                "the job to start training")
    job.cancel()
    assert job.wait(30), "a cancelled training job must end"
    snap = job.snapshot()
    assert snap.status == "cancelled" and snap.cancel_requested and snap.error is None
    rec = RunStore(mmoe_home).get_run(snap.run_id)
    assert rec.status == "cancelled" and rec.epochs < 1000


class _CountBatches(Callback):
    """Counts batches, and those that ended after cancellation was requested."""

    def __init__(self, cancel_event: threading.Event):
        self.cancel_event, self.batches, self.after_cancel = cancel_event, 0, 0
        self.training = threading.Event()
        self.ended_as = None

    def on_batch_end(self, state):
        self.batches += 1
        if self.cancel_event.is_set():
            self.after_cancel += 1
        if self.batches == 5:
            self.training.set()

    def on_train_end(self, state):
        self.ended_as = state.status


def test_cancel_stops_training_within_one_batch(tiny_frame, mmoe_home, manager):
    """Cancelling a training job mid-epoch stops it at the next batch: at most the batch in flight
    when cancel() was called still runs."""
    big = tiny_frame.sample(20_000, replace=True, random_state=0).reset_index(drop=True)
    data = prepare(big, DataConfig(tasks=TASKS))
    counters: list[_CountBatches] = []

    def work(ctx):
        counters.append(_CountBatches(ctx.cancel_event))
        s = run_training(data, MC, TrainConfig(epochs=1000, batch_size=8),
                         store=RunStore(mmoe_home), callbacks=counters, cancel_event=ctx.cancel_event,
                         on_run_created=ctx.set_run_id)
        return s.status

    job = manager.submit(work, name="long")
    _wait_until(lambda: counters and counters[0].training.is_set(), "five training batches")
    job.cancel()
    assert job.wait(30), "a cancelled training job must end"
    (count,) = counters
    assert count.after_cancel <= 1, f"{count.after_cancel} batches ran after cancel()"
    assert count.ended_as == "cancelled"
    snap = job.snapshot()
    assert snap.status == "cancelled"
    rec = RunStore(mmoe_home).get_run(snap.run_id)
    assert rec.status == "cancelled" and rec.epochs == 0   # cancelled inside the first epoch (2000 batches)


def test_jobs_queue_one_at_a_time(tiny_frame, mmoe_home, manager):
    data = prepare(tiny_frame, DataConfig(tasks=TASKS))
    jobs = [submit_training(manager, data, ModelConfig(arch=a, num_experts=2),
                            TrainConfig(epochs=1), store_home=mmoe_home)
            for a in ("mmoe", "omoe", "shared-bottom")]
    assert [j.status for j in jobs][1:] == ["queued", "queued"] or jobs[0].done
    for j in jobs:
        assert j.wait(60)
    assert [j.snapshot().status for j in jobs] == ["finished"] * 3
    runs = sorted(RunStore(mmoe_home).list_runs(), key=lambda r: r.id)
    assert [r.arch for r in runs] == ["mmoe", "omoe", "shared-bottom"]
    for earlier, later in itertools.pairwise(runs):   # one at a time: each starts after the previous ended
        assert later.started_at >= earlier.finished_at


def test_failure_inside_training_is_recorded(tiny_frame, mmoe_home):
    """A callback that raises in the middle of training (user code at the public seam): the run is
    recorded as failed with the message, the epochs logged before stay, and nothing is raised."""

    class Boom(Callback):
        ended_as = None

        def on_epoch_end(self, state):
            if state.epoch == 2:
                raise RuntimeError("out of memory (simulated)")

        def on_train_end(self, state):
            Boom.ended_as = state.status

    store = RunStore(mmoe_home)
    s = run_training(DataSource(tiny_frame, DataConfig(tasks=TASKS)), MC, TrainConfig(epochs=5), store=store, callbacks=[Boom()])
    assert s.status == "failed" and "out of memory (simulated)" in s.message
    assert Boom.ended_as == "failed"   # training still reached on_train_end
    rec = RunStore(mmoe_home).get_run(s.run_id)
    assert rec.status == "failed" and "out of memory (simulated)" in rec.error and rec.finished_at
    assert 1 in set(store.history(s.run_id)["epoch"])
    with pytest.raises(StoreError, match="ended as failed before saving it.*simulated"):
        store.load_model_state(s.run_id)


def test_disk_full_while_saving_is_recorded(tiny_frame, tmp_path, monkeypatch, capsys):
    """The disk fills up while the model is saved (torch.save raises ENOSPC): the CLI exits 3 with one
    clear line, the run is recorded as failed with the reason, and no half-written file is left."""
    csv = tmp_path / "tiny.csv"
    tiny_frame.to_csv(csv, index=False)
    home = tmp_path / "store"

    def full(obj, f, *a, **k):   # writes part of the file, then the disk is full
        with open(f, "wb") as fh:
            fh.write(b"PK\x03\x04 partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    code = cli_main(["train", "--data", str(csv), "--task", "click:binary=yes", "--epochs", "2", "--batch-size", "64",
                     "--experts", "2", "--expert-hidden", "8", "--json", "--quiet", "--store", str(home)])
    out, err = capsys.readouterr()
    assert code == 3
    summary = json.loads(out.splitlines()[-1])
    assert summary["status"] == "failed" and "No space left on device" in summary["message"]
    assert "No space left on device" in err and "Traceback" not in err
    store = RunStore(home)
    rec = store.get_run(summary["run_id"])
    assert rec.status == "failed" and "No space left on device" in rec.error
    assert not store.has_artifact(rec.id, "model.pt") and not store.has_artifact(rec.id, "predictions.parquet")
    assert not [p.name for p in store.artifact_dir(rec.id).iterdir() if p.name.endswith(".tmp")]
    with pytest.raises(StoreError, match="ended as failed"):
        store.load_model_state(rec.id)


@pytest.mark.gpu
def test_gpu_training_matches_contract(tiny_frame, mmoe_home):
    s = run_training(DataSource(tiny_frame, DataConfig(tasks=TASKS)), MC, TrainConfig(epochs=2, device="cuda"),
                     store=RunStore(mmoe_home))
    assert s.status == "finished"
    assert torch.cuda.is_available()


def test_cancelled_run_metrics_describe_the_stored_model(tiny_frame, mmoe_home):
    """A run cancelled mid-epoch ends with the weights of its last evaluated epoch: its final metrics are
    that epoch's, and they describe the stored model (the one its predictions and Inspect charts come
    from; up to the bf16 evaluation of the epochs on a CPU with native bf16, as for a finished run)."""
    import threading

    import numpy as np
    import pandas as pd

    cancel = threading.Event()

    class CancelMidEpoch(Callback):
        def on_batch_end(self, state):
            if state.epoch == 3 and state.batch == state.batches - 1:
                cancel.set()

    store = RunStore(mmoe_home)
    tasks = (TaskSpec("click", "binary", positive="yes"), TaskSpec("score", "regression"))
    s = run_training(DataSource(tiny_frame, DataConfig(tasks=tasks)), MC, TrainConfig(epochs=10, batch_size=8, lr=0.05),
                     store=store, callbacks=[CancelMidEpoch()], cancel_event=cancel)
    assert s.status == "cancelled" and s.epochs == 2
    frame = rows_of_split(pd.read_parquet(store.artifact_dir(s.run_id) / "predictions.parquet"), "val")
    y, p = frame["target:score"].to_numpy(float), frame["pred:score"].to_numpy(float)
    ok = ~np.isnan(y)
    rmse = float(np.sqrt(np.mean((y[ok] - p[ok]) ** 2)))
    h = store.history(s.run_id)
    epoch2 = h[(h.epoch == 2) & (h.split == "val") & (h.task == "score") & (h.metric == "rmse")]["value"].item()
    assert store.get_run(s.run_id).final_metrics["score"]["rmse"] == s.metrics["score"]["rmse"] == epoch2
    assert s.metrics["score"]["rmse"] == pytest.approx(rmse, rel=5e-3)


def test_one_data_input_prepared_or_a_source(tiny_frame, tmp_path, mmoe_home):
    """run_training takes prepared data or a source with its config; the run stores that config and
    names the dataset after the file."""
    path = tmp_path / "tiny.csv"
    tiny_frame.to_csv(path, index=False)
    dc = DataConfig(tasks=TASKS, val_fraction=0.25)
    store = RunStore(mmoe_home)
    a = run_training(DataSource(path, dc), MC, TrainConfig(epochs=1), store=store)
    b = run_training(prepare(path, dc), MC, TrainConfig(epochs=1), store=store)
    for s in (a, b):
        rec = store.get_run(s.run_id)
        assert rec.dataset == "tiny.csv" and DataConfig.from_dict(rec.data_config) == dc


def test_a_dashboard_job_and_a_cli_run_with_the_same_settings_are_identical(tiny_frame, tmp_path, mmoe_home,
                                                                            manager, capsys):
    """One seed, one result across paths: the CLI run and a background job (the dashboard's Train button)
    given the CLI run's stored settings store bit-identical curves, metrics and weights."""
    path = tmp_path / "tiny.csv"
    tiny_frame.to_csv(path, index=False)
    assert cli_main(["train", "--data", str(path), "--task", "click:binary=yes", "--task", "kind:multiclass",
                     "--experts", "3", "--expert-hidden", "8", "--tower-hidden", "4", "--epochs", "3",
                     "--batch-size", "32", "--lr", "0.01", "--seed", "5", "--json", "--quiet"]) == 0
    capsys.readouterr()
    store = RunStore(mmoe_home)
    cli = store.get_run(1)
    job = submit_training(manager, DataSource(path, DataConfig.from_dict(cli.data_config)),
                          ModelConfig.from_dict(cli.model_config), TrainConfig.from_dict(cli.train_config),
                          store_home=mmoe_home, name="job", dataset="tiny.csv")
    assert job.wait(60) and job.snapshot().status == "finished"
    dash = store.get_run(job.snapshot().run_id)
    assert (dash.data_config, dash.model_config, dash.train_config) == (cli.data_config, cli.model_config,
                                                                       cli.train_config)
    assert dash.final_metrics == cli.final_metrics
    assert store.history(dash.id)["value"].tolist() == store.history(cli.id)["value"].tolist()
    a, _ = store.load_model_state(cli.id)
    b, _ = store.load_model_state(dash.id)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)



class _GlobalDraws(Callback):
    def on_batch_end(self, state):
        torch.rand(32)      # the dashboard's page thread building a model meanwhile


def test_other_threads_draws_do_not_reach_a_run(tiny_frame, mmoe_home, monkeypatch):
    """The failure this guards (seen in CI): "train again" from Inspect gave other metrics than the run it
    repeated, because the Train page, rerunning in another thread, drew initial weights from torch's
    global generator between the job's seeding and its build. Draws from and reseeding of the global
    generator, in the middle of the build and during training (with dropout), change nothing."""
    from mmoe.nn import model as model_module

    mc = ModelConfig(num_experts=3, expert_hidden=(8,), tower_hidden=(4,), dropout=0.2)
    tc = TrainConfig(epochs=2, batch_size=32, seed=9)
    store = RunStore(mmoe_home)
    quiet = run_training(DataSource(tiny_frame, DataConfig(tasks=TASKS)), mc, tc, store=store)
    init = model_module.StackedMLP.__init__

    def busy(self, *a, **kw):
        torch.rand(100)
        torch.manual_seed(0)
        init(self, *a, **kw)

    monkeypatch.setattr(model_module.StackedMLP, "__init__", busy)
    loud = run_training(DataSource(tiny_frame, DataConfig(tasks=TASKS)), mc, tc, store=store, callbacks=[_GlobalDraws()])
    assert loud.metrics == quiet.metrics
    a, _ = store.load_model_state(quiet.run_id)
    b, _ = store.load_model_state(loud.run_id)
    assert all(torch.equal(a[k], b[k]) for k in a)

def test_a_cancel_is_recorded_as_soon_as_the_weights_are_saved(tiny_frame, mmoe_home):
    """A cancelled run reads cancelled (its weights saved) before its predictions are written, and no
    evaluation pass runs after the cancel: on a million-row table the cancel takes effect in well under
    a second (bench/bench_cancel.py). A finished run is recorded with everything it stores."""
    import threading

    seen = []

    class Watching(RunStore):
        def save_frame(self, run_id, name, df):
            seen.append((self.get_run(run_id).status, self.has_artifact(run_id, "model.pt")))
            return super().save_frame(run_id, name, df)

    store = Watching(mmoe_home)
    cancel = threading.Event()

    class CancelInEpoch2(Callback):
        def on_batch_end(self, state):
            if state.epoch == 2:
                cancel.set()

    data = DataSource(tiny_frame, DataConfig(tasks=TASKS))
    s = run_training(data, MC, TrainConfig(epochs=5, batch_size=32), store=store, callbacks=[CancelInEpoch2()],
                     cancel_event=cancel)
    assert s.status == "cancelled" and s.epochs == 1 and seen == [("cancelled", True)]
    assert store.has_artifact(s.run_id, "predictions.parquet")
    seen.clear()
    assert run_training(data, MC, TrainConfig(epochs=1, batch_size=32), store=store).status == "finished"
    assert seen == [("running", True)]


def test_captions_say_whether_the_training_rows_are_a_sample():
    import pandas as pd

    from mmoe.runs.predictions import TRAIN_SAMPLE_ROWS, rows_text

    few = pd.DataFrame({"_split": ["val"] * 3 + ["train"] * 5})
    many = pd.DataFrame({"_split": ["val"] * 3 + ["train"] * TRAIN_SAMPLE_ROWS})
    assert rows_text(few) == "validation and training rows"
    assert rows_text(many) == "validation and training (sample) rows"
    assert rows_text(rows_of_split(many, "train")) == "training rows (a seeded sample of 20,000)"
    assert rows_text(rows_of_split(few, "train")) == "training rows"
    assert rows_text(rows_of_split(few)) == "validation rows"          # the evaluation split by default
