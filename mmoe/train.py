"""``fit()``: the epoch loop. Device placement, batching by index, losses, metrics,
callbacks, cancellation, early stopping and divergence detection.

The prepared tensors are moved to the device once; each batch is a gather by a
slice of a shuffled index tensor on that device (no DataLoader, no per-sample
Python). On CUDA the forward pass runs under bf16 autocast. Callbacks follow
skorch: a base class of no-op hooks, and ``on_train_end`` always runs, also
when the run is cancelled, diverges or raises.
"""
from __future__ import annotations

import copy
import math
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from mmoe.config import ConfigError, TrainConfig
from mmoe.fused import FusedStep, unsupported as fused_unsupported
from mmoe.tasks import compute_metrics, masked_loss, transform



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
    step: str = "fused"                # fused: mmoe.fused's hand-written step; else "autograd (<why>)"
    placement: str = "resident"        # resident: the data lived on the device; streamed: batches copied from host memory


RESIDENT_SHARE = 0.5   # keep the data on the GPU when it takes at most this share of its free memory


def fits_on_device(data, device: torch.device) -> bool:
    """Can the prepared tensors live on the device for the whole run (the fast path)?"""
    if device.type != "cuda":
        return True
    nbytes = data.x_num.nbytes + data.x_cat.nbytes + sum(t.nbytes for t in (*data.y.values(), *data.mask.values()))
    free, _ = torch.cuda.mem_get_info(device)
    return nbytes <= RESIDENT_SHARE * free


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device cuda was asked for but no CUDA GPU is available here; use --device auto or cpu")
    return torch.device(name)


def _running_here() -> int:
    """Threads of this process in state R (running or runnable), from /proc/self/task."""
    n = 0
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                n += f.read().rsplit(")", 1)[1].split()[0] == "R"
        except (OSError, IndexError):
            pass
    return n


def _busy_elsewhere(samples: int = 9, gap: float = 0.001) -> float | None:
    """Tasks of other processes running on the machine right now: the median over a few samples
    of the kernel's runnable count (/proc/loadavg) less this process's own runnable threads (which
    include intra-op threads still spinning after the last parallel op). The median ignores a
    kernel thread that runs for a moment (e.g. reclaiming memory a moment ago freed); a process
    that computes shows in most samples. None off Linux."""
    counts = []
    for _ in range(samples):
        try:
            with open("/proc/loadavg") as f:
                running = int(f.read().split()[3].split("/")[0])
            counts.append(max(0, running - max(1, _running_here())))
        except (OSError, ValueError, IndexError):
            return None
        time.sleep(gap)
    return float(sorted(counts)[len(counts) // 2])


def auto_threads() -> int:
    """CPU threads for training: the cores not busy right now, at least 1.

    Intra-op threads that compete with other busy processes for the same cores spin and
    wait on each other; on a 2-core machine with one other busy process, two threads
    train about ten times slower than one. "Busy" is what runs now (sampled), not the
    1-minute load average, which still counts this process's own work of the last minute
    and would leave a core idle after any other computation (the load average is the
    fallback where the kernel's runnable count is not readable).

    ``MMOE_THREADS=N`` in the environment fixes the count instead (a shared machine, CI, tests).
    """
    fixed = os.environ.get("MMOE_THREADS", "").strip()
    if fixed:
        try:
            return max(1, int(fixed))
        except ValueError:
            raise ConfigError(f"MMOE_THREADS={fixed!r}: give a whole number of CPU threads, e.g. MMOE_THREADS=2") from None
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    busy = _busy_elsewhere()
    if busy is None:
        try:
            busy = os.getloadavg()[0]
        except OSError:
            busy = 0.0
    return max(1, min(cores, int(cores - busy + 0.5)))


def use_bf16(precision: str, device: torch.device) -> bool:
    """bf16 autocast (fp32 weights, optimiser and losses): always on CUDA; on the CPU only where
    it has native bf16 dot products (AVX512-BF16 or AMX), where bf16 GEMMs run several times
    faster than fp32; elsewhere bf16 would be emulated and slower."""
    if precision == "fp32":
        return False
    if precision == "bf16" or device.type == "cuda":
        return True
    cpu = getattr(torch, "cpu", None)
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(cpu, p, lambda: False)() for p in probes)


class TrainStep:
    """One optimisation step: forward (bf16 autocast, see ``use_bf16``), masked loss per task, task
    weighting (fixed or uncertainty), the balance loss, backward, optimiser step.

    ``fit`` calls it once per batch; the step benchmark times exactly this object.
    """

    def __init__(self, model: nn.Module, tasks: Sequence, config: TrainConfig, device: torch.device,
                 *, fused: bool = True):
        self.model, self.tasks = model, list(tasks)
        self.names = [t.column for t in self.tasks]
        self.kinds = [t.kind for t in self.tasks]
        self.weights = torch.tensor([t.weight for t in self.tasks], device=device, dtype=torch.float32)
        self.device_type = device.type
        self.autocast = use_bf16(config.precision, device)
        # the hand-written forward/backward/Adam of mmoe.fused where the model allows it (same
        # numbers, a fraction of the operations); autograd + torch.optim otherwise
        self.fused_unsupported = fused_unsupported(model, config) if fused else "switched off"
        self.fused = (FusedStep(model, self.tasks, config, device, bf16=self.autocast)
                      if self.fused_unsupported is None else None)
        self.uw = self.optimizer = None
        if self.fused is not None:
            return
        if config.task_weighting == "uncertainty":
            self.uw = UncertaintyWeights(len(self.tasks)).to(device)
        params = list(model.parameters()) + (list(self.uw.parameters()) if self.uw is not None else [])
        opt_cls = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
        # CUDA: one fused kernel for all parameters; CPU: foreach (measured faster than fused there)
        impl = "fused" if device.type == "cuda" else "foreach"
        self.optimizer = opt_cls(params, lr=config.lr, weight_decay=config.weight_decay, **{impl: True})

    def __call__(self, xb: Tensor, cb: Tensor | None, yb: Sequence[Tensor], mb: Sequence[Tensor], *,
                 codes: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """One step on a batch; ``codes`` (fused path only): ``self.fused.cat_codes`` of the batch, instead of cb."""
        if self.fused is not None:
            return self.fused(xb, cb, yb, mb, codes=codes)
        with torch.autocast(self.device_type, dtype=torch.bfloat16, enabled=self.autocast):
            out = self.model(xb, cb)
        losses = torch.stack([masked_loss(k, out.preds[n], y, m)
                              for k, n, y, m in zip(self.kinds, self.names, yb, mb)])      # [t]
        total = self.uw(losses) if self.uw is not None else (losses * self.weights).sum()
        total = total + out.aux_loss.float()
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        self.optimizer.step()
        return total.detach(), losses.detach()


class UncertaintyWeights(nn.Module):
    """Kendall et al. 2018: loss = sum_k exp(-s_k) L_k + s_k, s_k = log sigma_k^2 learned."""

    def __init__(self, n: int):
        super().__init__()
        self.log_vars = nn.Parameter(torch.zeros(n))

    def forward(self, losses: Tensor) -> Tensor:
        return (torch.exp(-self.log_vars) * losses + self.log_vars).sum()


def _gate_entropy(gates: Tensor) -> Tensor:
    """Mean entropy (nats) of each task's gate distribution. gates [t, n, e] -> [t]."""
    g = gates.float().clamp_min(1e-12)
    return -(g * g.log()).sum(-1).mean(-1)


@torch.no_grad()
def predict(model: nn.Module, x_num: Tensor, x_cat: Tensor, *, device: torch.device | str = "cpu",
            batch_size: int = 65536, idx: Tensor | None = None, bf16: bool | None = None,
            forward=None) -> tuple[dict[str, Tensor], Tensor | None]:
    """Raw outputs per task [n, d] and gates [t, n, e] (None without gates), on the CPU, float32.

    ``forward``: what computes the outputs of a batch instead of ``model(x_num, x_cat)``, such as
    the training step's own ``FusedStep.forward`` (same numbers, no module overhead)."""
    device = torch.device(device)
    was_training = model.training
    model.eval()
    n = len(idx) if idx is not None else x_num.shape[0]
    preds: dict[str, list[Tensor]] = {}
    gates: list[Tensor] = []
    try:
        for s in range(0, n, batch_size):
            if idx is not None:
                sel = idx[s:s + batch_size]
                xn, xc = x_num.index_select(0, sel), x_cat.index_select(0, sel)
            else:
                xn, xc = x_num[s:s + batch_size], x_cat[s:s + batch_size]
            xn, xc = xn.to(device, non_blocking=True), xc.to(device, non_blocking=True)
            if forward is not None:
                out = forward(xn, xc)
            else:
                with torch.autocast(device.type, dtype=torch.bfloat16,
                                    enabled=(device.type == "cuda") if bf16 is None else bf16):
                    out = model(xn, xc)
            for k, v in out.preds.items():
                preds.setdefault(k, []).append(v.float().cpu())
            if out.gates is not None:
                gates.append(out.gates.float().cpu())
    finally:
        model.train(was_training)
    raw = {k: torch.cat(v) for k, v in preds.items()}
    if not raw:
        raw = {k: torch.empty(0, 1) for k in getattr(model, "task_names", [])}
    return raw, (torch.cat(gates, 1) if gates else None)


def evaluate(model: nn.Module, data, idx: Tensor, *, device: torch.device, batch_size: int,
             bf16: bool | None = None, forward=None, rows: tuple[Tensor, Tensor] | None = None) -> dict[str, dict[str, float]]:
    """Loss, metrics and gate entropy per task on the rows ``idx`` (a split).

    rows: ``(x_num[idx], x_cat[idx])`` already gathered (``fit`` gathers the validation rows once)."""
    if rows is not None:
        raw, gates = predict(model, *rows, device=device, batch_size=batch_size, bf16=bf16, forward=forward)
    else:
        xn, xc = data.x_num, data.x_cat
        raw, gates = predict(model, xn, xc, device=device, batch_size=batch_size, idx=idx.to(xn.device), bf16=bf16,
                             forward=forward)
    out: dict[str, dict[str, float]] = {}
    idx_cpu = idx.cpu()
    for t, spec in enumerate(data.tasks):
        name = spec.column
        y = data.y[name].cpu()[idx_cpu]
        m = data.mask[name].cpu()[idx_cpu]
        r = raw[name]
        scale = data.preprocessor.target_scale(name)
        pred = transform(spec.kind, r[m], scale).numpy()
        y_true = y[m].numpy()
        if spec.kind == "regression":
            y_true = y_true * scale[1] + scale[0]
        # no labelled row of this task in the split: no loss and no metrics (not NaN, which means diverged)
        metrics = ({"loss": float(masked_loss(spec.kind, r, y, m)),
                    **compute_metrics(spec.kind, y_true, pred, data.task_dims[name])} if m.any() else {})
        if gates is not None:
            metrics["gate_entropy"] = float(_gate_entropy(gates[t:t + 1])[0])
        out[name] = metrics
    return out


def baseline_loss(data, idx: Tensor) -> float:
    """Weighted loss of the best constant prediction on rows ``idx`` (base rate, mean, class
    frequencies): the yardstick for an exploded run, computed from the targets alone."""
    total = 0.0
    idx = idx.cpu()
    for spec in data.tasks:
        m = data.mask[spec.column].cpu()[idx]
        y = data.y[spec.column].cpu()[idx][m].double()
        if not len(y):
            continue
        if spec.kind == "binary":
            p = float(y.mean().clamp(1e-6, 1 - 1e-6))
            loss = -(p * math.log(p) + (1 - p) * math.log(1 - p))
        elif spec.kind == "regression":
            loss = float(((y - y.mean()) ** 2).mean())
        else:
            freq = torch.bincount(y.long()).double() / len(y)
            loss = float(-(freq[freq > 0] * freq[freq > 0].log()).sum())
        total += spec.weight * loss
    return total


def _finite_or_raise(x: float, where: str) -> None:
    if not math.isfinite(x):
        raise FloatingPointError(where)


def fit(model: nn.Module, data, config: TrainConfig, *, callbacks: Sequence[Callback] = (),
        cancel_event: threading.Event | None = None) -> FitResult:
    """Train ``model`` on ``data`` (a ``PreparedData``). Never returns without calling on_train_end.

    On the CPU, torch's intra-op threads are set for the run (``config.threads`` or
    ``auto_threads()``) and put back to what they were afterwards."""
    if resolve_device(config.device).type != "cpu":   # (a GPU run leaves the CPU threads alone)
        return _fit(model, data, config, callbacks=callbacks, cancel_event=cancel_event)
    threads = torch.get_num_threads()
    try:
        return _fit(model, data, config, callbacks=callbacks, cancel_event=cancel_event)
    finally:
        torch.set_num_threads(threads)


def _fit(model: nn.Module, data, config: TrainConfig, *, callbacks: Sequence[Callback],
         cancel_event: threading.Event | None) -> FitResult:
    device = resolve_device(config.device)
    if device.type == "cpu":
        torch.set_num_threads(config.threads or auto_threads())
    torch.manual_seed(config.seed)
    gen = torch.Generator(device=device).manual_seed(config.seed)
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
    bs = min(config.batch_size, max(n_train, 1))
    batches = max(1, math.ceil(n_train / bs))

    model.to(device)
    model.train()
    step = TrainStep(model, tasks, config, device)
    # the fused step takes categorical columns as table positions: converted once
    codes = step.fused.cat_codes(x_cat) if step.fused is not None else None
    state = TrainState(epochs=config.epochs, batches=batches, tasks=names, device=str(device), n_train=n_train)
    best_loss, best_state, stale = math.inf, None, 0
    val_rows = None
    initial_loss = baseline_loss(data, val_idx) if val_idx is not None and len(val_idx) else math.inf
    sync_every = 1 if device.type == "cpu" else 50   # GPU: check the loss for NaN without a sync per batch
    cancelled = lambda: cancel_event is not None and cancel_event.is_set()  # noqa: E731

    try:
        for cb in callbacks:
            cb.on_train_begin(state)
        for epoch in range(1, config.epochs + 1):
            state.epoch, state.batch = epoch, 0
            for cb in callbacks:
                cb.on_epoch_begin(state)
            perm = train_idx[torch.randperm(n_train, generator=gen, device=device).to(home)]
            # one gather per epoch; batches are then contiguous slices (views, no copy)
            xs = x_num.index_select(0, perm)
            cs = (codes if codes is not None else x_cat).index_select(0, perm)
            y_ep, m_ep = [y.index_select(0, perm) for y in ys], [m.index_select(0, perm) for m in masks]
            if not resident:   # pinned host memory, so each batch's copy to the GPU is asynchronous
                pin = device.type == "cuda"
                xs, cs = (xs.pin_memory(), cs.pin_memory()) if pin else (xs, cs)
                y_ep = [y.pin_memory() if pin else y for y in y_ep]
                m_ep = [m.pin_memory() if pin else m for m in m_ep]
            loss_sum = torch.zeros(len(tasks), device=device)
            t0 = time.perf_counter()
            for b in range(batches):
                if cancelled():
                    state.status, state.message = "cancelled", f"cancelled by the user in epoch {epoch}"
                    break
                sl = slice(b * bs, (b + 1) * bs)
                batch = [xs[sl], cs[sl], *[y[sl] for y in y_ep], *[m[sl] for m in m_ep]]
                if not resident:
                    batch = [t.to(device, non_blocking=True) for t in batch]
                t_ = len(tasks)
                if codes is not None:
                    total, losses = step(batch[0], None, batch[2:2 + t_], batch[2 + t_:], codes=batch[1])
                else:
                    total, losses = step(batch[0], batch[1], batch[2:2 + t_], batch[2 + t_:])
                rows = min(bs, n_train - b * bs)
                loss_sum += losses * rows
                state.batch = b + 1
                state.samples_seen += rows
                state.batch_losses = dict(zip(names, losses))
                if (b + 1) % sync_every == 0 or b + 1 == batches:
                    _finite_or_raise(float(total), f"epoch {epoch}, batch {b + 1}")
                now = time.perf_counter()
                state.train_seconds += now - t0
                t0 = now
                for cb in callbacks:
                    cb.on_batch_end(state)
                if config.max_seconds is not None and state.train_seconds > config.max_seconds:
                    state.message = f"stopped after the time budget of {config.max_seconds:g} s"
                    break
            if state.status == "cancelled":
                break
            # -- evaluation ---------------------------------------------------------------
            train_loss = (loss_sum / max(min(state.batch * bs, n_train), 1)).tolist()
            _finite_or_raise(sum(train_loss), f"epoch {epoch}")
            # train split: the running loss of the epoch (a second pass over train rows would cost
            # a third of an epoch); validation: loss, metrics and gate entropy on every row
            metrics = {"train": {n: {"loss": l} for n, l in zip(names, train_loss)}}
            if step.uw is not None:   # uncertainty weighting: the learned log variance s_k of each task
                for n, s in zip(names, step.uw.log_vars.detach().cpu().tolist()):
                    metrics["train"][n]["uncertainty_log_var"] = s
            if val_idx is not None and len(val_idx):
                if val_rows is None:
                    vi = val_idx.to(x_num.device)
                    val_rows = (x_num.index_select(0, vi), x_cat.index_select(0, vi))
                metrics["val"] = evaluate(model, data, val_idx, device=device, batch_size=config.eval_batch_size,
                                          bf16=step.autocast, rows=val_rows,
                                          forward=step.fused.forward if step.fused is not None else None)
            state.epoch_metrics = metrics
            state.history.append(metrics)
            split = "val" if "val" in metrics else "train"
            val_loss = sum(t.weight * metrics[split][n]["loss"] for t, n in zip(tasks, names)
                           if "loss" in metrics[split][n])
            _finite_or_raise(val_loss, f"validation after epoch {epoch}")
            if split == "val" and val_loss > EXPLODED * initial_loss + 1.0:
                raise FloatingPointError(
                    f"epoch {epoch}: the validation loss exploded to {val_loss:.3g}, more than "
                    f"{EXPLODED:g}x the {initial_loss:.3g} of predicting the base rate")
            if val_loss < best_loss:
                best_loss, state.best_epoch, stale = val_loss, epoch, 0
                if config.early_stopping_patience:
                    best_state = copy.deepcopy(model.state_dict())
            else:
                stale += 1
            for cb in callbacks:
                cb.on_epoch_end(state)
            if config.early_stopping_patience and stale >= config.early_stopping_patience:
                state.message = (f"early stopping: validation loss did not improve for {stale} epochs; "
                                 f"restored epoch {state.best_epoch}")
                break
            if state.message.startswith("stopped after the time budget"):
                break
        if state.status == "running":
            state.status = "finished"
        if best_state is not None:
            model.load_state_dict(best_state)
    except FloatingPointError as e:
        state.status = "diverged"
        what = str(e) if "exploded" in str(e) else f"the loss became NaN or infinite at {e}"
        state.message = (f"training diverged: {what}. "
                         "Lower the learning rate, standardise extreme targets, or use a smaller batch.")
    except BaseException as e:
        state.status = "failed"
        state.message = f"{type(e).__name__}: {e}"
        raise
    finally:
        for cb in callbacks:
            try:
                cb.on_train_end(state)
            except Exception:   # a broken callback must not hide the run's own outcome
                pass
    final = {}
    if state.history:
        src = state.history[(state.best_epoch or len(state.history)) - 1] if best_state is not None else state.history[-1]
        final = copy.deepcopy(src.get("val", src.get("train", {})))
    return FitResult(status=state.status, message=state.message, epochs=len(state.history),
                     best_epoch=state.best_epoch, train_seconds=state.train_seconds,
                     samples_per_second=state.samples_per_second, metrics=final,
                     history=state.history, device=str(device),
                     step="fused" if step.fused is not None else f"autograd ({step.fused_unsupported})",
                     placement="resident" if resident else "streamed")
