"""fit(): learning, masks, metrics, callbacks, cancellation, divergence, early stopping, determinism."""
import os
import threading

import numpy as np
import pytest
import torch

from mmoe.config import DataConfig, ModelConfig, TaskSpec, TrainConfig
from mmoe.data import prepare
from mmoe.model import build_model
from mmoe.tasks import compute_metrics, masked_loss
from mmoe.train import Callback, fit
from mmoe.train import auto_threads as real_auto_threads   # before conftest pins it

TASKS = (TaskSpec("click", "binary", positive="yes"), TaskSpec("score", "regression"),
         TaskSpec("kind", "multiclass"))


@pytest.fixture
def data(tiny_frame):
    return prepare(tiny_frame, DataConfig(tasks=TASKS, seed=0))


def _fit(data, mc=None, **kw):
    model = build_model(mc or ModelConfig(num_experts=3, expert_hidden=(16,), tower_hidden=(8,)), data)
    cfg = TrainConfig(**{"epochs": 3, "batch_size": 32, "lr": 1e-2, "device": "cpu", **kw})
    return model, cfg


class Recorder(Callback):
    def __init__(self):
        self.events = []

    def on_train_begin(self, s): self.events.append("begin")
    def on_epoch_end(self, s): self.events.append(f"epoch{s.epoch}")
    def on_batch_end(self, s): self.events.append("batch")
    def on_train_end(self, s): self.events.append(f"end:{s.status}")


@pytest.mark.parametrize("arch", ["mmoe", "omoe", "shared-bottom"])
def test_learns_all_task_kinds(data, arch):
    model, cfg = _fit(data, ModelConfig(arch=arch, num_experts=3, expert_hidden=(16,), tower_hidden=(8,)),
                      epochs=30)
    res = fit(model, data, cfg)
    assert res.status == "finished" and res.epochs == 30
    m = res.metrics
    assert m["click"]["auc"] > 0.8
    assert m["score"]["r2"] > 0.6
    assert m["kind"]["accuracy"] > 0.6
    assert set(m["kind"]) >= {"accuracy", "macro_f1", "logloss", "loss"}
    assert set(m["score"]) >= {"rmse", "mae", "r2"}
    first, last = res.history[0]["train"]["score"]["loss"], res.history[-1]["train"]["score"]["loss"]
    assert last < first
    if arch != "shared-bottom":
        assert "gate_entropy" in m["click"]


def test_reproducible_on_cpu(data):
    a = fit(*_fit(data), data, _fit(data)[1]) if False else None  # noqa: F841 (readability below)
    torch.manual_seed(1)
    m1, cfg = _fit(data)
    r1 = fit(m1, data, cfg)
    torch.manual_seed(2)
    m2, cfg = _fit(data)
    r2 = fit(m2, data, cfg)
    # the model is built before fit seeds, so seed model construction identically too
    torch.manual_seed(1)
    m3, cfg = _fit(data)
    r3 = fit(m3, data, cfg)
    assert r1.metrics == r3.metrics
    assert r1.metrics != r2.metrics


def test_callbacks_and_progress(data):
    rec = Recorder()
    model, cfg = _fit(data, epochs=2)
    res = fit(model, data, cfg, callbacks=[rec])
    n_batches = int(np.ceil(len(data.splits["train"]) / 32))
    assert rec.events[0] == "begin" and rec.events[-1] == "end:finished"
    assert rec.events.count("batch") == 2 * n_batches
    assert "epoch1" in rec.events and "epoch2" in rec.events
    assert res.samples_per_second > 0 and res.train_seconds > 0


def test_cancel_within_one_batch(data):
    ev = threading.Event()

    class CancelAfter(Callback):
        def __init__(self):
            self.batches = 0

        def on_batch_end(self, s):
            self.batches += 1
            if self.batches == 3:
                ev.set()

    cb, rec = CancelAfter(), Recorder()
    model, cfg = _fit(data, epochs=50)
    res = fit(model, data, cfg, callbacks=[cb, rec], cancel_event=ev)
    assert res.status == "cancelled"
    assert cb.batches == 3            # no batch ran after the event was set
    assert rec.events[-1] == "end:cancelled"


def test_divergence_is_detected(data):
    rec = Recorder()
    model, cfg = _fit(data, epochs=5)
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(float("nan"))
    res = fit(model, data, cfg, callbacks=[rec])
    assert res.status == "diverged"
    assert "NaN" in res.message and "learning rate" in res.message
    assert rec.events[-1] == "end:diverged"


def test_on_train_end_runs_when_a_callback_raises(data):
    rec = Recorder()

    class Boom(Callback):
        def on_epoch_end(self, s):
            raise RuntimeError("boom")

    model, cfg = _fit(data)
    with pytest.raises(RuntimeError, match="boom"):
        fit(model, data, cfg, callbacks=[rec, Boom()])
    assert rec.events[-1] == "end:failed"


def test_early_stopping_restores_best(data):
    model, cfg = _fit(data, epochs=200, lr=5e-2, early_stopping_patience=3)
    res = fit(model, data, cfg)
    assert res.epochs < 200
    assert "early stopping" in res.message
    best = res.history[res.best_epoch - 1]["val"]
    assert res.metrics == best


def test_uncertainty_weighting_and_adamw(data):
    model, cfg = _fit(data, task_weighting="uncertainty", optimizer="adamw", weight_decay=1e-3)
    assert fit(model, data, cfg).status == "finished"


def test_top_k_trains(data):
    model, cfg = _fit(data, ModelConfig(num_experts=4, expert_hidden=(8,), top_k=1, aux_loss_weight=0.1))
    res = fit(model, data, cfg)
    assert res.status == "finished"


def test_masked_loss_ignores_missing_rows():
    pred = torch.tensor([[10.0], [-10.0], [0.0]])
    y = torch.tensor([1.0, 0.0, 1.0])
    full = masked_loss("binary", pred, y, torch.tensor([True, True, True]))
    part = masked_loss("binary", pred, y, torch.tensor([True, True, False]))
    assert part < full and part < 1e-3
    assert masked_loss("regression", pred, y, torch.zeros(3, dtype=torch.bool)) == 0


def test_missing_targets_still_train_other_tasks(tiny_frame):
    df = tiny_frame.copy()
    df.loc[df.index[:120], "score"] = np.nan          # most rows lack the regression target
    data = prepare(df, DataConfig(tasks=TASKS[:2]))
    assert len(data.frame) == len(df)                 # rows are kept, not dropped
    model, cfg = _fit(data, epochs=10)
    res = fit(model, data, cfg)
    assert res.status == "finished" and res.metrics["click"]["auc"] > 0.7


def test_metrics_edge_cases():
    m = compute_metrics("binary", np.array([1, 1, 1]), np.array([0.2, 0.9, 0.5]))
    assert np.isnan(m["auc"]) and m["accuracy"] == pytest.approx(2 / 3)
    m = compute_metrics("multiclass", np.array([0, 2]), np.array([[0.9, 0.05, 0.05], [0.1, 0.1, 0.8]]), 3)
    assert m["accuracy"] == 1.0
    assert compute_metrics("regression", np.array([]), np.array([])) == {}


def test_exploding_but_finite_loss_counts_as_diverged(data):
    model, cfg = _fit(data, lr=9.0, epochs=20)
    res = fit(model, data, cfg)
    assert res.status == "diverged", res.history[-1]["val"]
    assert "exploded" in res.message and "learning rate" in res.message


def test_task_without_validation_labels_is_not_divergence(tiny_frame):
    df = tiny_frame.copy()
    data = prepare(df, DataConfig(tasks=TASKS[:2]))
    val = data.splits["val"]
    data.mask["score"][val] = False            # no labelled validation row for one task
    model, cfg = _fit(data, epochs=2)
    res = fit(model, data, cfg)
    assert res.status == "finished"
    assert res.metrics["score"] == {} or "loss" not in res.metrics["score"]
    assert "auc" in res.metrics["click"]


def test_streaming_batches_when_data_does_not_fit(data, monkeypatch):
    """Data too large for the device stays in host memory and goes over batch by batch;
    the result is the same as the resident path."""
    import mmoe.train as train_mod

    torch.manual_seed(3)
    m1, cfg = _fit(data)
    r1 = fit(m1, data, cfg)
    monkeypatch.setattr(train_mod, "fits_on_device", lambda d, dev: False)
    torch.manual_seed(3)
    m2, cfg = _fit(data)
    r2 = fit(m2, data, cfg)
    assert r1.metrics == r2.metrics


def test_fit_puts_torch_threads_back(data):
    """fit sets torch's intra-op threads for its run only (a library must not leave them changed)."""
    before = torch.get_num_threads()
    model, cfg = _fit(data, threads=before + 1, epochs=1)
    seen = []

    class Threads(Callback):
        def on_batch_end(self, s): seen.append(torch.get_num_threads())

    fit(model, data, cfg, callbacks=[Threads()])
    assert seen and set(seen) == {before + 1}
    assert torch.get_num_threads() == before


def test_auto_threads_counts_other_processes_not_its_own_threads(monkeypatch):
    import mmoe.train as train_mod

    # the real function (conftest pins mmoe.train.auto_threads to 1 for the other tests)
    monkeypatch.setattr(train_mod.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.setattr(train_mod, "_busy_elsewhere", lambda: 0.0)
    assert real_auto_threads() == 4
    monkeypatch.setattr(train_mod, "_busy_elsewhere", lambda: 2.6)
    assert real_auto_threads() == 1
    monkeypatch.setattr(train_mod, "_busy_elsewhere", lambda: 9.0)
    assert real_auto_threads() == 1
    # where the kernel's runnable count is not readable: the 1-minute load average
    monkeypatch.setattr(train_mod, "_busy_elsewhere", lambda: None)
    monkeypatch.setattr(train_mod.os, "getloadavg", lambda: (1.2, 0.0, 0.0))
    assert real_auto_threads() == 3


@pytest.mark.skipif(not os.path.exists("/proc/loadavg"), reason="needs Linux /proc")
def test_busy_elsewhere_excludes_this_process():
    from mmoe.train import _busy_elsewhere, _running_here

    assert _running_here() >= 1            # this thread, reading
    busy = _busy_elsewhere(samples=3, gap=0.0)
    assert busy is not None and busy >= 0.0
