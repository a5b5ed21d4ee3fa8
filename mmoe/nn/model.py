"""The networks: input encoder, stacked expert bank, gates, towers, MMoE / OMoE / SharedBottom
(CGC / PLE, built on the same ``StackedMLP``, live in ``mmoe.nn.ple``).

Ma et al., KDD 2018:  y_k = h_k( sum_i g^k(x)_i f_i(x) ),  g^k(x) = softmax(W_k x).

Dimension legend used in shape comments:
    b batch   d input features   e experts   t tasks   h hidden width   c capacity (rows per expert)

Every group of parallel MLPs (the experts, the per-task gates, the per-task
towers) is one ``StackedMLP``: layer l holds a weight ``[n, in, out]`` and is
applied to all members at once with one batched matmul, never a Python loop
over members. Sparse top-k routing gathers each expert's rows into a padded
``[e, c, d]`` block, so an expert only computes the rows routed to it, and
returns a Switch-style load-balancing loss computed next to the routing.
"""
from __future__ import annotations

import math
from typing import Mapping, NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmoe.nn import rng


class ModelOutput(NamedTuple):
    preds: dict[str, Tensor]     # task -> [b, out_dim] raw logits / values
    gates: Tensor | None         # [t, b, e], rows sum to 1 (None for SharedBottom)
    aux_loss: Tensor             # scalar, already multiplied by aux_loss_weight (0 when unused)


INPLACE = True   # relu in place on a fresh baddbmm output (its backward needs only the inputs)


class StackedMLP(nn.Module):
    """``n`` independent MLPs of identical shape, evaluated together.

    forward(x): x is ``[b, d]`` (the same input for every member) or ``[n, b, d]``
    (one input per member); returns ``[n, b, out]``.
    """

    def __init__(self, n: int, in_features: int, widths: Sequence[int], *, activate_last: bool,
                 dropout: float = 0.0):
        super().__init__()
        self.n, self.in_features, self.widths = n, in_features, tuple(widths)
        self.activate_last, self.dropout = activate_last, dropout
        dims = (in_features, *self.widths)
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        g = rng.generator()    # (the run's own generator where one is open, see ``mmoe.nn.rng``)
        for din, dout in zip(dims[:-1], dims[1:]):
            # nn.Linear's default init, drawn independently per member (members must not start identical)
            bound = 1.0 / math.sqrt(din)
            self.weights.append(nn.Parameter(torch.empty(n, din, dout).uniform_(-bound, bound, generator=g)))
            self.biases.append(nn.Parameter(torch.empty(n, 1, dout).uniform_(-bound, bound, generator=g)))

    @property
    def out_features(self) -> int:
        return self.widths[-1]

    def first_layer(self) -> tuple[Tensor, Tensor]:
        """Layer 0 as one flat matrix for a shared input: W [d, n*h], b [n*h]."""
        w, b = self.weights[0], self.biases[0]
        n, din, dout = w.shape
        return w.permute(1, 0, 2).reshape(din, n * dout), b.reshape(n * dout)

    def _activate(self, x: Tensor, i: int, inplace: bool = False) -> Tensor:
        if i < len(self.weights) - 1 or self.activate_last:
            x = F.relu(x, inplace=inplace and INPLACE)
            if self.dropout > 0:
                x = rng.dropout(x, self.dropout, self.training)
        return x

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 2:
            # shared input: one GEMM [b, d] x [d, n*h] (bias fused) instead of n small ones
            w, b = self.first_layer()
            return self.forward_from_first(torch.addmm(b, x, w))
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            x = self._activate(torch.baddbmm(b, x, w), i, inplace=True)       # [n, b, out]
        return x

    def forward_from_first(self, pre: Tensor) -> Tensor:
        """Continue from layer 0's pre-activation computed elsewhere, ``pre`` [b, n*h0] -> [n, b, out]."""
        x = self._activate(pre.view(pre.shape[0], self.n, self.widths[0]).transpose(0, 1), 0)   # [n, b, h0]
        for i in range(1, len(self.weights)):
            x = self._activate(torch.baddbmm(self.biases[i], x, self.weights[i]), i, inplace=True)
        return x


class MixtureOfExperts(nn.Module):
    """Experts + gates + towers. ``shared_gate`` True gives OMoE, False gives MMoE.

    experts: optional list of user ``nn.Module``s (each maps ``[b, d] -> [b, h]``
    with the same h) used instead of the stacked MLP bank (slower path).
    """

    def __init__(self, in_features: int, tasks: Mapping[str, int], num_experts: int = 8,
                 expert_hidden: Sequence[int] = (64, 32), gate_hidden: Sequence[int] = (),
                 tower_hidden: Sequence[int] = (16,), top_k: int | None = None, dropout: float = 0.0,
                 *, shared_gate: bool = False, experts: Sequence[nn.Module] | None = None,
                 aux_loss_weight: float = 0.01, expert_out: int | None = None):
        super().__init__()
        if not tasks:
            raise ValueError("tasks must name at least one task")
        self.task_names = list(tasks)
        self.task_dims = dict(tasks)
        self.num_tasks = len(self.task_names)
        self.in_features = in_features
        self.top_k = top_k if top_k and top_k < (len(experts) if experts else num_experts) else None
        self.aux_loss_weight = aux_loss_weight
        self.shared_gate = shared_gate
        if experts is not None:
            if len(experts) == 0:
                raise ValueError("experts: the list of custom experts is empty")
            self.custom_experts = nn.ModuleList(experts)
            self.experts = None
            num_experts = len(experts)
            if expert_out is None:
                with torch.no_grad():
                    probe = torch.zeros(2, in_features)
                    widths = {int(m(probe).shape[-1]) for m in experts}
                if len(widths) != 1:
                    raise ValueError(f"custom experts must share one output width, got {sorted(widths)}")
                expert_out = widths.pop()
        else:
            self.custom_experts = None
            self.experts = StackedMLP(num_experts, in_features, expert_hidden, activate_last=True,
                                      dropout=dropout)
            expert_out = self.experts.out_features
        self.num_experts = num_experts
        n_gates = 1 if shared_gate else self.num_tasks
        self.gate = StackedMLP(n_gates, in_features, (*gate_hidden, num_experts), activate_last=False)
        self.max_out = max(self.task_dims.values())
        self.towers = StackedMLP(self.num_tasks, expert_out, (*tower_hidden, self.max_out),
                                 activate_last=False, dropout=dropout)

    # -- experts ---------------------------------------------------------------------------
    def _dense_experts(self, x: Tensor) -> Tensor:
        if self.experts is not None:
            return self.experts(x)                                             # [e, b, h]
        return torch.stack([m(x) for m in self.custom_experts])                # [e, b, h]

    def _sparse_mix(self, x: Tensor, gates: Tensor) -> Tensor:
        """Run each expert on its routed rows only; return the per-task mixture [t, b, h]."""
        t, b, e = gates.shape
        routed = (gates > 0).any(0)                                            # [b, e]
        b_idx, e_idx = routed.nonzero(as_tuple=True)                           # pairs (row, expert)
        if self.experts is not None:
            pos = routed.long().cumsum(0) - 1                                  # [b, e] slot of row in its expert
            p = pos[b_idx, e_idx]
            cap = int(routed.sum(0).max())                                     # c
            slot = torch.full((e, cap), b, dtype=torch.long, device=x.device)  # b = padding row
            slot[e_idx, p] = b_idx
            x_pad = torch.cat([x, x.new_zeros(1, x.shape[1])])                 # [b+1, d]
            y = self.experts(x_pad[slot])                                      # [e, c, h]
            y_pairs = y[e_idx, p]                                              # [pairs, h]
        else:
            y_pairs = None
            for i, m in enumerate(self.custom_experts):                        # custom path: loop is fine
                sel = (e_idx == i).nonzero(as_tuple=True)[0]
                out = m(x[b_idx[sel]])
                if y_pairs is None:
                    y_pairs = out.new_zeros(b_idx.shape[0], out.shape[-1])
                y_pairs = y_pairs.index_copy(0, sel, out.to(y_pairs.dtype))
        w = gates[:, b_idx, e_idx].unsqueeze(-1).to(y_pairs.dtype)             # [t, pairs, 1]
        mixed = y_pairs.new_zeros(t, b, y_pairs.shape[-1])                     # [t, b, h]
        return mixed.index_add_(1, b_idx, w * y_pairs)

    # -- one GEMM for the first layer of every expert and every gate ------------------------
    @property
    def fusable(self) -> bool:
        """Dense stacked experts: their first layer and the gates' share one input and one GEMM."""
        return self.experts is not None and self.top_k is None

    def first_layer(self) -> tuple[Tensor, Tensor]:
        """W [d, e*h0 + g*k0], b: the first layer of the expert bank and of the gate(s), side by side."""
        we, be = self.experts.first_layer()
        wg, bg = self.gate.first_layer()
        return torch.cat([we, wg], 1), torch.cat([be, bg])

    def forward_from_first(self, pre: Tensor) -> ModelOutput:
        """Forward pass given ``x @ W + b`` for ``first_layer()``'s W, b. pre [b, e*h0 + g*k0]."""
        split = self.experts.n * self.experts.widths[0]
        # split (not slicing): its backward is one concatenation, not two zero-filled full-size grads
        pre_e, pre_g = pre.split([split, pre.shape[1] - split], dim=1)
        h = self.experts.forward_from_first(pre_e)                            # [e, b, h]
        gates, aux = self._gates(None, self.gate.forward_from_first(pre_g))
        mixed = torch.einsum("tbe,ebh->tbh", gates.to(h.dtype), h)             # [t, b, h]
        return self._towers(mixed, gates, aux)

    def _towers(self, mixed: Tensor, gates: Tensor, aux: Tensor) -> ModelOutput:
        out = self.towers(mixed)                                               # [t, b, max_out]
        preds = {name: out[i, :, :self.task_dims[name]] for i, name in enumerate(self.task_names)}
        return ModelOutput(preds, gates, aux)

    # -- gates -----------------------------------------------------------------------------
    def _gates(self, x: Tensor | None, logits: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if logits is None:
            logits = self.gate(x)                                              # [g, b, e], g = 1 or t
        probs = logits.float().softmax(-1)
        if self.shared_gate:
            probs = probs.expand(self.num_tasks, -1, -1)                       # [t, b, e]
        if self.top_k is None:
            return probs, probs.new_zeros(())
        top_val, top_idx = probs.topk(self.top_k, dim=-1)                      # [t, b, k]
        gates = torch.zeros_like(probs).scatter_(-1, top_idx, top_val / top_val.sum(-1, keepdim=True))
        # Switch-Transformer balance loss: e * sum_e (share of rows routed to e) * (mean gate prob of e)
        routed = torch.zeros_like(probs).scatter_(-1, top_idx, 1.0).mean(1) / self.top_k   # [t, e]
        importance = probs.mean(1)                                                         # [t, e]
        aux = (routed * importance).sum(-1).mean() * self.num_experts
        return gates, aux * self.aux_loss_weight

    def forward(self, x: Tensor) -> ModelOutput:
        if self.fusable:
            w, b = self.first_layer()
            return self.forward_from_first(torch.addmm(b, x, w))
        gates, aux = self._gates(x)                                            # [t, b, e]
        if self.top_k is None:
            h = self._dense_experts(x)                                         # [e, b, h]
            mixed = torch.einsum("tbe,ebh->tbh", gates.to(h.dtype), h)         # [t, b, h]
        else:
            mixed = self._sparse_mix(x, gates)                                 # [t, b, h]
        return self._towers(mixed, gates, aux)


class MMoE(MixtureOfExperts):
    """Multi-gate mixture of experts: one softmax gate per task."""

    def __init__(self, in_features: int, tasks: Mapping[str, int], **kw):
        kw.pop("shared_gate", None)
        super().__init__(in_features, tasks, shared_gate=False, **kw)


class OMoE(MixtureOfExperts):
    """One-gate mixture of experts (the paper's MoE baseline): one gate shared by all tasks."""

    def __init__(self, in_features: int, tasks: Mapping[str, int], **kw):
        kw.pop("shared_gate", None)
        super().__init__(in_features, tasks, shared_gate=True, **kw)


class SharedBottom(nn.Module):
    """One shared bottom MLP (``expert_hidden``), one tower per task; no gate."""

    def __init__(self, in_features: int, tasks: Mapping[str, int], num_experts: int = 1,
                 expert_hidden: Sequence[int] = (64, 32), gate_hidden: Sequence[int] = (),
                 tower_hidden: Sequence[int] = (16,), top_k: int | None = None, dropout: float = 0.0,
                 **_ignored):
        super().__init__()
        self.task_names = list(tasks)
        self.task_dims = dict(tasks)
        self.num_tasks = len(self.task_names)
        self.in_features = in_features
        self.num_experts = 0
        self.bottom = StackedMLP(1, in_features, expert_hidden, activate_last=True, dropout=dropout)
        self.max_out = max(self.task_dims.values())
        self.towers = StackedMLP(self.num_tasks, self.bottom.out_features, (*tower_hidden, self.max_out),
                                 activate_last=False, dropout=dropout)

    fusable = True

    def first_layer(self) -> tuple[Tensor, Tensor]:
        return self.bottom.first_layer()

    def forward(self, x: Tensor) -> ModelOutput:
        w, b = self.first_layer()
        return self.forward_from_first(torch.addmm(b, x, w))

    def forward_from_first(self, pre: Tensor) -> ModelOutput:
        h = self.bottom.forward_from_first(pre)                                # [1, b, h]
        out = self.towers(h.expand(self.num_tasks, -1, -1))                    # [t, b, max_out]
        preds = {name: out[i, :, :self.task_dims[name]] for i, name in enumerate(self.task_names)}
        return ModelOutput(preds, None, pre.new_zeros((), dtype=torch.float32))


class InputEncoder(nn.Module):
    """``[numeric | embeddings]``: numeric columns pass through, each categorical column is embedded.

    All columns share one table of the widest embedding width (each column owns its
    own rows, via index offsets); one gather ``[b, c, w]`` plus one column selection
    gives every column its own width. One lookup per batch, not one per column.
    """

    def __init__(self, num_numeric: int, cardinalities: Sequence[int], embedding_dims: Sequence[int]):
        super().__init__()
        if len(cardinalities) != len(embedding_dims):
            raise ValueError("one embedding width per categorical column is needed")
        self.num_numeric = num_numeric
        self.cardinalities = [int(c) for c in cardinalities]
        self.embedding_dims = [int(d) for d in embedding_dims]
        self.width = max(self.embedding_dims, default=0)
        if self.cardinalities:
            offsets = torch.tensor([0, *self.cardinalities[:-1]]).cumsum(0)
            self.register_buffer("offsets", offsets, persistent=False)               # [c]
            keep = torch.cat([torch.arange(d) + i * self.width for i, d in enumerate(self.embedding_dims)])
            self.register_buffer("keep", keep, persistent=False)                     # [sum of widths]
            # nn.Embedding's N(0, 1) init, drawn from the run's own generator where one is open
            init = torch.empty(sum(self.cardinalities), self.width).normal_(generator=rng.generator())
            self.table = nn.Embedding(sum(self.cardinalities), self.width, _weight=init)
            with torch.no_grad():   # each column's vectors start with the scale of its own width
                for i, d in enumerate(self.embedding_dims):
                    rows = slice(int(offsets[i]), int(offsets[i]) + self.cardinalities[i])
                    self.table.weight[rows, d:] = 0.0
        self.out_features = num_numeric + sum(self.embedding_dims)

    def project(self, x_num: Tensor, x_cat: Tensor, w: Tensor, b: Tensor) -> Tensor:
        """``self(x_num, x_cat) @ w + b`` as one GEMM with the bias fused.

        (Projecting each embedding table through its rows of ``w`` and summing with
        ``embedding_bag`` computes the same with fewer FLOPs, but its sort-based backward
        was 1.8x slower than this GEMM on the census model on the CPU, so it is not used.)
        """
        return torch.addmm(b, self(x_num, x_cat), w)

    def forward(self, x_num: Tensor, x_cat: Tensor) -> Tensor:
        if not self.cardinalities:
            return x_num
        flat = (x_cat + self.offsets).flatten()                                       # [b * c]
        emb = self.table.weight.index_select(0, flat).view(x_cat.shape[0], -1)        # [b, c * w]
        if len(self.keep) != emb.shape[1]:
            emb = emb.index_select(1, self.keep)                                     # [b, sum of widths]
        return torch.cat([x_num, emb], 1) if self.num_numeric else emb


ARCH_CLASSES = {"mmoe": MMoE, "omoe": OMoE, "shared-bottom": SharedBottom}   # cgc, ple: mmoe.nn.ple


class TabularModel(nn.Module):
    """InputEncoder + a multi-task core; forward(x_num, x_cat) -> ModelOutput.

    ``meta`` holds everything needed to rebuild the module (stored with a run).
    """

    def __init__(self, meta: Mapping):
        super().__init__()
        from mmoe.config import ModelConfig  # local: model.py stays free of config at import
        from mmoe.nn.sizes import check_model_size

        self.meta = dict(meta)
        mc = ModelConfig.from_dict(meta["model_config"])
        check_model_size(meta, mc)   # a damaged model.json or huge settings: refused before allocating
        self.encoder = InputEncoder(meta["num_numeric"], meta["cardinalities"], meta["embedding_dims"])
        if mc.arch in ("cgc", "ple"):
            from mmoe.nn.ple import CGC, PLE  # ple.py builds on this module

            self.core = (CGC if mc.arch == "cgc" else PLE)(
                self.encoder.out_features, dict(meta["task_dims"]), shared_experts=mc.shared_experts,
                task_experts=mc.task_experts, expert_hidden=mc.expert_hidden, gate_hidden=mc.gate_hidden,
                tower_hidden=mc.tower_hidden, dropout=mc.dropout, levels=mc.num_levels)
            return
        cls = ARCH_CLASSES[mc.arch]
        self.core = cls(self.encoder.out_features, dict(meta["task_dims"]), num_experts=mc.num_experts,
                        expert_hidden=mc.expert_hidden, gate_hidden=mc.gate_hidden,
                        tower_hidden=mc.tower_hidden, top_k=mc.top_k, dropout=mc.dropout,
                        aux_loss_weight=mc.aux_loss_weight)

    @property
    def task_names(self) -> list[str]:
        return self.core.task_names

    @property
    def num_experts(self) -> int:
        return self.core.num_experts

    def forward(self, x_num: Tensor, x_cat: Tensor) -> ModelOutput:
        if getattr(self.core, "fusable", False):
            w, b = self.core.first_layer()
            return self.core.forward_from_first(self.encoder.project(x_num, x_cat, w, b))
        return self.core(self.encoder(x_num, x_cat))


def model_meta(model_config, num_numeric: int, cardinalities: Sequence[int], embedding_dims: Sequence[int],
               task_dims: Mapping[str, int]) -> dict:
    return {"model_config": model_config.to_dict(), "num_numeric": int(num_numeric),
            "cardinalities": [int(c) for c in cardinalities],
            "embedding_dims": [int(d) for d in embedding_dims],
            "task_dims": {k: int(v) for k, v in task_dims.items()}}


def build_model(model_config, data) -> TabularModel:
    """Build the model a ``PreparedData`` (anything with num_numeric, cardinalities, embedding_dims, task_dims) needs."""
    return TabularModel(model_meta(model_config, data.num_numeric, data.cardinalities, data.embedding_dims,
                                   data.task_dims))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
