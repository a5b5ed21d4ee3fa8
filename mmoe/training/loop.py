"""``fit()``: the epoch loop. Device placement, batching by index, the steps, per-epoch
evaluation, callbacks (the policies among them: see ``callbacks``) and cancellation.

The prepared tensors are moved to the device once; each batch is a contiguous slice of one
gather per epoch by a seeded permutation (no DataLoader, no per-sample Python). Data too large
for the GPU stays in pinned host memory and goes over batch by batch. ``on_train_end`` always
runs, also when the run is cancelled, diverges or raises.

Cancellation lands within one batch, one gather chunk or one evaluation chunk (each well under a
second on a million-row table): the cancel event is checked between them. A run cancelled before
its epoch is evaluated ends with the weights of its last evaluated epoch (kept at every epoch's end
when the run can be cancelled), so the epochs, the final metrics and the weights describe one model.
None of this changes a run that is not cancelled: the gathered rows and the arithmetic are the same.
"""
from __future__ import annotations

import contextlib
import copy
import math
import threading
import time
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from mmoe.config import TrainConfig
from mmoe.nn.rng import private_rng
from mmoe.training.callbacks import Callback, DivergenceGuard, EarlyStopping, TimeBudget, TrainState
from mmoe.training.class_weights import resolve_pos_weights
from mmoe.training.device import auto_threads, fits_on_device, resolve_device
from mmoe.training.distributed import world as current_world
from mmoe.training.evaluate import CPU_SCORING_BATCH, baseline_loss, evaluate
from mmoe.training.schedule import resolve_schedule
from mmoe.training.step import TrainStep


@dataclass
class FitResult:
    status: str                        # finished | cancelled | diverged | failed
    message: str
    epochs: int                        # completed epochs
    best_epoch: int | None
    train_seconds: float
    samples_per_second: float
    metrics: dict[str, dict[str, float]]   # final validation metrics per task
    history: list[dict]
    device: str
    step: str = "fused"                # fused: mmoe.nn.fused's hand-written step (on CUDA: ", CUDA graph, N replays"
    #                                    or ", no CUDA graph: <why>"); else "autograd (<why>)"
    placement: str = "resident"        # resident: the data lived on the device; streamed: batches copied from host
    stop_reason: str = ""              # why it ended, in words: all epochs done, early stopping at ..., cancelled, ...


def stop_reason(state: TrainState) -> str:
    """Why a run ended, in one line (stored with the run and shown wherever it is listed)."""
    if state.status == "finished" and not state.stop_requested:
        return f"all {len(state.history)} epochs done"
    reason = state.message or state.status
    if state.status == "cancelled" and state.restored_epoch:
        reason += f"; best epoch {state.restored_epoch} restored"
    return reason


GATHER_ROWS = 1 << 18     # rows per chunk of the epoch's gather (the cancel event is checked between chunks)



def _gather(t: torch.Tensor, perm: torch.Tensor, stop) -> torch.Tensor | None:
    """``t.index_select(0, perm)`` in chunks of rows (bit-identical), None when ``stop()`` turns true."""
    if perm.numel() <= GATHER_ROWS:
        return None if stop() else t.index_select(0, perm)
    out = t.new_empty((perm.numel(), *t.shape[1:]))
    for s in range(0, perm.numel(), GATHER_ROWS):
        if stop():
            return None
        torch.index_select(t, 0, perm[s:s + GATHER_ROWS], out=out[s:s + GATHER_ROWS])
    return out


class _LastEpoch:
    """The weights at the end of the last evaluated epoch (kept only for a run that can be cancelled)."""

    def __init__(self, model: nn.Module, enabled: bool):
        self.model, self.enabled, self.state, self.epoch = model, enabled, None, 0

    def keep(self, epoch: int) -> None:
        if not self.enabled:
            return
        with torch.no_grad():
            if self.state is None:
                self.state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            else:
                for k, v in self.model.state_dict().items():
                    self.state[k].copy_(v)
        self.epoch = epoch

    def restore(self) -> None:
        if self.state is not None:
            self.model.load_state_dict(self.state)


def _finite_or_raise(x: float, where: str) -> None:
    if not math.isfinite(x):
        raise FloatingPointError(where)


@contextlib.contextmanager
def deterministic_cuda():
    """Deterministic CUDA kernels for the run (one seed, one result on the GPU too), then back to the
    caller's setting. What is not deterministic on CUDA otherwise: the atomics of the embedding and
    top-k scatter backward (index_add_) and cuBLAS's split-K reductions (fixed by the workspace setting
    ``CUBLAS_WORKSPACE_CONFIG``, see ``device``). An op with no deterministic kernel warns, it does not fail."""
    enabled = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(enabled, warn_only=warn_only)


STOPPED_TOGETHER = "stopped together with another process that asked to stop"


def after_batch(state: TrainState, callbacks, world, stop_all: bool, cancel_all: bool, epoch: int) -> bool:
    """The end of a step: a cancel or a stop the processes agreed on, then the callbacks' on_batch_end.
    True: the epoch ends here (cancelled, or stopping)."""
    if cancel_all:
        state.status, state.message = "cancelled", f"cancelled by the user in epoch {epoch}"
        return True
    if stop_all and not state.stop_requested:
        state.request_stop(STOPPED_TOGETHER)
    for cb in callbacks:
        cb.on_batch_end(state)
    return stop_all or (world is None and state.stop_requested)


def agree_at_epoch_end(world, state: TrainState, cancelled, device, epoch: int) -> bool:
    """Under torchrun, after an epoch's callbacks: stop if any process asked to, cancel if any was cancelled
    (True: the run is cancelled and the caller ends the loop). Nothing to agree on for one process."""
    if world is None:
        return False
    stop_all, cancel_all = world.any(state.stop_requested, cancelled(), device=device)
    if cancel_all:
        state.status, state.message = "cancelled", f"cancelled by the user after epoch {epoch}"
        return True
    if stop_all and not state.stop_requested:
        state.request_stop(STOPPED_TOGETHER)
    return False


def diverged(state: TrainState, e: FloatingPointError) -> None:
    state.status = "diverged"
    what = str(e) if "exploded" in str(e) else f"the loss became NaN or infinite at {e}"
    state.message = (f"training diverged: {what}. "
                     "Lower the learning rate, standardise extreme targets, or use a smaller batch.")


def end_of_training(callbacks, state: TrainState) -> None:
    for cb in callbacks:
        try:
            cb.on_train_end(state)
        except Exception:   # a broken callback must not hide the run's own outcome
            pass


def fit_result(state: TrainState, step, device, placement: str) -> FitResult:
    """The FitResult of a finished loop: final metrics from the restored (or last) epoch."""
    final = {}
    if state.history:
        src = state.history[state.restored_epoch - 1] if state.restored_epoch else state.history[-1]
        final = copy.deepcopy(src.get("val", src.get("train", {})))
    return FitResult(status=state.status, message=state.message, epochs=len(state.history),
                     best_epoch=state.best_epoch, train_seconds=state.train_seconds,
                     samples_per_second=state.samples_per_second, metrics=final,
                     history=state.history, device=str(device),
                     step=step.describe(),
                     placement=placement, stop_reason=stop_reason(state))


def train_metrics(names, train_loss, step) -> dict[str, dict[str, float]]:
    """The epoch's training loss per task, with the learned loss weighting (if any) beside it."""
    out = {n: {"loss": loss} for n, loss in zip(names, train_loss)}
    for n, extra in step.epoch_diagnostics().items():
        out[n].update(extra)
    return out


def _agree(world, total, losses, share: float, stop: bool, cancel: bool):
    """One all-reduce per step: the global batch's total and per-task losses (each shard's weighted by its
    share of the rows) and whether any process asked to stop or was cancelled."""
    t = losses.numel()
    packed = torch.cat([total.reshape(1).float() * share, losses.float() * share,
                        torch.tensor([float(stop), float(cancel)], device=losses.device)])
    world.sum_(packed)
    return packed[0], packed[1:1 + t], bool(packed[1 + t] > 0), bool(packed[2 + t] > 0)


def fit(model: nn.Module, data, config: TrainConfig, *, callbacks: Sequence[Callback] = (),
        cancel_event: threading.Event | None = None) -> FitResult:
    """Train ``model`` on ``data`` (a ``PreparedData``). Never returns without calling on_train_end.

    On the CPU, torch's intra-op threads are set for the run (``config.threads`` or
    ``auto_threads()``) and put back to what they were afterwards. A table on disk (``StreamedData``,
    ``--stream``) trains block by block (``streamed.fit_blocks``)."""
    run = _fit
    if getattr(data, "streamed", False):
        from mmoe.training.streamed import fit_blocks as run  # the same contract, from disk
    world = current_world()
    device = resolve_device(config.device)
    device = world.device(device) if world is not None else device
    # dropout masks from the run's own generator (``mmoe.nn.rng``): other threads' draws do not change them;
    # they differ per shard, the epoch permutations (seeded in ``run``) do not
    with private_rng(config.seed + (world.rank if world is not None else 0), device):
        if device.type != "cpu":   # (a GPU run leaves the CPU threads alone)
            with deterministic_cuda():
                return run(model, data, config, callbacks=callbacks, cancel_event=cancel_event)
        threads = torch.get_num_threads()
        try:
            return run(model, data, config, callbacks=callbacks, cancel_event=cancel_event)
        finally:
            torch.set_num_threads(threads)


def _fit(model: nn.Module, data, config: TrainConfig, *, callbacks: Sequence[Callback],
         cancel_event: threading.Event | None) -> FitResult:
    world = current_world()            # data-parallel under torchrun (see ``distributed``), else None
    device = resolve_device(config.device)
    if world is not None:
        device = world.device(device)
    if device.type == "cpu":
        torch.set_num_threads(config.threads or auto_threads())
    gen = torch.Generator(device=device).manual_seed(config.seed)   # the epoch permutations, alike on every shard
    tasks = list(data.tasks)
    names = [t.column for t in tasks]
    # -- tensors to the device, once (or, if they would not fit, batch by batch) -----------
    resident = fits_on_device(data, device)
    home = device if resident else torch.device("cpu")
    x_num = data.x_num.to(home)
    x_cat = data.x_cat.to(home)
    ys = [data.y[n].to(home) for n in names]
    masks = [data.mask[n].to(home) for n in names]
    train_idx = data.splits["train"].to(home)
    val_idx = data.splits.get("val")
    n_train = int(train_idx.numel())
    config = resolve_schedule(config, n_train)   # an automatic batch size / number of epochs
    config = resolve_pos_weights(config, data)   # a "balanced" pos_weight: from the training split
    bs = min(config.batch_size, max(n_train, 1))
    batches = max(1, math.ceil(n_train / bs))

    model.to(device)
    model.train()
    step = TrainStep(model, tasks, config, device, world=world)
    # the fused step takes categorical columns as table positions: converted once
    codes = step.fused.cat_codes(x_cat) if step.fused is not None else None
    state = TrainState(epochs=config.epochs, batches=batches, tasks=names, device=str(device), n_train=n_train)
    val_rows = None
    initial_loss = baseline_loss(data, val_idx) if val_idx is not None and len(val_idx) else math.inf
    # the policies first, so the caller's callbacks see their decisions (best epoch, stop, restore)
    callbacks = [DivergenceGuard(initial_loss), EarlyStopping(model, config.early_stopping_patience),
                 *([TimeBudget(config.max_seconds)] if config.max_seconds is not None else []), *callbacks]
    sync_every = 1 if device.type == "cpu" else 50   # GPU: check the loss for NaN without a sync per batch
    cancelled = lambda: cancel_event is not None and cancel_event.is_set()  # noqa: E731
    # data-parallel: the processes stop together, on the flags they exchange at each step and epoch end
    # (see ``_agree``), never on a check only one of them made
    may_stop = cancelled if world is None else (lambda: False)
    last = _LastEpoch(model, cancel_event is not None or world is not None)
    touched = False      # weights changed since the last evaluated epoch (restored when cancelled)

    def cancel_now(epoch: int) -> None:
        state.status, state.message = "cancelled", f"cancelled by the user in epoch {epoch}"

    try:
        for cb in callbacks:
            cb.on_train_begin(state)
        for epoch in range(1, config.epochs + 1):
            state.epoch, state.batch = epoch, 0
            for cb in callbacks:
                cb.on_epoch_begin(state)
            perm = train_idx[torch.randperm(n_train, generator=gen, device=device).to(home)]
            # one gather per epoch (in chunks, to be cancellable); batches are then contiguous slices (views)
            xs = _gather(x_num, perm, may_stop)
            cs = None if xs is None else _gather(codes if codes is not None else x_cat, perm, may_stop)
            if cs is None:
                cancel_now(epoch)
                break
            y_ep, m_ep = [y.index_select(0, perm) for y in ys], [m.index_select(0, perm) for m in masks]
            if not resident:   # pinned host memory, so each batch's copy to the GPU is asynchronous
                pin = device.type == "cuda"
                xs, cs = (xs.pin_memory(), cs.pin_memory()) if pin else (xs, cs)
                y_ep = [y.pin_memory() if pin else y for y in y_ep]
                m_ep = [m.pin_memory() if pin else m for m in m_ep]
            loss_sum = torch.zeros(len(tasks), device=device)
            t0 = time.perf_counter()
            for b in range(batches):
                if may_stop():
                    cancel_now(epoch)
                    break
                touched = True
                rows = min(bs, n_train - b * bs)        # the global batch's rows
                lo, hi, share = world.share(rows) if world is not None else (0, rows, 1.0)
                sl = slice(b * bs + lo, b * bs + hi)
                batch = [xs[sl], cs[sl], *[y[sl] for y in y_ep], *[m[sl] for m in m_ep]]
                if not resident:
                    batch = [t.to(device, non_blocking=True) for t in batch]
                t_ = len(tasks)
                if codes is not None:
                    total, losses = step(batch[0], None, batch[2:2 + t_], batch[2 + t_:], codes=batch[1], share=share)
                else:
                    total, losses = step(batch[0], batch[1], batch[2:2 + t_], batch[2 + t_:], share=share)
                stop_all = cancel_all = False
                if world is not None:   # the global batch's losses; stop or cancel if any process asked
                    total, losses, stop_all, cancel_all = _agree(world, total, losses, share,
                                                                 state.stop_requested, cancelled())
                loss_sum += losses * rows
                state.batch = b + 1
                state.samples_seen += rows
                state.batch_losses = dict(zip(names, losses))
                if (b + 1) % sync_every == 0 or b + 1 == batches:
                    _finite_or_raise(float(total), f"epoch {epoch}, batch {b + 1}")
                now = time.perf_counter()
                state.train_seconds += now - t0
                t0 = now
                if after_batch(state, callbacks, world, stop_all, cancel_all, epoch):
                    break
            if state.status == "cancelled":
                break
            # -- evaluation ---------------------------------------------------------------
            train_loss = (loss_sum / max(min(state.batch * bs, n_train), 1)).tolist()
            _finite_or_raise(sum(train_loss), f"epoch {epoch}")
            # train split: the running loss of the epoch (a second pass over train rows would cost
            # a third of an epoch); validation: loss, metrics and gate entropy on every row
            metrics = {"train": train_metrics(names, train_loss, step)}
            if val_idx is not None and len(val_idx):
                if val_rows is None:
                    vi = val_idx.to(x_num.device)
                    val_rows = (x_num.index_select(0, vi), x_cat.index_select(0, vi))
                eval_bs = config.eval_batch_size if device.type != "cpu" else min(config.eval_batch_size,
                                                                                   CPU_SCORING_BATCH)
                metrics["val"] = evaluate(model, data, val_idx, device=device, batch_size=eval_bs,
                                          bf16=step.autocast, rows=val_rows,
                                          forward=step.fused.forward if step.fused is not None else None,
                                          stop=may_stop)
                if world is not None:     # the whole validation split on every process; rank 0's numbers decide
                    metrics["val"] = world.from_leader(metrics["val"])
                if metrics["val"] is None:     # cancelled while evaluating: the epoch is not counted
                    cancel_now(epoch)
                    break
            state.epoch_metrics = metrics
            state.history.append(metrics)
            state.monitor_split = split = "val" if "val" in metrics else "train"
            state.monitor_loss = sum(t.weight * metrics[split][n]["loss"] for t, n in zip(tasks, names)
                                     if "loss" in metrics[split][n])
            for cb in callbacks:          # DivergenceGuard raises; EarlyStopping / TimeBudget request a stop
                cb.on_epoch_end(state)
            last.keep(epoch)
            touched = False
            if agree_at_epoch_end(world, state, cancelled, device, epoch) or state.stop_requested:
                break
        if state.status == "cancelled" and touched:
            last.restore()    # the weights of the last evaluated epoch (none: the run keeps no model)
        if state.status == "running":
            state.status = "finished"
    except FloatingPointError as e:
        diverged(state, e)
    except BaseException as e:
        state.status = "failed"
        state.message = f"{type(e).__name__}: {e}"
        raise
    finally:
        end_of_training(callbacks, state)
    return fit_result(state, step, device, "resident" if resident else "streamed")
