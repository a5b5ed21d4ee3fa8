"""One stored training run, end to end: prepare -> create run -> fit -> save artifacts.

The command line and the dashboard's background jobs both call ``run_training``,
so a run behaves the same wherever it was started. Also: loading a stored run's
model and preprocessing back, and scoring a new frame with it.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch

from mmoe.config import DataConfig, ModelConfig, TrainConfig
from mmoe.data import DataError, PreparedData, Preprocessor, prepare, prepare_for_prediction
from mmoe.nn import TabularModel, build_model, count_parameters
from mmoe.nn.rng import private_rng
from mmoe.runs.artifacts import MODEL, MODEL_META, PREDICTIONS, PREPROCESSOR, damaged
from mmoe.runs.predictions import ROW, TRAIN_SAMPLE_ROWS, decorate_predictions
from mmoe.runs.status import ACTIVE, ENDED_BADLY
from mmoe.runs.store import RunStore, store_home
from mmoe.training import (
    Callback,
    FitResult,
    TrainState,
    fit,
    predict,
    resolve_device,
    resolve_schedule,
    schedule_text,
    schedule_warnings,
)
from mmoe.training.class_weights import resolve_pos_weights
from mmoe.training.distributed import world as current_world
from mmoe.training.evaluate import fused_forward

MAX_STORED_PREDICTION_ROWS = 200_000   # per validation / test split
MAX_TRAIN_SAMPLE_ROWS = TRAIN_SAMPLE_ROWS   # the training split is stored as a seeded sample of at most this many


@dataclass
class RunSummary:
    run_id: int | None
    status: str
    epochs: int = 0
    train_seconds: float = 0.0
    samples_per_second: float = 0.0
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    message: str = ""
    stop_reason: str = ""
    warnings: list[str] = field(default_factory=list)   # e.g. a batch size that leaves too few steps
    schedule: str = ""                                  # the batch size and epochs used, and why
    world_size: int = 1                                 # processes that trained it (torchrun), see ``distributed``
    device: str = ""                                    # where it trained (cpu, cuda:0)
    step: str = ""                                      # which training step ran (``FitResult.step``)


class StoreCallback(Callback):
    """Writes each epoch's metrics to the store as soon as the epoch ends."""

    def __init__(self, store: RunStore, run_id: int):
        self.store, self.run_id = store, run_id

    def on_epoch_end(self, state: TrainState) -> None:
        self.store.log_epoch(self.run_id, state.epoch, state.epoch_metrics)


def _prepare(source: "DataSource", store: RunStore | None, stop=None):
    """In memory, or (``stream``) the table's cache in the store. Under torchrun rank 0 writes the cache while
    the others wait, then they open it (give every node the same --store on a shared folder)."""
    if not source.stream:
        return prepare(source.source, source.config)
    from mmoe.data.stream_cache import prepare_streamed

    root = (store.home if store is not None else store_home(source.store)) / "cache"
    world = current_world()
    if world is not None and not world.leader:
        world.barrier()
        return prepare_streamed(source.source, source.config, root)
    data = prepare_streamed(source.source, source.config, root, stop=stop)
    if world is not None:
        world.barrier()
    return data


def _train_rows(data) -> int:
    return int(data.split_counts["train"]) if getattr(data, "streamed", False) else len(data.splits["train"])


def _streamed_predictions(model: TabularModel, data, device: torch.device) -> pd.DataFrame:
    """A streamed table's stored predictions: its first validation rows (at most PREDICTION_ROWS), kept raw."""
    frame = data.sample()
    pre = data.preprocessor
    x_num, x_cat = pre.transform_features(frame)
    raw, gates = predict(model, x_num, x_cat, device=device)
    return decorate_predictions(frame, pre, raw, gates, split="val", y=pre.transform_targets(frame))


def _train_sample(data: PreparedData) -> torch.Tensor:
    """At most MAX_TRAIN_SAMPLE_ROWS training rows, drawn with the split's seed (the same rows every time)."""
    idx = data.splits["train"]
    if len(idx) <= MAX_TRAIN_SAMPLE_ROWS:
        return idx
    pick = np.random.default_rng(data.config.seed).choice(len(idx), MAX_TRAIN_SAMPLE_ROWS, replace=False)
    return idx[torch.from_numpy(np.sort(pick))]


def _prediction_frame(model: TabularModel, data: PreparedData, device: torch.device) -> pd.DataFrame:
    """Validation and test rows and a sample of training rows: raw features, targets, predictions and
    per-task gate weights, with ``_split`` saying which split each row is from."""
    if getattr(data, "streamed", False):
        return _streamed_predictions(model, data, device)
    parts = [(split, data.splits[split][:MAX_STORED_PREDICTION_ROWS]) for split in ("val", "test")
             if split in data.splits and len(data.splits[split])]
    parts.append(("train", _train_sample(data)))
    frames = []
    forward = fused_forward(model, data.tasks, device, bf16=device.type == "cuda")
    for split, idx in parts:
        raw, gates = predict(model, data.x_num, data.x_cat, device=device, idx=idx, forward=forward)
        frames.append(decorate_predictions(data.frame.iloc[idx.numpy()].reset_index(drop=False)
                                           .rename(columns={"index": ROW}),
                                           data.preprocessor, raw, gates, split=split,
                                           y=({n: data.y[n][idx] for n in data.y},
                                              {n: data.mask[n][idx] for n in data.mask})))
    return pd.concat(frames, ignore_index=True)


@dataclass(frozen=True)
class DataSource:
    """A table not prepared yet: a path, upload bytes or DataFrame, and the DataConfig to prepare it
    with. ``run_training`` prepares it before creating the run, so bad data creates no run."""

    source: Any
    config: DataConfig
    stream: bool = False          # a table larger than memory: read in blocks, cached on disk (``--stream``)
    store: str | None = None      # where that cache goes when no RunStore is open (torchrun's other ranks)

    @property
    def name(self) -> str:
        return Path(self.source).name if isinstance(self.source, (str, Path)) else "dataframe"


def run_training(data: PreparedData | DataSource, model_config: ModelConfig, train_config: TrainConfig, *,
                 store: RunStore | None = None, name: str | None = None, dataset: str | None = None,
                 callbacks: Sequence[Callback] = (), cancel_event: threading.Event | None = None,
                 on_run_created: Callable[[int], None] | None = None,
                 experiment: tuple[int, int] | None = None) -> RunSummary:
    """Train and store one run on ``data`` (prepared, or a source with its config; the stored data
    settings are ``data.config``). Bad data raises ``DataError`` before any run is created; a failure
    during training is recorded in the run (status failed) and returned, not raised.
    ``dataset``: the name shown for the data (default: the file's name); ``experiment``: (experiment id,
    point index) when the run belongs to an experiment.

    Under torchrun (a joined process group, see ``mmoe.training.distributed``) every process calls this
    with the same arguments; rank 0 stores the run, the others train their shards and store nothing."""
    world = current_world()
    if world is not None and not world.leader:
        return _follow(data, model_config, train_config, callbacks, cancel_event)
    store = store or RunStore()
    store.require_writable()     # a read-only store refuses before the data is even read
    if isinstance(data, DataSource):
        from mmoe.data.streaming import PreparationCancelled

        dataset = dataset or data.name
        try:
            data = _prepare(data, store, cancel_event.is_set if cancel_event is not None else None)
        except PreparationCancelled as e:        # a streamed table's passes: no run was created
            return RunSummary(None, "cancelled", message=str(e), stop_reason=f"{e}; no run was created")
    dataset = dataset or data.source.get("filename") or "dataframe"
    data_config = data.config
    # an automatic batch size / number of epochs is chosen now, from the training rows, and stored as used
    n_train = _train_rows(data)
    warnings = schedule_warnings(train_config, n_train)
    train_config = resolve_schedule(train_config, n_train)
    # a "balanced" pos_weight is derived now from the training split; the run stores the setting and the value
    fit_config = resolve_pos_weights(train_config, data)
    device = resolve_device(train_config.device)
    # the initial weights are a function of the seed (one seed, one result), drawn from a generator of the
    # run's own: torch's global one is left alone, and no other thread's draws change them (``mmoe.nn.rng``)
    with private_rng(train_config.seed):
        model = build_model(model_config, data)
    summary = dict(data.summary())
    summary["parameters"] = count_parameters(model)
    summary["device"] = str(device)
    summary["schedule"] = schedule_text(train_config, n_train)
    summary["warnings"] = warnings
    if fit_config.pos_weight:
        summary["pos_weight"] = dict(fit_config.pos_weight)
    if world is not None:
        summary["distributed"] = world.describe()
    run_id = store.create_run(name, dataset=dataset,
                              data_config=data_config.to_dict(), model_config=model_config.to_dict(),
                              train_config=train_config.to_dict(), data_summary=summary,
                              experiment_id=experiment[0] if experiment else None,
                              experiment_point=experiment[1] if experiment else None)
    if on_run_created is not None:
        on_run_created(run_id)
    store.save_text(run_id, PREPROCESSOR, data.preprocessor.to_json())
    store.set_status(run_id, "running")
    result: FitResult | None = None
    try:
        # a cancelled run holds the weights of its last evaluated epoch (see fit), so its final metrics
        # (that epoch's) describe the stored model, its predictions and its charts
        result = fit(model, data, fit_config, callbacks=[StoreCallback(store, run_id), *callbacks],
                     cancel_event=cancel_event)
        keep = result.epochs > 0 and result.status != "diverged"
        if keep:
            store.save_model(run_id, {k: v.detach().cpu() for k, v in model.state_dict().items()},
                             model.meta)
        # cancelled: recorded as soon as the weights are safe, then the predictions (a cancel takes
        # effect at once; a finished run is recorded with everything it stores)
        if keep and result.status != "cancelled":
            store.save_frame(run_id, PREDICTIONS, _prediction_frame(model, data, device))
        store.finish(run_id, result.status, final_metrics=result.metrics, epochs=result.epochs,
                     train_seconds=result.train_seconds, samples_per_second=result.samples_per_second,
                     error=result.message if result.status in ENDED_BADLY else None,
                     best_epoch=result.best_epoch, stop_reason=result.stop_reason,
                     summary_update={"step": result.step})
        if keep and result.status == "cancelled":
            store.save_frame(run_id, PREDICTIONS, _prediction_frame(model, data, device))
        return RunSummary(run_id, result.status, result.epochs, result.train_seconds, result.samples_per_second,
                          result.metrics, result.message, result.stop_reason, warnings, summary["schedule"],
                          world.size if world is not None else 1, result.device, result.step)
    except Exception as e:  # recorded, not raised: the caller reports the run's status
        msg = f"{type(e).__name__}: {e}"
        epochs = result.epochs if result else 0
        if store.get_run(run_id).status not in ACTIVE:   # the failure came after finish()
            return RunSummary(run_id, store.get_run(run_id).status, epochs, message=msg)
        store.finish(run_id, "failed", final_metrics=result.metrics if result else {}, epochs=epochs,
                     train_seconds=result.train_seconds if result else 0.0,
                     samples_per_second=result.samples_per_second if result else 0.0, error=msg,
                     stop_reason=f"failed: {msg}")
        return RunSummary(run_id, "failed", epochs, message=msg, stop_reason=f"failed: {msg}")


def _follow(data: PreparedData | DataSource, model_config: ModelConfig, train_config: TrainConfig,
            callbacks: Sequence[Callback], cancel_event: threading.Event | None) -> RunSummary:
    """A torchrun process other than rank 0: the same preparation, weights and schedule as rank 0, its
    shard of every step, nothing stored (rank 0 stores the run)."""
    if isinstance(data, DataSource):
        data = _prepare(data, None)
    train_config = resolve_schedule(train_config, _train_rows(data))
    with private_rng(train_config.seed):
        model = build_model(model_config, data)
    result = fit(model, data, train_config, callbacks=callbacks, cancel_event=cancel_event)
    return RunSummary(None, result.status, result.epochs, result.train_seconds, result.samples_per_second,
                      result.metrics, result.message, result.stop_reason, world_size=current_world().size,
                      device=result.device, step=result.step)


def load_run(store: RunStore, run_id: int) -> tuple[TabularModel, Preprocessor]:
    """The stored model (eval mode, CPU) and fitted preprocessing of a run; a file that exists but does
    not make a model raises ``ArtifactError`` naming it."""
    state, meta = store.load_model_state(run_id)
    folder = store.artifact_dir(run_id)
    try:
        model = TabularModel(meta)
    except Exception as e:   # a model.json that parses but does not describe a model
        raise damaged(folder / MODEL_META, e) from None
    try:
        model.load_state_dict(state)
    except Exception as e:   # weights of another shape / missing tensors
        raise damaged(folder / MODEL, e) from None
    model.eval()
    try:
        pre = Preprocessor.from_json(store.load_text(run_id, PREPROCESSOR))
    except (DataError, TypeError, KeyError, ValueError, AttributeError) as e:
        raise damaged(folder / PREPROCESSOR, e) from None
    return model, pre


BACKENDS = ("torch", "onnx")   # what computes the model's outputs in predict_frame


def score(model: TabularModel, x_num: torch.Tensor, x_cat: torch.Tensor, *, backend: str = "torch",
          device: str = "cpu", pre: Preprocessor | None = None) -> tuple[dict, torch.Tensor | None]:
    """The model's raw outputs per task [n, d] and gates [t, n, e] (None without gates), computed by torch
    (on ``device``) or by onnxruntime on the model's exported ONNX graph (``backend="onnx"``, CPU)."""
    if backend == "onnx":
        from mmoe.runs.onnx_export import onnx_predict
        return onnx_predict(model, x_num, x_cat, pre=pre)
    if backend != "torch":
        raise ValueError(f"backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    dev = resolve_device(device)
    model.to(dev)
    return predict(model, x_num, x_cat, device=dev)


def predict_frame(store: RunStore, run_id: int, df: pd.DataFrame, *, device: str = "cpu",
                  backend: str = "torch") -> pd.DataFrame:
    """Score a new frame with a stored run: the input columns plus pred/prob/gate (and target) columns.
    ``backend``: torch, or onnx (onnxruntime on the exported graph; the same columns, see ``score``)."""
    model, pre = load_run(store, run_id)
    x_num, x_cat, y, mask = prepare_for_prediction(df, pre)
    raw, gates = score(model, x_num, x_cat, backend=backend, device=device, pre=pre)
    return decorate_predictions(df.reset_index(drop=True), pre, raw, gates,
                                y=(y, mask) if y is not None else None)


class JobProgressCallback(Callback):
    """Publishes a training run's progress to a background job (throttled per batch)."""

    def __init__(self, ctx, every_seconds: float = 0.25):
        self.ctx, self.every, self._last = ctx, every_seconds, 0.0

    def _publish(self, state: TrainState, **extra) -> None:
        self.ctx.update(epoch=state.epoch - (0 if extra.pop("epoch_done", False) else 1), epochs=state.epochs,
                        batch=state.batch, batches=state.batches, samples_seen=state.samples_seen,
                        samples_per_second=state.samples_per_second, eta_seconds=state.eta_seconds, **extra)

    def on_train_begin(self, state: TrainState) -> None:
        self._publish(state, message=f"training on {state.device}")

    def on_batch_end(self, state: TrainState) -> None:
        now = time.perf_counter()
        if now - self._last >= self.every:
            self._last = now
            self._publish(state, extra={"batch_loss": state.batch_loss_values()})

    def on_epoch_end(self, state: TrainState) -> None:
        for split, tasks in state.epoch_metrics.items():
            for task, m in tasks.items():
                self.ctx.append_curve(split, task, m.get("loss", float("nan")))
        self._publish(state, epoch_done=True, last_metrics=state.epoch_metrics)

    def on_train_end(self, state: TrainState) -> None:
        self._publish(state, epoch_done=state.batch == state.batches, message=state.message or state.status)


def submit_training(manager, data: PreparedData | DataSource, model_config: ModelConfig,
                    train_config: TrainConfig, *, store_home=None, name: str | None = None,
                    dataset: str | None = None):
    """Queue a stored training run as a background job (what the dashboard's Train button does).

    Returns the ``Job``; its progress snapshot carries the run id once the run exists."""
    device = str(resolve_device(train_config.device))

    def work(ctx) -> str:
        store = RunStore(store_home)
        if isinstance(data, DataSource) and data.stream:
            ctx.update(message="preparing the streamed table: two passes over the file, once per file and "
                               "settings (then kept in the store's cache)")
        summary = run_training(data, model_config, train_config, store=store, name=name,
                               dataset=dataset, callbacks=[JobProgressCallback(ctx)],
                               cancel_event=ctx.cancel_event, on_run_created=ctx.set_run_id)
        if summary.status in ENDED_BADLY:
            ctx.update(message=summary.message)
            if summary.status == "failed":
                raise RuntimeError(summary.message)
        return summary.status

    return manager.submit(work, name=name or f"{model_config.arch} on {dataset or 'data'}", device=device)
