"""One optimisation step (``TrainStep``): the hand-written fused step of ``mmoe.nn.fused`` where the
model allows it, else autograd + torch.optim with bf16 autocast; fixed or uncertainty task weights."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from mmoe.config import TrainConfig
from mmoe.nn.fused import FusedStep
from mmoe.nn.fused import unsupported as fused_unsupported
from mmoe.tasks import masked_loss
from mmoe.training.device import use_bf16


class TrainStep:
    """One optimisation step: forward (bf16 autocast, see ``use_bf16``), masked loss per task, task
    weighting (fixed or uncertainty), the balance loss, backward, optimiser step.

    ``fit`` calls it once per batch; the step benchmark times exactly this object.
    """

    def __init__(self, model: nn.Module, tasks: Sequence, config: TrainConfig, device: torch.device,
                 *, fused: bool = True, world=None):
        self.model, self.tasks = model, list(tasks)
        self.names = [t.column for t in self.tasks]
        self.kinds = [t.kind for t in self.tasks]
        self.weights = torch.tensor([t.weight for t in self.tasks], device=device, dtype=torch.float32)
        self.device_type = device.type
        self.autocast = use_bf16(config.precision, device)
        # the hand-written forward/backward/Adam of mmoe.nn.fused where the model allows it (same
        # numbers, a fraction of the operations); autograd + torch.optim otherwise
        self.fused_unsupported = fused_unsupported(model, config) if fused else "switched off"
        self.fused = (FusedStep(model, self.tasks, config, device, bf16=self.autocast)
                      if self.fused_unsupported is None else None)
        self.uw = self.optimizer = None
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
        if self.fused is not None:
            hook = None if world is None else (lambda g: world.sum_(g.mul_(share)))
            return self.fused(xb, cb, yb, mb, codes=codes, grad_hook=hook)
        with torch.autocast(self.device_type, dtype=torch.bfloat16, enabled=self.autocast):
            out = self.forward_module(xb, cb)
        losses = torch.stack([masked_loss(k, out.preds[n], y, m)
                              for k, n, y, m in zip(self.kinds, self.names, yb, mb)])      # [t]
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
        return total.detach(), losses.detach()


class UncertaintyWeights(nn.Module):
    """Kendall et al. 2018: loss = sum_k exp(-s_k) L_k + s_k, s_k = log sigma_k^2 learned."""

    def __init__(self, n: int):
        super().__init__()
        self.log_vars = nn.Parameter(torch.zeros(n))

    def forward(self, losses: Tensor) -> Tensor:
        return (torch.exp(-self.log_vars) * losses + self.log_vars).sum()
