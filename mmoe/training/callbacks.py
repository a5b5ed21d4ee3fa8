"""The callback API of ``fit`` and the training policies written as callbacks.

Callbacks follow skorch: a base class of no-op hooks; ``on_train_end`` always runs, also when the
run is cancelled, diverges or raises. A callback sees the live ``TrainState``; it stops a run with
``state.request_stop(message)`` (the loop ends after the batch or the epoch in progress) and
declares divergence by raising ``FloatingPointError``.

The policies ``fit`` always installs, before the caller's callbacks:
    DivergenceGuard  a non-finite loss, or a validation loss EXPLODED x that of a constant predictor
    EarlyStopping    tracks the best epoch; with a patience, stops and restores the best weights
    TimeBudget       stops when the training seconds pass ``TrainConfig.max_seconds``
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field

from torch import Tensor, nn

EXPLODED = 20.0   # validation loss this many times a constant predictor's counts as diverged


class Callback:
    """No-op hooks; override what you need. ``state`` is the live ``TrainState``."""

    def on_train_begin(self, state: "TrainState") -> None: ...
    def on_epoch_begin(self, state: "TrainState") -> None: ...
    def on_batch_end(self, state: "TrainState") -> None: ...
    def on_epoch_end(self, state: "TrainState") -> None: ...
    def on_train_end(self, state: "TrainState") -> None: ...


@dataclass
class TrainState:
    epochs: int
    batches: int                       # batches per epoch
    tasks: list[str]
    device: str
    n_train: int = 0
    epoch: int = 0                     # 1-based epoch in progress / just finished
    batch: int = 0                     # batches done in this epoch
    samples_seen: int = 0
    train_seconds: float = 0.0         # time spent in training steps (excludes evaluation)
    started: float = field(default_factory=time.perf_counter)
    batch_losses: dict[str, Tensor] = field(default_factory=dict)   # last batch, per task (not synced)
    epoch_metrics: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)  # split -> task -> metric
    history: list[dict] = field(default_factory=list)               # one epoch_metrics per epoch
    status: str = "running"
    message: str = ""
    best_epoch: int | None = None
    monitor_loss: float = math.nan     # weighted loss of the epoch just finished (validation, else training)
    monitor_split: str = "train"       # which split monitor_loss is from
    stop_requested: bool = False       # a callback asked the loop to end (see request_stop)
    restored_epoch: int | None = None  # the epoch whose weights the model holds at the end, when restored

    def request_stop(self, message: str) -> None:
        """End the run after the batch or epoch in progress, as finished, saying why."""
        self.stop_requested, self.message = True, message

    @property
    def samples_per_second(self) -> float:
        return self.samples_seen / self.train_seconds if self.train_seconds > 0 else 0.0

    @property
    def eta_seconds(self) -> float | None:
        done = (self.epoch - 1) * self.batches + self.batch
        total = self.epochs * self.batches
        elapsed = time.perf_counter() - self.started
        if done <= 0:
            return None
        return elapsed / done * (total - done)

    def batch_loss_values(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.batch_losses.items()}


class DivergenceGuard(Callback):
    """Diverged: a non-finite monitored loss, or a validation loss above EXPLODED x ``baseline``
    (the loss of the best constant prediction) + 1."""

    def __init__(self, baseline: float):
        self.baseline = baseline

    def on_epoch_end(self, state: TrainState) -> None:
        loss = state.monitor_loss
        if not math.isfinite(loss):
            raise FloatingPointError(f"validation after epoch {state.epoch}")
        if state.monitor_split == "val" and loss > EXPLODED * self.baseline + 1.0:
            raise FloatingPointError(
                f"epoch {state.epoch}: the validation loss exploded to {loss:.3g}, more than "
                f"{EXPLODED:g}x the {self.baseline:.3g} of predicting the base rate")


class EarlyStopping(Callback):
    """Tracks the best epoch (lowest monitored loss). With ``patience``: keeps a copy of the best
    weights, stops after ``patience`` epochs without improvement, and puts the best weights back
    when the run ends as finished or cancelled."""

    def __init__(self, model: nn.Module, patience: int | None):
        self.model, self.patience = model, patience
        self.best_loss, self.best_state, self.stale = math.inf, None, 0

    def on_epoch_end(self, state: TrainState) -> None:
        if state.monitor_loss < self.best_loss:
            self.best_loss, state.best_epoch, self.stale = state.monitor_loss, state.epoch, 0
            if self.patience:
                self.best_state = copy.deepcopy(self.model.state_dict())
        else:
            self.stale += 1
        if self.patience and self.stale >= self.patience:
            state.request_stop(f"early stopping at epoch {state.epoch}: the {state.monitor_split} loss did not "
                               f"improve for {self.stale} epochs; best epoch {state.best_epoch} restored")

    def on_train_end(self, state: TrainState) -> None:
        if self.best_state is not None and state.status in ("finished", "cancelled"):
            self.model.load_state_dict(self.best_state)
            state.restored_epoch = state.best_epoch


class TimeBudget(Callback):
    """Stops the run once its training seconds pass ``max_seconds`` (checked after every batch)."""

    def __init__(self, max_seconds: float):
        self.max_seconds = max_seconds

    def on_batch_end(self, state: TrainState) -> None:
        if state.train_seconds > self.max_seconds and not state.stop_requested:
            state.request_stop(f"time budget of {self.max_seconds:g} s reached in epoch {state.epoch}")
