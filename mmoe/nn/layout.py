"""Where each parameter of a model lives in the fused step's one flat buffer (``FlatLayout``)."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor


class FlatLayout:
    """Where each parameter lives in the flat buffer: name -> (offset, shape, stride) of a view.

    The first layer of the experts (``[e, d, h]``) and of the gates (``[g, d, k]``) are
    strided views of one ``W0T [F, d]`` block, F = e*h + g*k, so the fused first-layer GEMM
    and its weight gradient read and write them without a copy.
    """

    def __init__(self, params: dict[str, Tensor], first: Sequence[tuple[str, str, int, int]], d: int):
        self.views: dict[str, tuple[int, tuple, tuple]] = {}
        f_total = sum(n * h for _, _, n, h in first)
        off = 0
        # W0T [F, d]: member j of group (n, h) is rows [row + j*h, row + (j+1)*h)
        self.w0 = (off, (f_total, d), (d, 1))
        row = 0
        for wname, _, n, h in first:
            # param [n, d, h][j, i, k] = W0T[row + j*h + k, i]
            self.views[wname] = (off + row * d, (n, d, h), (h * d, 1, d))
            row += n * h
        off += f_total * d
        self.b0 = (off, (f_total,), (1,))
        row = 0
        for _, bname, n, h in first:
            self.views[bname] = (off + row, (n, 1, h), (h, h, 1))
            row += n * h
        off += f_total
        for name, p in params.items():
            if name in self.views:
                continue
            shape = tuple(p.shape)
            stride = tuple(torch.empty(shape, device="meta").stride())
            self.views[name] = (off, shape, stride)
            off += p.numel()
        self.numel = off

    def view(self, flat: Tensor, name: str) -> Tensor:
        off, shape, stride = self.views[name]
        return flat.as_strided(shape, stride, off)

    def block(self, flat: Tensor, which: str) -> Tensor:
        off, shape, stride = getattr(self, which)
        return flat.as_strided(shape, stride, off)
