"""CGC and PLE (Tang et al., RecSys 2020, "Progressive Layered Extraction"): task-specific experts
next to shared experts, each task's gate mixing its own experts and the shared ones.

    CGC   one extraction level: y_k = h_k( sum_{i in S u E_k} g^k(x)_i f_i(x) )
    PLE   ``levels`` extraction levels stacked; on every level but the last a shared gate mixes
          *all* experts of the level into the input of the next level's shared experts, and each
          task's gate output is the input of the next level's experts of that task.

Dimension legend used in shape comments:
    b batch   d input features   t tasks   s shared experts   k experts per task
    e experts of a level (s + t*k)   v experts one task's gate sees (s + k)
    g gates of a level (t, plus the shared gate on every level but the last)   h hidden width

Expert order on the gates' last axis (``mmoe.config.layered_expert_owners``, the one home of it):
the s shared experts first, then each task's k experts in task order -- labels s0 .. s{s-1},
<task0>:t0 .. <task0>:t{k-1}, <task1>:t0, ...

One level is computed batched, never with a Python loop over experts or gates:
    experts       one ``StackedMLP`` of e members. Level 0: one GEMM on the shared input x [b, d];
                  later levels: member j reads the output of its owner (``z[owner]`` [e, b, h]) -> [e, b, h]
    task gates    one ``StackedMLP`` of t members, softmax over the v experts each sees, scattered into
                  [t, b, e] with exact zeros on the other tasks' experts
    shared gate   one ``StackedMLP`` of 1 member, softmax over all e experts (not on the last level)
    mix           one einsum "gbe,ebh->gbh" -> the next level's inputs z [g, b, h]: rows 0..t-1 the tasks', row t
                  the shared one
On level 0 the first layer of the experts and of both gates is one GEMM (``first_layer``), so the
``TabularModel`` folds it into the input encoder's projection as it does for MMoE.

``ModelOutput.gates`` are the last level's task gates, [t, b, e]: each row sums to 1 over all e experts
and gives exactly 0 to the experts of other tasks, which that gate cannot see. Shapes and the meaning of
a column (expert j) are thus those of MMoE, and code that reads gates (utilisation, entropy, the stored
``gate:<task>:e<j>`` columns) needs no special case; views that know the layout label and hide the
unseen experts (``mmoe.views.gates.expert_layout``). There is no auxiliary loss (dense gates).
"""
from __future__ import annotations

from typing import Mapping, Sequence

import torch
from torch import Tensor, nn

from mmoe.config import layered_expert_owners
from mmoe.nn.model import ModelOutput, StackedMLP


class ExtractionLevel(nn.Module):
    """One CGC level: e experts, t task gates (over v experts each) and, when ``shared_gate``, a
    shared gate over all e experts.

    forward(z): z [b, d] (level 0: the same input everywhere) or [t+1, b, d] (the previous level's
    task rows and shared row) -> (next inputs [g, b, h], task gates [t, b, e])."""

    def __init__(self, in_features: int, num_tasks: int, shared_experts: int, task_experts: int,
                 expert_hidden: Sequence[int], gate_hidden: Sequence[int], dropout: float, *, shared_gate: bool):
        super().__init__()
        t, s, k = num_tasks, shared_experts, task_experts
        self.num_tasks, self.num_experts = t, s + t * k
        self.experts = StackedMLP(self.num_experts, in_features, expert_hidden, activate_last=True, dropout=dropout)
        self.task_gates = StackedMLP(t, in_features, (*gate_hidden, s + k), activate_last=False)
        self.shared_gate = (StackedMLP(1, in_features, (*gate_hidden, self.num_experts), activate_last=False)
                            if shared_gate else None)
        owners = layered_expert_owners(range(t), s, k)                      # None or the task's index
        # the input row each expert reads on levels > 0: its task's row, or the shared row t
        self.register_buffer("owner", torch.tensor([t if o is None else o for o in owners]), persistent=False)  # [e]
        seen = [[j for j, o in enumerate(owners) if o is None or o == i] for i in range(t)]
        self.register_buffer("seen", torch.tensor(seen), persistent=False)                                     # [t, v]

    @property
    def out_features(self) -> int:
        return self.experts.out_features

    def _mlps(self) -> list[StackedMLP]:
        return [m for m in (self.experts, self.task_gates, self.shared_gate) if m is not None]

    def first_layer(self) -> tuple[Tensor, Tensor]:
        """W [d, e*h0 + t*k0 (+ k0')], b: the first layer of the experts and the gates side by side."""
        ws, bs = zip(*(m.first_layer() for m in self._mlps()))
        return torch.cat(ws, 1), torch.cat(bs)

    def forward_from_first(self, pre: Tensor) -> tuple[Tensor, Tensor]:
        """Level 0 given ``x @ W + b`` for ``first_layer()``'s W, b; pre [b, e*h0 + t*k0 (+ k0')]."""
        mlps = self._mlps()
        parts = pre.split([m.n * m.widths[0] for m in mlps], dim=1)
        outs = [m.forward_from_first(p) for m, p in zip(mlps, parts)]
        return self._mix(*outs)

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        if z.dim() == 2:
            w, b = self.first_layer()
            return self.forward_from_first(torch.addmm(b, z, w))
        t = self.num_tasks
        h = self.experts(z.index_select(0, self.owner))                    # [e, b, h]
        task_logits = self.task_gates(z[:t])                                # [t, b, v]
        shared_logits = self.shared_gate(z[t:]) if self.shared_gate is not None else None   # [1, b, e]
        return self._mix(h, task_logits, shared_logits)

    def _mix(self, h: Tensor, task_logits: Tensor, shared_logits: Tensor | None = None) -> tuple[Tensor, Tensor]:
        t, b, v = task_logits.shape
        probs = task_logits.float().softmax(-1)                             # [t, b, v]
        gates = probs.new_zeros(t, b, self.num_experts).scatter_(
            -1, self.seen.unsqueeze(1).expand(t, b, v), probs)              # [t, b, e], 0 on unseen experts
        mixing = gates if shared_logits is None else torch.cat([gates, shared_logits.float().softmax(-1)])  # [g, b, e]
        return torch.einsum("gbe,ebh->gbh", mixing.to(h.dtype), h), gates   # [g, b, h], [t, b, e]


class PLE(nn.Module):
    """Progressive layered extraction: ``levels`` CGC levels, then one tower per task.

    ``shared_experts`` and ``task_experts`` (per task) are the experts of every level; each level's
    experts are MLPs of ``expert_hidden`` widths (level 0 reads the input, later levels the previous
    level's outputs). ``top_k`` must stay None: the gates are dense.
    """

    fusable = True   # level 0's experts and gates share the input: one first-layer GEMM (``first_layer``)

    def __init__(self, in_features: int, tasks: Mapping[str, int], shared_experts: int = 4, task_experts: int = 2,
                 levels: int = 2, expert_hidden: Sequence[int] = (64, 32), gate_hidden: Sequence[int] = (),
                 tower_hidden: Sequence[int] = (16,), dropout: float = 0.0, top_k: int | None = None):
        super().__init__()
        if not tasks:
            raise ValueError("tasks must name at least one task")
        if top_k is not None:
            raise ValueError(f"{type(self).__name__} has dense gates only: top_k must be None, got {top_k}")
        for name, value in (("shared_experts", shared_experts), ("task_experts", task_experts), ("levels", levels)):
            if int(value) < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        if not expert_hidden:
            raise ValueError("expert_hidden needs at least one layer width")
        self.task_names = list(tasks)
        self.task_dims = dict(tasks)
        self.num_tasks = len(self.task_names)
        self.in_features = in_features
        self.shared_experts, self.task_experts, self.num_levels = int(shared_experts), int(task_experts), int(levels)
        self.top_k = None
        widths = tuple(expert_hidden)
        self.levels = nn.ModuleList(
            ExtractionLevel(in_features if i == 0 else widths[-1], self.num_tasks, self.shared_experts,
                            self.task_experts, widths, tuple(gate_hidden), dropout,
                            shared_gate=i < self.num_levels - 1)
            for i in range(self.num_levels))
        self.num_experts = self.levels[-1].num_experts                       # e: the width of ``gates``
        self.expert_owners = layered_expert_owners(self.task_names, self.shared_experts, self.task_experts)
        self.max_out = max(self.task_dims.values())
        self.towers = StackedMLP(self.num_tasks, widths[-1], (*tower_hidden, self.max_out),
                                 activate_last=False, dropout=dropout)

    def first_layer(self) -> tuple[Tensor, Tensor]:
        return self.levels[0].first_layer()

    def forward_from_first(self, pre: Tensor) -> ModelOutput:
        z, gates = self.levels[0].forward_from_first(pre)                   # [g, b, h], [t, b, e]
        for level in self.levels[1:]:
            z, gates = level(z)
        out = self.towers(z)                                                 # [t, b, max_out]
        preds = {name: out[i, :, :self.task_dims[name]] for i, name in enumerate(self.task_names)}
        return ModelOutput(preds, gates, gates.new_zeros(()))

    def forward(self, x: Tensor) -> ModelOutput:
        w, b = self.first_layer()
        return self.forward_from_first(torch.addmm(b, x, w))


class CGC(PLE):
    """Customized gate control: PLE with one extraction level (no shared gate)."""

    def __init__(self, in_features: int, tasks: Mapping[str, int], shared_experts: int = 4, task_experts: int = 2,
                 expert_hidden: Sequence[int] = (64, 32), gate_hidden: Sequence[int] = (),
                 tower_hidden: Sequence[int] = (16,), dropout: float = 0.0, top_k: int | None = None,
                 levels: int = 1):
        if int(levels) != 1:
            raise ValueError(f"CGC has one extraction level, got levels={levels}; use PLE for several")
        super().__init__(in_features, tasks, shared_experts=shared_experts, task_experts=task_experts, levels=1,
                         expert_hidden=expert_hidden, gate_hidden=gate_hidden, tower_hidden=tower_hidden,
                         dropout=dropout, top_k=top_k)

