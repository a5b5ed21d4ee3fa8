"""GradNorm (Chen et al., "GradNorm: Gradient Normalization for Adaptive Loss Balancing in Deep
Multitask Networks", ICML 2018): task weights learned so that the tasks train at balanced rates.

    w_i        learnable task weights, 1 at the start, renormalised to sum_i w_i = T after each update
    G_i        = || d(w_i L_i) / dW || = w_i || dL_i / dW ||        at W, the last shared layer
    r_i        = (L_i(t) / L_i(0)) / mean_j (L_j(t) / L_j(0))        relative inverse training rate
    target_i   = mean_j G_j * r_i ** alpha                            a constant: no gradient flows into it
    L_grad     = sum_i | G_i - target_i |                             minimised over w alone, by its own Adam
    the model's loss: sum_i w_i L_i  (w are constants there; the fixed task weights are not used)

W, the last shared layer (``shared_layer``): the last layer of the parameters every task's output
depends on, closest to the towers:
    MMoE / OMoE       the last layer of the stacked experts, weight [e, h_in, h_out]: every task's gate
                      mixes every expert, so each task's gradient reaches all of it (the gates and the
                      towers belong to one task each)
    Shared-Bottom     the last layer of the bottom MLP
    custom experts    the last weight matrix of each custom expert
    CGC / PLE         the last layer of the shared experts of the last level (the first
                      ``shared_experts`` members of that level's stacked experts; the others are one
                      task's own)
Only the weight, not the bias, as in the paper. One extra autograd.grad per task per step (through the
towers and gates only, down to W): the fused fast path does not support it.

Masked losses: L_i(0) is task i's loss in the first batch that has labelled rows of it. A task whose
batch has no labelled row is left out of that step's mean G, its r and L_grad, and its weight is kept
as it is (the others are renormalised so that the sum stays T); with fewer than two tasks labelled
there is nothing to balance and the weights do not move.

Data-parallel (torchrun): G_i and r_i come from each process's own shard (gradient norms of the local
replica); the gradient of L_grad with respect to w is averaged over the processes (weighted by each
shard's share of the global batch) before the Adam step, so every process holds the same weights.

alpha, the asymmetry: 0 pulls every task to the same gradient norm; larger values push harder on
tasks whose loss falls more slowly. The paper reports 0 < alpha < 3 as stable, used alpha = 1.5 on
NYUv2 (depth, normals and segmentation: tasks of different complexity) and alpha = 0.12 on its
synthetic tasks that differ only in scale; our default is 1.5 (``TrainConfig.gradnorm_alpha``).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

MIN_WEIGHT = 1e-3    # a weight is kept above this before renormalising (an Adam step may overshoot 0)


def shared_layer(model: nn.Module) -> list[tuple[nn.Parameter, int | None]]:
    """The weight(s) of the last layer every task shares (see the module docstring), each with the number
    of leading members (rows of dim 0) that are shared, None for all of them."""
    core = getattr(model, "core", model)
    levels = getattr(core, "levels", None)
    if isinstance(levels, nn.ModuleList) and len(levels) and hasattr(levels[-1], "experts"):   # CGC / PLE
        return [(levels[-1].experts.weights[-1], int(core.shared_experts))]
    for name in ("experts", "bottom"):           # MMoE / OMoE, Shared-Bottom
        weights = getattr(getattr(core, name, None), "weights", None)
        if weights is not None and len(weights):
            return [(weights[-1], None)]
    custom = getattr(core, "custom_experts", None)
    if custom is not None:
        last = []
        for m in custom:
            mats = [p for p in m.parameters() if p.dim() >= 2 and p.requires_grad]
            if mats:
                last.append((mats[-1], None))
        if last:
            return last
    raise ValueError(f"GradNorm: no shared layer found in a {type(core).__name__} model; use task weighting "
                     "fixed or uncertainty")


class GradNorm(nn.Module):
    """The learned task weights and their update (see the module docstring). ``weights`` [t]."""

    def __init__(self, n_tasks: int, shared: Sequence[tuple[nn.Parameter, int | None]], *, alpha: float, lr: float,
                 device: torch.device | str = "cpu"):
        super().__init__()
        self.n, self.alpha = int(n_tasks), float(alpha)
        self.weights = nn.Parameter(torch.ones(self.n, device=device))
        self.register_buffer("initial_losses", torch.full((self.n,), float("nan"), device=device))
        self.shared = list(shared)         # the model's parameters (not registered here)
        self.optimizer = torch.optim.Adam([self.weights], lr=lr)

    def weighted(self, losses: Tensor) -> Tensor:
        """The model's loss sum_i w_i L_i, with the weights as constants."""
        return (self.weights.detach() * losses).sum()

    def gradient_norms(self, losses: Tensor, present: Sequence[bool]) -> Tensor:
        """|| dL_i / dW || per task [t] (0 for a task without labelled rows); keeps the graph for backward."""
        norms = torch.zeros(self.n, device=self.weights.device)
        for i in range(self.n):
            if not present[i]:
                continue
            grads = torch.autograd.grad(losses[i], [p for p, _ in self.shared], retain_graph=True,
                                        allow_unused=True)
            sq = [(g if rows is None else g[:rows]).float().pow(2).sum()
                  for g, (_, rows) in zip(grads, self.shared) if g is not None]
            if sq:
                norms[i] = torch.stack(sq).sum().sqrt()
        return norms

    def update(self, losses: Tensor, norms: Tensor, present: Sequence[bool], *, world=None,
               share: float = 1.0) -> None:
        """One step on w from this batch's (detached) losses and gradient norms, then renormalise."""
        w = self.weights
        losses = losses.detach().float()
        here = torch.tensor([bool(p) for p in present], device=w.device)
        with torch.no_grad():
            first = here & torch.isnan(self.initial_losses)
            self.initial_losses[first] = losses[first]
        grad = torch.zeros_like(w)
        if int(here.sum()) >= 2:
            ratio = losses[here] / self.initial_losses[here].clamp(min=1e-12)
            r = ratio / ratio.mean().clamp(min=1e-12)                                   # [present]
            g = w[here] * norms[here]                                                   # G_i, [present]
            target = (g.detach().mean() * r ** self.alpha).detach()
            grad[here] = torch.autograd.grad((g - target).abs().sum(), w)[0][here]
        active = here.float()
        if world is not None:      # the share-weighted mean gradient, and which tasks any process had
            packed = torch.cat([grad * share, active * float(share > 0)])
            world.sum_(packed)
            grad, active = packed[:self.n], packed[self.n:]
        if bool(grad.any()):     # (the same on every process: the summed gradient is)
            w.grad = grad
            before = w.detach().clone()
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            with torch.no_grad():
                absent = active <= 0
                w[absent] = before[absent]
                self._renormalise(absent)

    def _renormalise(self, absent: Tensor) -> None:
        """sum w = T, the absent tasks' weights unchanged (unless they alone would pass T)."""
        w = self.weights
        w.clamp_(min=MIN_WEIGHT)
        kept = float(w[absent].sum())
        rest = self.n - kept
        if rest <= MIN_WEIGHT * int((~absent).sum()):
            w.mul_(self.n / w.sum())
        else:
            w[~absent] *= rest / w[~absent].sum()

    def values(self) -> list[float]:
        return self.weights.detach().cpu().tolist()
