"""One optimisation step (``TrainStep``): the hand-written fused step of ``mmoe.nn.fused`` where the
model allows it, else autograd + torch.optim with bf16 autocast; fixed, uncertainty or GradNorm task
weights (``gradnorm``); a BCE pos_weight per binary task (``TrainConfig.pos_weight``, numbers here:
``fit`` resolves "balanced" from the training split, see ``class_weights``)."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from mmoe.config import TrainConfig
from mmoe.nn.fused import FusedStep
from mmoe.nn.fused import unsupported as fused_unsupported
from mmoe.tasks import masked_loss
from mmoe.training.cuda_graph import GraphedStep
from mmoe.training.device import keep_freed_memory, use_bf16
from mmoe.training.gradnorm import GradNorm, shared_layer


class TrainStep:
    """One optimisation step: forward (bf16 autocast, see ``use_bf16``), masked loss per task, task
    weighting (fixed, uncertainty or GradNorm), the balance loss, backward, optimiser step.

    ``fit`` calls it once per batch; the step benchmark times exactly this object.
    """

    def __init__(self, model: nn.Module, tasks: Sequence, config: TrainConfig, device: torch.device,
                 *, fused: bool = True, world=None, graph: bool = True):
        self.model, self.tasks = model, list(tasks)
        self.names = [t.column for t in self.tasks]
        self.kinds = [t.kind for t in self.tasks]
        self.weights = torch.tensor([t.weight for t in self.tasks], device=device, dtype=torch.float32)
        self.device_type = device.type
        if device.type == "cpu":
            keep_freed_memory()    # each step's temporaries reuse the last step's memory (no page faults)
        self.autocast = use_bf16(config.precision, device)
        self.pos_weight = _pos_weights(self.tasks, config)                      # [t] floats or None
        # the hand-written forward/backward/Adam of mmoe.nn.fused where the model allows it (same
        # numbers, a fraction of the operations); autograd + torch.optim otherwise
        self.fused_unsupported = fused_unsupported(model, config) if fused else "switched off"
        if self.fused_unsupported is None and self.pos_weight and any(k != "binary" for k in self.kinds):
            self.fused_unsupported = "pos_weight with a task that is not binary"   # (only _binary_losses has it)
        self.fused = (FusedStep(model, self.tasks, config, device, bf16=self.autocast)
                      if self.fused_unsupported is None else None)
        if self.fused is not None and self.pos_weight:   # read by FusedStep._binary_losses
            self.fused.pos_weight = torch.tensor(self.pos_weight, dtype=torch.float32, device=device)
        # CUDA: the fused step of full batches captured once as a CUDA graph and replayed (``cuda_graph``)
        self.graph_unsupported = GraphedStep.unsupported(self, device, world) if graph else "switched off"
        self.graphed = GraphedStep(self.fused) if self.graph_unsupported is None else None
        self.uw = self.gradnorm = self.optimizer = None
        # data-parallel (``world``, see ``distributed``): every process starts from rank 0's weights and
        # each step's gradient is the global batch's; the caller passes each shard's share of the rows
        self.world, self.forward_module = world, model
        if self.fused is not None:
            if world is not None:
                world.same_start(self.fused.flat)
            return
        if world is not None:
            from torch.nn.parallel import DistributedDataParallel

            self.forward_module = DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None)
        if config.task_weighting == "uncertainty":
            self.uw = UncertaintyWeights(len(self.tasks)).to(device)
        elif config.task_weighting == "gradnorm":   # its weights have an Adam of their own (see gradnorm)
            self.gradnorm = GradNorm(len(self.tasks), shared_layer(model), alpha=config.gradnorm_alpha,
                                     lr=config.lr, device=device)
        params = list(model.parameters()) + (list(self.uw.parameters()) if self.uw is not None else [])
        opt_cls = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
        # CUDA: one fused kernel for all parameters; CPU: foreach (measured faster than fused there)
        impl = "fused" if device.type == "cuda" else "foreach"
        self.optimizer = opt_cls(params, lr=config.lr, weight_decay=config.weight_decay, **{impl: True})

    def __call__(self, xb: Tensor, cb: Tensor | None, yb: Sequence[Tensor], mb: Sequence[Tensor], *,
                 codes: Tensor | None = None, share: float = 1.0) -> tuple[Tensor, Tensor]:
        """One step on a batch; ``codes`` (fused path only): ``self.fused.cat_codes`` of the batch, instead of cb.
        ``share`` (data-parallel only): this shard's part of the global batch's rows. Returns this shard's
        (total, per-task losses)."""
        world = self.world
        if self.graphed is not None:
            return self.graphed(xb, cb, yb, mb, codes=codes)
        if self.fused is not None:
            hook = None if world is None else (lambda g: world.sum_(g.mul_(share)))
            return self.fused(xb, cb, yb, mb, codes=codes, grad_hook=hook)
        with torch.autocast(self.device_type, dtype=torch.bfloat16, enabled=self.autocast):
            out = self.forward_module(xb, cb)
        pws = self.pos_weight or [None] * len(self.names)
        losses = torch.stack([masked_loss(k, out.preds[n], y, m, pw)
                              for k, n, y, m, pw in zip(self.kinds, self.names, yb, mb, pws)])      # [t]
        gn = self.gradnorm
        if gn is not None:     # the gradient norms at the shared layer first (the graph is kept for backward)
            present = [bool(m.any()) for m in mb]
            norms = gn.gradient_norms(losses, present)
            total = gn.weighted(losses)
        else:
            total = self.uw(losses) if self.uw is not None else (losses * self.weights).sum()
        total = total + out.aux_loss.float()
        self.optimizer.zero_grad(set_to_none=True)
        if world is None:
            total.backward()
        else:   # DDP averages over the processes: weighted so that the average is the global batch's gradient
            (total * (share * world.size)).backward()
            for p in (self.uw.parameters() if self.uw is not None else ()):
                world.sum_(p.grad).div_(world.size)
        self.optimizer.step()
        if gn is not None:
            gn.update(losses, norms, present, world=world, share=share)
        return total.detach(), losses.detach()

    def describe(self) -> str:
        """Which step ran (``FitResult.step``): fused (with its CUDA graph, on a GPU) or autograd, and why."""
        if self.fused is None:
            return f"autograd ({self.fused_unsupported})"
        return "fused" if self.graphed is None else f"fused, {self.graphed.describe()}"

    def epoch_diagnostics(self) -> dict[str, dict[str, float]]:
        """What the loop records per epoch about the loss weighting, task -> {metric: value} (train split):
        uncertainty weighting's log variance s_k (its weight is exp(-s_k)), GradNorm's task weight w_k."""
        if self.uw is not None:
            return {n: {"uncertainty_log_var": s} for n, s in zip(self.names, self.uw.log_vars.detach().cpu().tolist())}
        if self.gradnorm is not None:
            return {n: {"task_weight": w} for n, w in zip(self.names, self.gradnorm.values())}
        return {}


def _pos_weights(tasks, config: TrainConfig) -> list[float] | None:
    """pos_weight per task (1.0 where none is set), or None when no task has one."""
    chosen = dict(getattr(config, "pos_weight", {}) or {})
    if not chosen:
        return None
    config.check_tasks(tasks)
    for col, v in chosen.items():
        if isinstance(v, str):
            raise ValueError(f"pos_weight {v!r} of {col!r} is derived from the training split: resolve it first "
                             "(mmoe.training.class_weights.resolve_pos_weights; fit does)")
    return [float(chosen.get(t.column, 1.0)) for t in tasks]


class UncertaintyWeights(nn.Module):
    """Kendall et al. 2018: loss = sum_k exp(-s_k) L_k + s_k, s_k = log sigma_k^2 learned."""

    def __init__(self, n: int):
        super().__init__()
        self.log_vars = nn.Parameter(torch.zeros(n))

    def forward(self, losses: Tensor) -> Tensor:
        return (torch.exp(-self.log_vars) * losses + self.log_vars).sum()
