"""Scoring a model on rows of the prepared data: raw outputs and gates (``predict``), loss, metrics
and gate entropy per task (``evaluate``), and the loss of the best constant prediction
(``baseline_loss``, the yardstick of divergence)."""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from mmoe.tasks import compute_metrics, masked_loss, transform

# rows per scoring batch on the CPU: activations that stay in the cache (and below the allocator's mmap
# threshold, ``device.keep_freed_memory``); census-income's validation (19,952 rows, the default model)
# took 58.6 ms in one batch and 38.0 ms in batches of 4096
CPU_SCORING_BATCH = 4096


def fused_forward(model: nn.Module, tasks, device: torch.device, *, bf16: bool = False):
    """The fused step's forward pass for scoring a trained ``model`` (``predict(..., forward=)``: the same numbers
    as ``model(x_num, x_cat)``, about 3x faster on the CPU), or None where the fused step does not take the
    model. Its parameters move into the step's flat buffer (their values unchanged)."""
    from mmoe.config import TrainConfig
    from mmoe.nn.fused import FusedStep, unsupported

    config = TrainConfig()
    if unsupported(model, config) is not None:
        return None
    return FusedStep(model, list(tasks), config, torch.device(device), bf16=bf16).forward


def gate_entropy(gates: Tensor) -> Tensor:
    """Mean entropy (nats) of each task's gate distribution. gates [t, n, e] -> [t]."""
    g = gates.float().clamp_min(1e-12)
    return -(g * g.log()).sum(-1).mean(-1)


@torch.no_grad()
def predict(model: nn.Module, x_num: Tensor, x_cat: Tensor, *, device: torch.device | str = "cpu",
            batch_size: int | None = None, idx: Tensor | None = None, bf16: bool | None = None,
            forward=None, stop=None) -> tuple[dict[str, Tensor], Tensor | None] | None:
    """Raw outputs per task [n, d] and gates [t, n, e] (None without gates), on the CPU, float32.

    ``forward``: what computes the outputs of a batch instead of ``model(x_num, x_cat)``, such as
    the training step's own ``FusedStep.forward`` (same numbers, no module overhead). ``stop``: a
    callable checked before each batch; when it returns true the scoring ends and returns None."""
    device = torch.device(device)
    if batch_size is None:
        batch_size = CPU_SCORING_BATCH if device.type == "cpu" else 65536
    was_training = model.training
    model.eval()
    n = len(idx) if idx is not None else x_num.shape[0]
    preds: dict[str, list[Tensor]] = {}
    gates: list[Tensor] = []
    try:
        for s in range(0, n, batch_size):
            if stop is not None and stop():
                return None
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
             bf16: bool | None = None, forward=None, rows: tuple[Tensor, Tensor] | None = None,
             stop=None) -> dict[str, dict[str, float]] | None:
    """Loss, metrics and gate entropy per task on the rows ``idx`` (a split); None when ``stop()``
    turned true between two batches (a cancelled run).

    rows: ``(x_num[idx], x_cat[idx])`` already gathered (``fit`` gathers the validation rows once)."""
    if rows is not None:
        scored = predict(model, *rows, device=device, batch_size=batch_size, bf16=bf16, forward=forward, stop=stop)
    else:
        xn, xc = data.x_num, data.x_cat
        scored = predict(model, xn, xc, device=device, batch_size=batch_size, idx=idx.to(xn.device), bf16=bf16,
                         forward=forward, stop=stop)
    if scored is None:
        return None
    raw, gates = scored
    idx_cpu = idx.cpu()
    ys = {n: data.y[n].cpu()[idx_cpu] for n in data.y}
    ms = {n: data.mask[n].cpu()[idx_cpu] for n in data.mask}
    entropy = gate_entropy(gates).tolist() if gates is not None else None
    return task_metrics(data, raw, ys, ms, entropy)


def task_metrics(data, raw: dict[str, Tensor], ys: dict[str, Tensor], masks: dict[str, Tensor],
                 entropy: list[float] | None) -> dict[str, dict[str, float]]:
    """Loss and metrics per task from the raw outputs of some rows and their targets; ``entropy``: the mean
    gate entropy per task over those rows (None without gates)."""
    out: dict[str, dict[str, float]] = {}
    for t, spec in enumerate(data.tasks):
        name = spec.column
        y, m, r = ys[name], masks[name], raw[name]
        scale = data.preprocessor.target_scale(name)
        pred = transform(spec.kind, r[m], scale).numpy()
        y_true = y[m].numpy()
        if spec.kind == "regression":
            y_true = y_true * scale[1] + scale[0]
        # no labelled row of this task in the split: no loss and no metrics (not NaN, which means diverged)
        metrics = ({"loss": float(masked_loss(spec.kind, r, y, m)),
                    **compute_metrics(spec.kind, y_true, pred, data.task_dims[name])} if m.any() else {})
        if entropy is not None:
            metrics["gate_entropy"] = float(entropy[t])
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
