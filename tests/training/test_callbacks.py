"""mmoe.training.callbacks: divergence, early stopping with restore, the time budget, stops and on_train_end."""

import pytest
import torch

from mmoe.config import DataConfig, TaskSpec
from mmoe.data import prepare
from mmoe.training import Callback, fit

TASKS = (TaskSpec("click", "binary", positive="yes"), TaskSpec("score", "regression"),
         TaskSpec("kind", "multiclass"))
from training_helpers import Recorder, _fit


def test_divergence_is_detected(data):
    rec = Recorder()
    model, cfg = _fit(data, epochs=5)
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(float("nan"))
    res = fit(model, data, cfg, callbacks=[rec])
    assert res.status == "diverged"
    assert "NaN" in res.message and "learning rate" in res.message
    assert res.stop_reason == res.message
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
    assert res.stop_reason == (f"early stopping at epoch {res.epochs}: the val loss did not improve for 3 epochs; "
                               f"best epoch {res.best_epoch} restored")
    best = res.history[res.best_epoch - 1]["val"]
    assert res.metrics == best


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


def test_time_budget_stops_after_the_batch_that_passes_it(data):
    """max_seconds=0: the first batch passes the budget; that epoch is still evaluated and kept."""
    rec = Recorder()
    model, cfg = _fit(data, epochs=50, max_seconds=0.0)
    res = fit(model, data, cfg, callbacks=[rec])
    assert res.status == "finished" and res.epochs == 1
    assert rec.events.count("batch") == 1 and res.stop_reason == "time budget of 0 s reached in epoch 1"
    assert "val" in res.history[0] and res.metrics == res.history[0]["val"]


def test_a_callback_can_stop_the_run(data):
    class StopAtEpoch2(Callback):
        def on_epoch_end(self, s):
            if s.epoch == 2:
                s.request_stop("enough")

    model, cfg = _fit(data, epochs=10)
    res = fit(model, data, cfg, callbacks=[StopAtEpoch2()])
    assert (res.status, res.epochs, res.message, res.stop_reason) == ("finished", 2, "enough", "enough")


def test_why_a_run_stopped(data):
    import threading

    model, cfg = _fit(data, epochs=2)
    assert fit(model, data, cfg).stop_reason == "all 2 epochs done"

    class CancelInEpoch2(Callback):
        def __init__(self):
            self.event = threading.Event()

        def on_epoch_end(self, s):
            self.event.set()

    cb = CancelInEpoch2()
    model, cfg = _fit(data, epochs=5, early_stopping_patience=2)
    res = fit(model, data, cfg, callbacks=[cb], cancel_event=cb.event)
    assert res.status == "cancelled"
    assert res.stop_reason == "cancelled by the user in epoch 2; best epoch 1 restored"
