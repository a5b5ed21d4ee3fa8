"""``fit`` for a table that lives on disk (``mmoe.data.stream_cache.StreamedData``): the same step,
policies, callbacks and FitResult as the in-memory loop, with the data read one block at a time.

Each epoch visits the cache's blocks in a seeded random order and each block's training rows in a
seeded random order; batches are cut from that stream (a batch may span two blocks), so an epoch has
ceil(training rows / batch) steps as in memory. Validation reads the blocks again and scores their
validation rows; only the outputs of the validation rows are held (a few numbers per row), never the
table. Memory is one block plus the model, whatever the number of rows.
"""
from __future__ import annotations

import math
import threading
import time
from typing import Sequence

import numpy as np
import torch
from torch import nn

from mmoe.config import TrainConfig
from mmoe.data.streaming import SPLIT_CODES
from mmoe.tasks import masked_loss, transform
from mmoe.training.callbacks import Callback, DivergenceGuard, EarlyStopping, TimeBudget, TrainState
from mmoe.training.class_weights import resolve_pos_weights
from mmoe.training.device import auto_threads, resolve_device
from mmoe.training.distributed import world as current_world
from mmoe.training.evaluate import gate_entropy, predict
from mmoe.training.schedule import resolve_schedule
from mmoe.training.step import TrainStep


def _baseline(data) -> float:
    """The weighted loss of the best constant prediction on the validation rows (as ``baseline_loss``)."""
    sums = {t.column: [0.0, 0.0, 0] for t in data.tasks}       # sum, sum of squares, count (binary/regression)
    counts: dict[str, np.ndarray] = {}
    for b in range(data.n_blocks):
        blk = data.block(b, features=False)
        val = blk["split"] == SPLIT_CODES["val"]
        for t in data.tasks:
            m = blk["mask"][t.column].numpy() & val
            y = blk["y"][t.column].numpy()[m].astype(np.float64)
            if t.kind == "multiclass":
                c = np.bincount(y.astype(np.int64), minlength=data.task_dims[t.column])
                counts[t.column] = counts.get(t.column, 0) + c
            else:
                s = sums[t.column]
                s[0], s[1], s[2] = s[0] + y.sum(), s[1] + (y * y).sum(), s[2] + len(y)
    total = 0.0
    for t in data.tasks:
        if t.kind == "multiclass":
            c = counts.get(t.column)
            if c is None or not c.sum():
                continue
            f = c[c > 0] / c.sum()
            loss = float(-(f * np.log(f)).sum())
        else:
            s, ss, n = sums[t.column]
            if not n:
                continue
            mean = s / n
            if t.kind == "binary":
                p = min(max(mean, 1e-6), 1 - 1e-6)
                loss = -(p * math.log(p) + (1 - p) * math.log(1 - p))
            else:
                loss = max(ss / n - mean * mean, 0.0)
        total += t.weight * loss
    return total


EVAL_ROWS = 4096       # rows per scoring batch of the validation pass
AUC_BINS = 1 << 20     # a streamed binary task's AUC: scores binned to 1e-6 (ties within a bin count half)


class _TaskScore:
    """A task's validation metrics accumulated block by block in constant memory (the in-memory metrics'
    definitions; AUC from a histogram of the scores of positives and negatives)."""

    def __init__(self, spec, n_classes: int, scale: tuple[float, float]):
        self.spec, self.k, self.scale = spec, n_classes, scale
        self.n, self.loss, self.logloss, self.correct = 0, 0.0, 0.0, 0
        self.sse = self.sae = self.sy = self.syy = 0.0
        self.hist = np.zeros((2, AUC_BINS), dtype=np.int64) if spec.kind == "binary" else None
        self.cm = np.zeros((n_classes, n_classes), dtype=np.int64) if spec.kind == "multiclass" else None

    def add(self, raw: torch.Tensor, y: torch.Tensor, m: torch.Tensor) -> None:
        n = int(m.sum())
        if not n:
            return
        kind = self.spec.kind
        self.loss += float(masked_loss(kind, raw, y, m)) * n
        self.n += n
        pred = transform(kind, raw[m], self.scale).double().numpy()
        yt = y[m].numpy()
        if kind == "binary":
            p = np.clip(pred, 1e-7, 1 - 1e-7)
            pos = yt > 0.5
            self.logloss -= float(np.log(np.where(pos, p, 1 - p)).sum())
            self.correct += int(((p >= 0.5) == pos).sum())
            b = np.minimum((p * AUC_BINS).astype(np.int64), AUC_BINS - 1)
            self.hist[1] += np.bincount(b[pos], minlength=AUC_BINS)
            self.hist[0] += np.bincount(b[~pos], minlength=AUC_BINS)
        elif kind == "regression":
            yt = yt.astype(np.float64) * self.scale[1] + self.scale[0]
            err = pred - yt
            self.sse += float((err * err).sum())
            self.sae += float(np.abs(err).sum())
            self.sy += float(yt.sum())
            self.syy += float((yt * yt).sum())
        else:
            p = np.clip(pred, 1e-7, 1.0)
            p /= p.sum(1, keepdims=True)
            yi = yt.astype(np.int64)
            self.logloss -= float(np.log(p[np.arange(len(yi)), yi]).sum())
            self.cm += np.bincount(yi * self.k + p.argmax(1), minlength=self.k * self.k).reshape(self.k, self.k)

    def reduce(self, world, device) -> None:
        """Sum this accumulator over the processes (each scored its own blocks)."""
        scalars = world.sum_(torch.tensor([self.n, self.loss, self.logloss, self.correct, self.sse, self.sae,
                                           self.sy, self.syy], dtype=torch.float64, device=device)).tolist()
        self.n, self.correct = int(scalars[0]), int(scalars[3])
        self.loss, self.logloss, self.sse, self.sae, self.sy, self.syy = (scalars[1], scalars[2], *scalars[4:])
        for name in ("hist", "cm"):
            a = getattr(self, name)
            if a is not None:
                setattr(self, name, world.sum_(torch.from_numpy(a).to(device)).cpu().numpy())

    def result(self) -> dict[str, float]:
        if not self.n:
            return {}
        out = {"loss": self.loss / self.n}
        if self.spec.kind == "binary":
            neg, pos = self.hist
            P, N = pos.sum(), neg.sum()
            below = np.cumsum(neg) - neg                       # negatives scored in lower bins
            auc = float((pos * below).sum() + 0.5 * (pos * neg).sum()) / (P * N) if P and N else float("nan")
            out.update(auc=auc, logloss=self.logloss / self.n, accuracy=self.correct / self.n)
        elif self.spec.kind == "regression":
            sst = self.syy - self.sy * self.sy / self.n
            out.update(rmse=float(np.sqrt(self.sse / self.n)), mae=self.sae / self.n,
                       r2=1.0 - self.sse / sst if self.n > 1 and sst > 0 else float("nan"))
        else:
            tp = np.diag(self.cm).astype(np.float64)
            prec = np.divide(tp, self.cm.sum(0), out=np.zeros_like(tp), where=self.cm.sum(0) > 0)
            rec = np.divide(tp, self.cm.sum(1), out=np.zeros_like(tp), where=self.cm.sum(1) > 0)
            f1 = np.divide(2 * prec * rec, prec + rec, out=np.zeros_like(tp), where=(prec + rec) > 0)
            out.update(accuracy=float(tp.sum() / self.n), macro_f1=float(f1.mean()), logloss=self.logloss / self.n)
        if not all(np.isfinite(v) for k, v in out.items() if k != "auc"):
            out = {k: float("nan") for k in out}
        return out


def _evaluate(model, data, step: TrainStep, device, stop, world=None) -> dict | None:
    """Every validation row, block by block: the metrics of ``_TaskScore`` and the mean gate entropy. Under
    torchrun each process scores every world-size-th block and the accumulators are summed."""
    scores = {t.column: _TaskScore(t, data.task_dims[t.column], data.preprocessor.target_scale(t.column))
              for t in data.tasks}
    ent_sum, rows = torch.zeros(len(scores), dtype=torch.float64), 0
    mine = range(data.n_blocks) if world is None else range(world.rank, data.n_blocks, world.size)
    for b in mine:
        if stop():
            return None
        blk = data.block(b)
        idx = torch.from_numpy(np.flatnonzero(blk["split"] == SPLIT_CODES["val"]))
        if not len(idx):
            continue
        # scored in batches of one fixed size (the last padded with repeats of the first row, dropped after):
        # every new batch shape costs the CPU kernels a cached plan, which over hundreds of blocks adds up
        n, pad = len(idx), -len(idx) % EVAL_ROWS
        padded = torch.cat([idx, idx[:1].expand(pad)]) if pad else idx
        out, gates = predict(model, blk["x_num"], blk["x_cat"], device=device, batch_size=EVAL_ROWS, idx=padded,
                             bf16=step.autocast, forward=step.fused.forward if step.fused is not None else None)
        out = {k: v[:n] for k, v in out.items()}
        gates = gates[:, :n] if gates is not None else None
        for name, sc in scores.items():
            sc.add(out[name], blk["y"][name][idx], blk["mask"][name][idx])
        if gates is not None:
            ent_sum += gate_entropy(gates).double() * len(idx)
        rows += len(idx)
    if world is not None:
        for sc in scores.values():
            sc.reduce(world, device)
        packed = world.sum_(torch.cat([ent_sum, torch.tensor([float(rows)], dtype=torch.float64)]).to(device)).cpu()
        ent_sum, rows = packed[:-1], int(packed[-1])
    res = {name: sc.result() for name, sc in scores.items()}
    if hasattr(model, "gate"):       # MMoE / OMoE (Shared-Bottom has no gate), the same on every process
        for t, name in enumerate(scores):
            res[name]["gate_entropy"] = float(ent_sum[t] / max(rows, 1))
    return res


def fit_blocks(model: nn.Module, data, config: TrainConfig, *, callbacks: Sequence[Callback] = (),
               cancel_event: threading.Event | None = None):
    from mmoe.training.loop import (
        _agree,
        _finite_or_raise,
        _LastEpoch,
        after_batch,
        agree_at_epoch_end,
        diverged,
        end_of_training,
        fit_result,
        train_metrics,
    )

    world = current_world()      # torchrun: each process reads every world-size-th block of the epoch's order
    device = resolve_device(config.device)
    if world is not None:
        device = world.device(device)
    if device.type == "cpu":
        torch.set_num_threads(config.threads or auto_threads())
    gen = torch.Generator().manual_seed(config.seed)      # the same block order on every process
    tasks, names = list(data.tasks), [t.column for t in data.tasks]
    n_train = int(data.split_counts["train"])
    config = resolve_schedule(config, n_train)
    config = resolve_pos_weights(config, data)   # "balanced": one pass over the blocks' targets
    bs = min(config.batch_size, max(n_train, 1))
    batches = max(1, math.ceil(n_train / bs))
    model.to(device)
    model.train()
    step = TrainStep(model, tasks, config, device, world=world)
    size = world.size if world is not None else 1
    local_bs = max(1, math.ceil(bs / size))      # each process's part of the global batch
    state = TrainState(epochs=config.epochs, batches=batches, tasks=names, device=str(device), n_train=n_train)
    callbacks = [DivergenceGuard(_baseline(data)), EarlyStopping(model, config.early_stopping_patience),
                 *([TimeBudget(config.max_seconds)] if config.max_seconds is not None else []), *callbacks]
    cancelled = lambda: cancel_event is not None and cancel_event.is_set()  # noqa: E731
    last = _LastEpoch(model, cancel_event is not None or world is not None)
    spare = None             # one training row: what a process that ran out of rows computes on (weight 0)
    if world is not None:
        for b in range(data.n_blocks):
            blk = data.block(b)
            tr = np.flatnonzero(blk["split"] == SPLIT_CODES["train"])[:1]
            if len(tr):
                spare = [blk["x_num"][tr], blk["x_cat"][tr], *[blk["y"][n][tr] for n in names],
                         *[blk["mask"][n][tr] for n in names]]
                break
    touched = False

    def batches_of_epoch():
        """(x_num, x_cat, ys, masks) batches of ``local_bs`` rows over this process's blocks in a seeded order."""
        carry = None
        order = torch.randperm(data.n_blocks, generator=gen).tolist()
        for b in order[world.rank::size] if world is not None else order:
            blk = data.block(b)
            tr = torch.from_numpy(np.flatnonzero(blk["split"] == SPLIT_CODES["train"]))
            tr = tr[torch.randperm(len(tr), generator=gen)]
            part = [blk["x_num"][tr], blk["x_cat"][tr], *[blk["y"][n][tr] for n in names],
                    *[blk["mask"][n][tr] for n in names]]
            carry = part if carry is None else [torch.cat([c, p]) for c, p in zip(carry, part)]
            while len(carry[0]) >= local_bs:
                yield [c[:local_bs] for c in carry]
                carry = [c[local_bs:] for c in carry]
        if carry is not None and len(carry[0]):
            yield carry

    try:
        for cb in callbacks:
            cb.on_train_begin(state)
        for epoch in range(1, config.epochs + 1):
            state.epoch, state.batch = epoch, 0
            for cb in callbacks:
                cb.on_epoch_begin(state)
            loss_sum = torch.zeros(len(tasks), device=device)
            seen = 0
            t0 = time.perf_counter()
            stream = batches_of_epoch()
            while True:
                batch = next(stream, None)
                share, rows = 1.0, 0 if batch is None else len(batch[0])
                if world is not None:     # every process takes part in every step, with or without rows
                    rows = int(world.sum_(torch.tensor([float(rows)], device=device)).item())
                    if rows == 0:
                        break
                    share = 0.0 if batch is None else len(batch[0]) / rows
                    batch = batch if batch is not None else spare
                elif batch is None:
                    break
                if world is None and cancelled():
                    state.status, state.message = "cancelled", f"cancelled by the user in epoch {epoch}"
                    break
                touched = True
                batch = [t.to(device, non_blocking=True) for t in batch]
                t_ = len(tasks)
                xb = batch[0]
                if step.fused is not None:
                    codes = step.fused.cat_codes(batch[1])
                    total, losses = step(xb, None, batch[2:2 + t_], batch[2 + t_:], codes=codes, share=share)
                else:
                    total, losses = step(xb, batch[1], batch[2:2 + t_], batch[2 + t_:], share=share)
                stop_all = cancel_all = False
                if world is not None:
                    total, losses, stop_all, cancel_all = _agree(world, total, losses, share,
                                                                 state.stop_requested, cancelled())
                loss_sum += losses * rows
                seen += rows
                state.batch += 1
                state.samples_seen += rows
                state.batch_losses = dict(zip(names, losses))
                if device.type == "cpu" or state.batch % 50 == 0:
                    _finite_or_raise(float(total), f"epoch {epoch}, batch {state.batch}")
                now = time.perf_counter()
                state.train_seconds += now - t0
                t0 = now
                if after_batch(state, callbacks, world, stop_all, cancel_all, epoch):
                    break
            if state.status == "cancelled":
                break
            train_loss = (loss_sum / max(seen, 1)).tolist()
            _finite_or_raise(sum(train_loss), f"epoch {epoch}")
            metrics = {"train": train_metrics(names, train_loss, step)}
            val = _evaluate(model, data, step, device, cancelled if world is None else (lambda: False), world)
            if val is None:
                state.status, state.message = "cancelled", f"cancelled by the user in epoch {epoch}"
                break
            metrics["val"] = val
            state.epoch_metrics = metrics
            state.history.append(metrics)
            state.monitor_split = "val"
            state.monitor_loss = sum(t.weight * val[n]["loss"] for t, n in zip(tasks, names) if "loss" in val[n])
            for cb in callbacks:
                cb.on_epoch_end(state)
            last.keep(epoch)
            touched = False
            if agree_at_epoch_end(world, state, cancelled, device, epoch) or state.stop_requested:
                break
        if state.status == "cancelled" and touched:
            last.restore()
        if state.status == "running":
            state.status = "finished"
    except FloatingPointError as e:
        diverged(state, e)
    except BaseException as e:
        state.status, state.message = "failed", f"{type(e).__name__}: {e}"
        raise
    finally:
        end_of_training(callbacks, state)
    return fit_result(state, step, device, "blocks from disk")
