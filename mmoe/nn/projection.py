"""The first layer's categorical part computed per category instead of per row (``CategoryProjection``).

The first layer multiplies each row's embeddings ``[sum widths]`` by their block of the weights
``W [F, sum widths]``: ``b * sum(widths) * F`` multiply-adds per batch. But a column with ``V`` categories
has only ``V`` distinct embeddings, so projecting the table once, ``P[r] = table[r] @ W_c^T`` for every
category ``r`` of column ``c`` (``sum(V * width) * F`` multiply-adds), turns the batch's product into a sum
of ``c`` rows of ``P`` per row (``torch.nn.functional.embedding_bag``, ``b * c * F`` additions). On
census-income (27 columns, 406 categories, 175 embedding values per row, F = 144) the projection is
about a tenth of the batch's GEMM.

Only scoring (``FusedStep.forward``) takes this route. The backward of a per-category sum is a scatter of
whole ``F``-wide rows, which measured slower than the GEMMs it would replace, and a training step that
projects its forward but keeps the gathered embeddings for its backward measured 6-10% slower than one
that does not (``bench/ANALYSIS.md``). Scoring census-income's validation rows: 0.44x the time.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


class CategoryProjection:
    """``W_cat @ embeddings^T`` of a batch (``[F, b]``) from the table and the first layer's weights.

    The columns are padded to the widest one (``[c, max categories, width]``) so that all projections are
    one batched GEMM; padding elements are masked to zero, padding rows are dropped."""

    def __init__(self, cardinalities: Sequence[int], embedding_dims: Sequence[int], width: int, n_num: int,
                 device: torch.device):
        cards, dims = [int(c) for c in cardinalities], [int(d) for d in embedding_dims]
        self.c, self.v_max, self.width = len(cards), max(cards), int(width)
        self.rows = sum(cards)
        self.sw = sum(dims)
        offsets = [0]
        for v in cards[:-1]:
            offsets.append(offsets[-1] + v)
        starts = [n_num]
        for d in dims[:-1]:
            starts.append(starts[-1] + d)
        r = torch.arange(self.v_max)[:, None]                                         # [V, 1]
        k = torch.arange(self.width)[None, :]                                         # [1, w]
        tidx, tmask, widx, keep = [], [], [], []
        for c, (v, d) in enumerate(zip(cards, dims)):
            valid = (r < v) & (k < d)                                                 # [V, w]
            tidx.append(torch.where(valid, (offsets[c] + r) * self.width + k, 0))
            tmask.append(valid)
            widx.append(starts[c] + torch.arange(self.width).clamp(max=d - 1))       # (masked past d)
            keep.append(c * self.v_max + torch.arange(v))
        self.tidx = torch.stack(tidx).view(-1).to(device)                            # table element per slot
        self.tmask = torch.stack(tmask).to(device=device, dtype=torch.float32)       # [c, V, w]
        self.widx = torch.cat(widx).to(device)                                       # [c * w] input column
        self.keep = torch.cat(keep).to(device)                                       # padded row -> table row

    def worth_it(self, b: int) -> bool:
        """Whether projecting costs less than the batch's GEMM: the padded projection and the per-row sums
        against the GEMM's ``b * sum(widths)`` (both times F), with a margin for the extra operations."""
        return 2 * (self.c * self.v_max * self.width + b * self.c) <= b * self.sw

    def table(self, table: Tensor, w0t: Tensor) -> Tensor:
        """``P [table rows, F]``: every category's embedding through its column's block of ``w0t [F, d]``."""
        t = torch.index_select(table.reshape(-1), 0, self.tidx).view(self.c, self.v_max, self.width)
        t.mul_(self.tmask)
        w = w0t.index_select(1, self.widx).view(w0t.shape[0], self.c, self.width).permute(1, 2, 0)  # [c, w, F]
        return torch.bmm(t, w).view(self.c * self.v_max, -1).index_select(0, self.keep)

    @staticmethod
    def batch(p: Tensor, rows: Tensor) -> Tensor:
        """``[b, F]``: the sum of each batch row's categories' rows of ``p`` (``rows [b, c]``: table rows)."""
        return F.embedding_bag(rows, p, mode="sum")
