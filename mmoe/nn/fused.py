"""The training fast path: a hand-written forward + backward + Adam for the stacked models.

For the models ``build_model`` makes (MMoE, OMoE, SharedBottom with stacked MLP
experts, dense gating, no dropout, fixed task weights) one training step is a
fixed sequence of about 60-90 tensor operations, whatever the number of experts
or tasks. Autograd runs the same model as about 900 operations (views,
transposes, casts, accumulations and an optimiser pass per parameter), and on a
small model each operation costs more to dispatch than to compute. So this
module writes the backward pass out by hand:

* **Feature-major layout.** Every activation is ``[features, batch]``: the
  first layer is one GEMM ``W0^T [F, d] @ x^T`` for all experts and all gates
  together; its rows split into ``[e, h, b]`` (experts) and ``[g, e, b]``
  (gate logits) without a copy; deeper expert layers and the towers are batched
  GEMMs whose inner dimension is the batch. The gate softmax runs over a middle
  dimension of size e with the batch innermost (20x faster on the CPU than a
  softmax over a last dimension of size 8), and no layer needs a transposing copy.
* **One flat parameter buffer.** Every parameter of the model is a view into one
  fp32 buffer (the model's own ``nn.Parameter`` objects keep working: state_dict,
  saving, evaluation), every gradient is written by its GEMM straight into the
  matching view of one gradient buffer, and Adam is one fused kernel on the whole
  buffer (``kernels.fused_adam``; six operations where torch lacks it). In bf16
  mode the weights are cast once per step, as one operation.
* **Same numbers.** The result equals autograd on the same model (tests compare
  losses, gradients and parameters after several Adam steps), so the fast path
  changes speed, not training.

``FusedStep.unsupported(model, config)`` says why a model needs the autograd path
(custom experts, sparse top-k routing, dropout, uncertainty weighting).
"""
from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmoe.nn.kernels import fused_adam, onednn_matmul
from mmoe.nn.layout import FlatLayout
from mmoe.nn.model import MixtureOfExperts, ModelOutput, SharedBottom, StackedMLP, TabularModel
from mmoe.nn.projection import CategoryProjection


def unsupported(model: nn.Module, config) -> str | None:
    """None when ``FusedStep`` can train ``model`` with ``config``, else the reason it cannot."""
    if not isinstance(model, TabularModel):
        return "not a TabularModel"
    core = model.core
    if isinstance(core, MixtureOfExperts):
        if core.experts is None:
            return "custom experts"
        if core.top_k is not None:
            return "sparse top-k gating"
        mlps = (core.experts, core.gate, core.towers)
    elif isinstance(core, SharedBottom):
        mlps = (core.bottom, core.towers)
    else:
        return f"unknown model core {type(core).__name__}"
    if any(m.dropout > 0 for m in mlps):
        return "dropout"
    if config.task_weighting == "gradnorm":
        return "gradnorm task weighting (per-task gradient norms at the shared layer need autograd)"
    if config.task_weighting != "fixed":
        return f"task weighting {config.task_weighting!r}"
    if any(not p.requires_grad for p in model.parameters()):
        return "frozen parameters"
    return None


LANES = 8                  # copies of the embedding-table gradient that neighbouring batch rows scatter into
LANE_BUDGET = 1 << 20      # ...as long as the copies together hold at most this many elements


class _Acts(NamedTuple):
    idx: Tensor | None          # gathered table elements / rows
    xt: Tensor                  # [d, b] encoded input
    p0: Tensor                  # [F, b] first layer (experts' rows after relu)
    acts: list                  # expert layer outputs [e, h, b]
    gate_acts: list             # hidden gate layer outputs
    s: Tensor | None            # [g, e, b] gate probabilities, fp32
    h32: Tensor | None          # [e, h, b] expert outputs, fp32
    tacts: list                 # tower inputs per layer [t, in, b]
    out: Tensor                 # [t, max_out, b] raw outputs


class FusedStep:
    """One training step (forward, masked losses, backward, Adam) without autograd.

    Called like ``TrainStep``: ``step(x_num, x_cat, ys, masks) -> (total, losses)``.
    Creating it re-homes the model's parameters into one flat buffer (values unchanged).
    """

    def __init__(self, model: TabularModel, tasks: Sequence, config, device: torch.device, *, bf16: bool,
                 lane_budget: int = LANE_BUDGET):
        why = unsupported(model, config)
        if why:
            raise ValueError(f"the fused training step does not support this model: {why}")
        self.model = model
        self.device = torch.device(device)
        self.cd = torch.bfloat16 if bf16 else torch.float32
        # the first layer's forward and input-gradient products
        self._mm = (onednn_matmul() if self.device.type == "cpu" and not bf16 else None) or torch.mm
        core = model.core
        enc = model.encoder
        self.kinds = [t.kind for t in tasks]
        self.names = names = [t.column for t in tasks]
        if names != list(core.task_names):
            raise ValueError("tasks must be given in the model's task order")
        self.task_w = [float(t.weight) for t in tasks]
        self.weights = torch.tensor(self.task_w, dtype=torch.float32, device=self.device)
        self.out_dims = [core.task_dims[n] for n in names]
        self.all_binary = all(k == "binary" for k in self.kinds)
        self.T = len(names)
        self.max_out = core.max_out

        if isinstance(core, SharedBottom):
            experts, gate = core.bottom, None
        else:
            experts, gate = core.experts, core.gate
        self.E, self.h1 = experts.n, experts.widths[0]
        self.G = gate.n if gate is not None else 0
        self.k1 = gate.widths[0] if gate is not None else 0
        self.n_exp_layers = len(experts.weights)
        self.n_gate_layers = len(gate.weights) if gate is not None else 0
        self.n_tower_layers = len(core.towers.weights)

        # -- the flat parameter buffer ----------------------------------------------------
        named = dict(model.named_parameters())
        pre = {id(p): n for n, p in named.items()}
        first = [(pre[id(experts.weights[0])], pre[id(experts.biases[0])], self.E, self.h1)]
        if gate is not None:
            first.append((pre[id(gate.weights[0])], pre[id(gate.biases[0])], self.G, self.k1))
        self.layout = FlatLayout(named, first, model.encoder.out_features)
        flat = torch.zeros(self.layout.numel, dtype=torch.float32, device=self.device)
        with torch.no_grad():
            for name, p in named.items():
                self.layout.view(flat, name).copy_(p.detach())
            for name, p in named.items():
                p.data = self.layout.view(flat, name)
        self.flat = flat
        self.wc = flat if self.cd == torch.float32 else torch.empty_like(flat, dtype=self.cd)
        self._views: dict = {}
        self.grad = torch.zeros(self.layout.numel, dtype=self.cd, device=self.device)
        self.grad32 = self.grad if self.cd == torch.float32 else torch.zeros_like(flat)
        self.m = torch.zeros_like(flat)
        self.v = torch.zeros_like(flat)
        self.t = 0                                    # steps taken (the fused kernel reads step_t)
        self.step_t = torch.zeros((), dtype=torch.float32, device=self.device)
        self.lr, self.wd = float(config.lr), float(config.weight_decay)
        self.adamw = config.optimizer == "adamw"
        self._fused_adam = fused_adam(self.adamw)
        self.betas, self.eps = (0.9, 0.999), 1e-8

        def names_of(mlp: StackedMLP | None) -> list[tuple[str, str]]:
            return [] if mlp is None else [(pre[id(w)], pre[id(b)]) for w, b in zip(mlp.weights, mlp.biases)]

        self.exp_names, self.gate_names, self.tower_names = names_of(experts), names_of(gate), names_of(core.towers)
        # encoder
        self.n_num = enc.num_numeric
        self.n_cat = len(enc.cardinalities)
        if self.n_cat:
            self.table_name = pre[id(enc.table.weight)]
            self.width = enc.width
            self.offsets = enc.offsets.to(self.device)
            # input row j of the embeddings is table element (row of its column's category) * width
            # + k_j, for its column col_j and dimension k_j < that column's width: gathering single
            # elements means no padding (columns narrower than the table) is gathered or scattered
            dims = torch.tensor(enc.embedding_dims, device=self.device)
            self.elem_cols = torch.repeat_interleave(torch.arange(self.n_cat, device=self.device), dims)
            self.elem_k = torch.cat([torch.arange(d, device=self.device) for d in enc.embedding_dims])[:, None]
            # The gradient scatter-add runs in [sum widths, b] order, where neighbouring elements
            # often hit the same table element (same column, few categories) and each add waits
            # for the previous one. Spreading neighbours over LANES copies of the table gradient
            # (summed afterwards) removes that dependency: 4x faster scatter on census.
            self.table_numel = self._v(self.flat, self.table_name).numel()
            # (a large table has many categories, so neighbours rarely collide, and copying it
            # would cost more than it saves: one lane, scattered straight into the gradient)
            self.lanes = max(1, min(LANES, lane_budget // self.table_numel))
            self.lane_grad = (torch.zeros(self.lanes * self.table_numel, dtype=torch.float32, device=self.device)
                              if self.lanes > 1 else None)
            # ...and the forward gathers from as many copies of the table (refreshed per step, one copy op)
            self.lane_table = (torch.empty(self.lanes, self.table_numel, dtype=self.cd, device=self.device)
                               if self.lanes > 1 else None)
            # scoring's first layer per category instead of per row where that is cheaper (CPU, fp32)
            self.proj = (CategoryProjection(enc.cardinalities, enc.embedding_dims, enc.width, self.n_num, self.device)
                         if self.device.type == "cpu" and not bf16 else None)
            self._lane: Tensor | None = None

    def cat_codes(self, x_cat: Tensor) -> Tensor:
        """x_cat [n, c] category codes -> [n, c]: each code's row of the embedding table.
        ``fit`` converts the whole table once; a batch is then a row slice."""
        if not self.n_cat:
            return x_cat
        return torch.add(x_cat, self.offsets.to(x_cat.device))

    # -- views of the weights / gradients -----------------------------------------------------
    def _v(self, flat: Tensor, name: str, transposed: bool = False) -> Tensor:
        """View of parameter ``name`` in one of the persistent buffers (weights, compute-dtype
        weights, gradients), made once: a step would otherwise spend ~100 view operations."""
        key = (id(flat), name, transposed)
        v = self._views.get(key)
        if v is None:
            v = self.layout.block(flat, name[1:]) if name.startswith("@") else self.layout.view(flat, name)
            if transposed:
                v = v.transpose(1, 2)
            self._views[key] = v
        return v

    def _weights(self) -> Tensor:
        """The weights in the compute dtype (one cast of the whole buffer into a persistent one)."""
        if self.wc is not self.flat:
            self.wc.copy_(self.flat)
        return self.wc

    def _lane_offsets(self, b: int) -> Tensor:
        """[b]: (i % lanes) * table size for batch position i: where batch row i's copy of the table starts."""
        if self._lane is None or self._lane.shape[0] < b:
            self._lane = (torch.arange(b, device=self.device) % self.lanes) * self.table_numel
        return self._lane[:b]

    def _forward(self, wc: Tensor, x_num: Tensor, codes: Tensor, training: bool = True) -> "_Acts":
        """The forward pass from weights ``wc`` (compute dtype); keeps what the backward needs."""
        cd = self.cd
        b = x_num.shape[0]
        E, G, T, h1 = self.E, self.G, self.T, self.h1
        eh = E * h1
        idx = None
        n = self.n_num
        # scoring: the first layer's categorical part per category (``CategoryProjection``; in the training
        # step, which needs the gathered embeddings for its backward anyway, that measured slower)
        proj = not training and self.n_cat and self.proj is not None and self.proj.worth_it(b)
        if self.n_cat and not proj:
            table = self._v(wc, self.table_name).reshape(-1)                         # [V*w]
            ct = torch.empty(codes.shape[1], b, dtype=codes.dtype, device=codes.device)   # [c, b] (never the
            if training and self.lanes > 1:   # caller's codes); batch row i reads table copy i % lanes
                torch.add(self._lane_offsets(b), codes.t(), alpha=self.width, out=ct)
                table = self.lane_table.copy_(table.expand(self.lanes, -1)).view(-1)
            else:
                torch.mul(codes.t(), self.width, out=ct)
            idx = ct.index_select(0, self.elem_cols).add_(self.elem_k)                # [sum widths, b]
            # the embeddings are gathered straight into their rows of the input [d, b] (no concatenation)
            xt = torch.empty(n + idx.shape[0], b, dtype=cd, device=x_num.device)
            if n:
                xt[:n].copy_(x_num.t())
            torch.index_select(table, 0, idx.view(-1), out=xt[n:].view(-1))
        else:
            xt = x_num.t().to(cd)                                                     # [d, b] (when projecting: [n, b])
        w0t = self._v(wc, "@w0")                                                      # [F, d]
        b0 = self._v(wc, "@b0")
        if proj:      # the categorical part per category, the numeric part a GEMM
            bag = self.proj.batch(self.proj.table(self._v(wc, self.table_name), w0t), codes)      # [b, F]
            p0 = torch.addmm(b0.unsqueeze(1), w0t[:, :n], xt[:n]).add_(bag.t()) if n else \
                torch.add(bag.t(), b0.unsqueeze(1))
        elif self._mm is torch.mm:
            p0 = torch.addmm(b0.unsqueeze(1), w0t, xt)                                # [F, b]
        else:
            p0 = self._mm(w0t, xt).add_(b0.unsqueeze(1))

        acts = [p0[:eh].view(E, h1, b).relu_()]                                       # expert layer outputs [e, h, b]
        for wn, bn in self.exp_names[1:]:
            z = torch.baddbmm(self._v(wc, bn, True), self._v(wc, wn, True), acts[-1])
            acts.append(z.relu_())
        h = acts[-1]                                                                  # [e, h, b]

        gate_acts: list[Tensor] = []
        if G:
            q = p0[eh:].view(G, self.k1, b)
            for wn, bn in self.gate_names[1:]:
                gate_acts.append(q.relu_())
                q = torch.baddbmm(self._v(wc, bn, True), self._v(wc, wn, True), q)
            s = torch.softmax(q, 1, dtype=torch.float32)                              # [g, e, b] fp32
            h32 = h.float()
            se, he = s.unsqueeze(2).unbind(1), h32.unbind(0)                          # [g, 1, b], [h, b] each
            mix = torch.mul(se[0], he[0])                                             # [g, h, b]
            for e in range(1, E):
                mix.addcmul_(se[e], he[e])
            tin = mix.to(cd)
        else:
            s = h32 = None
            tin = h                                                                   # [1, h, b]
        if tin.shape[0] != T:
            tin = tin.expand(T, -1, -1)
        tacts = [tin]
        for i, (wn, bn) in enumerate(self.tower_names):
            z = torch.baddbmm(self._v(wc, bn, True), self._v(wc, wn, True), tacts[-1])
            tacts.append(z.relu_() if i < self.n_tower_layers - 1 else z)
        out = tacts.pop()                                                             # [t, max_out, b]

        return _Acts(idx, xt, p0, acts, gate_acts, s, h32, tacts, out)

    @torch.no_grad()
    def forward(self, x_num: Tensor, x_cat: Tensor) -> ModelOutput:
        """Evaluation forward pass (what ``model(x_num, x_cat)`` returns, without autograd; on the CPU in fp32 the
        first layer's categorical part is computed per category where that is cheaper, ``CategoryProjection``)."""
        wc = self._weights()
        a = self._forward(wc, x_num, self.cat_codes(x_cat), training=False)
        preds = {n: a.out[t, :k].t() for t, (n, k) in enumerate(zip(self.names, self.out_dims))}
        gates = None
        if a.s is not None:
            gates = a.s.transpose(1, 2)                                               # [g, b, e]
            if gates.shape[0] != self.T:
                gates = gates.expand(self.T, -1, -1)
        return ModelOutput(preds, gates, self.flat.new_zeros(()))

    def __call__(self, x_num: Tensor, x_cat: Tensor, ys: Sequence[Tensor], masks: Sequence[Tensor], *,
                 codes: Tensor | None = None, grad_hook=None) -> tuple[Tensor, Tensor]:
        """One step on a batch; ``codes`` (``cat_codes`` of the batch's rows) replaces x_cat. ``grad_hook``
        (data-parallel training) gets the flat fp32 gradient before the update and may change it in place."""
        if codes is None:
            codes = self.cat_codes(x_cat)
        cd = self.cd
        wc = self._weights()
        gc = self.grad
        b = x_num.shape[0]
        E, G, T, h1 = self.E, self.G, self.T, self.h1
        eh = E * h1
        a = self._forward(wc, x_num, codes)
        idx, xt, p0, acts, gate_acts, s, h32, tacts, out = a
        w0t = self._v(wc, "@w0")

        # ---- losses and their gradient wrt the outputs ------------------------------------
        d_out = torch.empty_like(out)
        if any(k != self.max_out for k in self.out_dims):
            d_out.zero_()
        if self.all_binary:
            losses_t = self._binary_losses(out, ys, masks, d_out)
            total = torch.dot(losses_t, self.weights)
        else:
            losses_t, total = self._losses(out, ys, masks, d_out, b)

        # ---- backward: towers ------------------------------------------------------------
        dz = d_out
        for i in range(self.n_tower_layers - 1, -1, -1):
            wn, bn = self.tower_names[i]
            a_prev = tacts[i]
            torch.bmm(a_prev, dz.transpose(1, 2), out=self._v(gc, wn))
            torch.sum(dz, 2, out=self._v(gc, bn).view(T, -1))
            da = torch.bmm(self._v(wc, wn), dz)                                       # [t, in, b]
            dz = torch.ops.aten.threshold_backward(da, a_prev, 0) if i > 0 else da
        d_in = dz                                                                     # [t, h, b]

        # ---- backward: mixture and gates -----------------------------------------------
        d_p0 = torch.empty_like(p0)                                                   # [F, b]
        if G:
            d_mix = (d_in.sum(0, keepdim=True) if G == 1 and T > 1 else d_in).float()  # [g, h, b]
            sg, dg = s.unsqueeze(2).unbind(0), d_mix.unbind(0)                        # [e, 1, b], [h, b] each
            dh = torch.mul(sg[0], dg[0])                                              # [e, h, b]
            for g in range(1, G):
                dh.addcmul_(sg[g], dg[g])
            ds = torch.stack([torch.mul(h32, dg[g]).sum(1) for g in range(G)])       # [g, e, b]
            dq = ds.sub_((ds * s).sum(1, keepdim=True)).mul_(s)                       # softmax backward
            for i in range(self.n_gate_layers - 1, 0, -1):
                wn, bn = self.gate_names[i]
                a_prev = gate_acts[i - 1]
                dq = dq.to(cd)
                torch.bmm(a_prev, dq.transpose(1, 2), out=self._v(gc, wn))
                torch.sum(dq, 2, out=self._v(gc, bn).view(G, -1))
                dq = torch.ops.aten.threshold_backward(torch.bmm(self._v(wc, wn), dq), a_prev, 0)
            d_p0[eh:].view_as(dq).copy_(dq)
            dh = dh.to(cd)
        else:
            dh = d_in.sum(0, keepdim=True) if T > 1 else d_in                        # [1, h, b]

        # ---- backward: expert layers ---------------------------------------------------
        for i in range(self.n_exp_layers - 1, 0, -1):
            wn, bn = self.exp_names[i]
            dz = torch.ops.aten.threshold_backward(dh, acts[i], 0)
            torch.bmm(acts[i - 1], dz.transpose(1, 2), out=self._v(gc, wn))
            torch.sum(dz, 2, out=self._v(gc, bn).view(E, -1))
            dh = torch.bmm(self._v(wc, wn), dz)
        torch.ops.aten.threshold_backward.grad_input(dh, acts[0], 0, grad_input=d_p0[:eh].view(E, h1, b))

        # ---- backward: first layer and embeddings ----------------------------------------
        torch.mm(d_p0, xt.t(), out=self._v(gc, "@w0"))          # (MKL: oneDNN was slower here in the step)
        torch.sum(d_p0, 1, out=self._v(gc, "@b0"))
        g32 = self.grad32
        if g32 is not gc:
            g32.copy_(gc)
        if self.n_cat:
            dx = self._mm(w0t[:, self.n_num:].t(), d_p0).float()                     # [sum widths, b]
            gt = self._v(g32, self.table_name).view(-1)
            if self.lanes > 1:
                lanes = self.lane_grad
                lanes.zero_()
                lanes.scatter_add_(0, idx.view(-1), dx.view(-1))
                torch.sum(lanes.view(self.lanes, -1), 0, out=gt)
            else:
                gt.zero_()
                gt.scatter_add_(0, idx.view(-1), dx.view(-1))

        # ---- Adam / AdamW on the flat buffer -----------------------------------------------
        if grad_hook is not None:
            grad_hook(g32)
        self._adam(g32)
        return total.detach(), losses_t.detach()

    def _binary_losses(self, out: Tensor, ys: Sequence[Tensor], masks: Sequence[Tensor], d_out: Tensor) -> Tensor:
        """All tasks binary (one logit each): masked BCE per task [t] and its gradient into d_out, at once.
        ``self.pos_weight`` ([t], set by ``TrainStep`` when a task has one): BCE's pos_weight p, whose
        gradient is sigmoid(z) (1 + (p - 1) y) - p y."""
        z = out[:, 0].float()                                                         # [t, b]
        y = torch.stack(list(ys))
        mf = torch.stack(list(masks)).to(torch.float32)
        cnt = mf.sum(1).clamp_(min=1.0)
        pw = getattr(self, "pos_weight", None)
        if pw is None:
            losses = F.softplus(z).addcmul_(z, y, value=-1.0).mul_(mf).sum(1).div_(cnt)
            torch.mul(torch.sigmoid(z).sub_(y).mul_(mf), (self.weights / cnt).unsqueeze(1), out=d_out[:, 0])
            return losses
        pw = pw.unsqueeze(1)                                                          # [t, 1]
        losses = F.binary_cross_entropy_with_logits(z, y, weight=mf, pos_weight=pw, reduction="none").sum(1).div_(cnt)
        py = y * pw                                                                   # [t, b]
        grad = torch.sigmoid(z).mul_(py - y + 1.0).sub_(py).mul_(mf)
        torch.mul(grad, (self.weights / cnt).unsqueeze(1), out=d_out[:, 0])
        return losses

    def _losses(self, out: Tensor, ys: Sequence[Tensor], masks: Sequence[Tensor], d_out: Tensor,
                b: int) -> tuple[Tensor, Tensor]:
        """Masked loss per task [t] (any mix of kinds), the weighted total, and d(total)/d(out) into d_out."""
        losses = []
        for t, (kind, y, m) in enumerate(zip(self.kinds, ys, masks)):
            mf = m.to(torch.float32)
            cnt = mf.sum().clamp_(min=1.0)
            if kind == "multiclass":
                z = out[t, :self.out_dims[t]].float()                                 # [k, b]
                logp = torch.log_softmax(z, 0)
                losses.append(-(logp.gather(0, y.view(1, -1)).view(-1) * mf).sum() / cnt)
                g = logp.exp_()
                g.scatter_add_(0, y.view(1, -1), torch.full((1, b), -1.0, device=g.device))
                torch.mul(g, (mf * self.task_w[t]).div_(cnt), out=d_out[t, :self.out_dims[t]])
                continue
            z = out[t, 0].float()                                                     # [b]
            if kind == "binary":
                losses.append(F.binary_cross_entropy_with_logits(z, y, weight=mf, reduction="sum") / cnt)
                diff = torch.sigmoid(z).sub_(y)
                coef = self.task_w[t]
            elif kind == "regression":
                diff = z - y
                losses.append((diff * diff * mf).sum() / cnt)
                coef = 2.0 * self.task_w[t]
            else:
                raise ValueError(f"unknown task kind {kind!r}")
            torch.mul(diff, (mf * coef).div_(cnt), out=d_out[t, 0])
        losses_t = torch.stack(losses)
        return losses_t, (losses_t * self.weights).sum()

    def _adam(self, g: Tensor) -> None:
        self.t += 1
        self.step_t.add_(1)
        if self._fused_adam is None:
            return self._adam_ops(g)
        b1, b2 = self.betas
        self._fused_adam([self.flat], [g], [self.m], [self.v], [], [self.step_t], lr=self.lr, beta1=b1, beta2=b2,
                         weight_decay=self.wd, eps=self.eps, amsgrad=False, maximize=False)

    def _adam_ops(self, g: Tensor) -> None:
        """Adam / AdamW as six operations on the flat buffer (where torch has no fused kernel)."""
        b1, b2 = self.betas
        p = self.flat
        if self.wd and not self.adamw:
            g = g.add(p, alpha=self.wd)
        if self.wd and self.adamw:
            p.mul_(1.0 - self.lr * self.wd)
        self.m.lerp_(g, 1.0 - b1)
        self.v.mul_(b2).addcmul_(g, g, value=1.0 - b2)
        denom = self.v.sqrt().div_(math.sqrt(1.0 - b2 ** self.t)).add_(self.eps)
        p.addcdiv_(self.m, denom, value=-self.lr / (1.0 - b1 ** self.t))
