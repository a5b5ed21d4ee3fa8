"""Optional kernels of torch that the fused step uses where this torch has them, each probed once.

``onednn_matmul()``: oneDNN's matmul for the fp32 CPU first layer; ``fused_adam(adamw)``: torch's one-kernel
Adam / AdamW. Each returns None where torch lacks it, and ``mmoe.nn.fused`` then falls back to plain ops.
"""
from __future__ import annotations

import functools

import torch


@functools.cache
def onednn_matmul():
    """``a @ b`` for fp32 CPU matrices through oneDNN (``torch.ops.mkldnn._linear_pointwise``: ``a @ w.T``) where
    this torch has it, else None (probed once, on first use): 0.55-0.85x torch.mm's (MKL's) time at the first
    layer's shapes on the AMD EPYC measured (``bench/ANALYSIS.md``). The bf16 and CUDA paths keep torch.mm."""
    try:    # the op is registered only where torch was built with oneDNN
        op = torch.ops.mkldnn._linear_pointwise.default
        a, b = torch.arange(12.0).view(3, 4) / 7, torch.arange(20.0).view(4, 5) / 9   # (no draw from any RNG)
        ok = torch.backends.mkldnn.is_available() and torch.allclose(op(a, b.t(), None, "none", [], ""), a @ b,
                                                                     atol=1e-5)
    except (AttributeError, RuntimeError):
        ok = False
    return (lambda a, b: op(a, b.t(), None, "none", [], "")) if ok else None


@functools.cache
def fused_adam(adamw: bool):
    """torch's one-kernel Adam (``torch._fused_adam_``) or AdamW (``torch._fused_adamw_``) where this torch has
    it, else None (probed once): one pass over the flat buffer instead of six (census step config, 71k
    parameters: 63-80 -> 23 us on the AMD EPYC measured), and its step count is a tensor, so a step
    captured as a CUDA graph keeps counting on replay. The fallback is ``FusedStep._adam_ops``."""
    op = getattr(torch, "_fused_adamw_" if adamw else "_fused_adam_", None)
    if op is None:
        return None
    try:    # (CPU kernels since torch 2.4; a torch without them raises here)
        p, g, m, v, t = torch.ones(4), torch.ones(4), torch.zeros(4), torch.zeros(4), torch.ones(())
        op([p], [g], [m], [v], [], [t], lr=0.1, beta1=0.9, beta2=0.999, weight_decay=0.0, eps=1e-8,
           amsgrad=False, maximize=False)
        ok = torch.allclose(p, torch.full((4,), 0.9))
    except (RuntimeError, TypeError, NotImplementedError):
        ok = False
    return op if ok else None
