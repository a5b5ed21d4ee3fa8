"""The random draws of one run, kept away from torch's process-wide generator.

A model's initial weights and its dropout masks are drawn from a generator that belongs to the thread
building or training it, while a ``private_rng(seed)`` block is open there; outside one they come from
torch's global generator, as plain torch code would.

Why: the dashboard trains in background threads while its pages keep working in others (the Train page
builds a model on every rerun to count its parameters, which draws initial weights). torch's global
generator is one per process, so with ``torch.manual_seed`` a draw in any other thread between a run's
seeding and its own draws changed that run's weights or masks: the same seed gave another result,
depending on what the user clicked meanwhile. A ``torch.Generator`` seeded with the same seed yields the
same stream as ``torch.manual_seed`` did, so results of one seed are unchanged where nothing interfered.

    with private_rng(seed):                       # weights: the same for the same seed, whatever else runs
        model = build_model(model_config, data)
    with private_rng(seed + rank, device):        # dropout masks of the training on ``device``
        fit(...)
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator

import torch

_local = threading.local()


@contextmanager
def private_rng(seed: int, device: torch.device | str = "cpu") -> Iterator[torch.Generator]:
    """Within the block, this thread's initial weights (always drawn on the CPU) and its dropout masks on
    ``device`` come from generators of their own, seeded with ``seed``; the global generator is not touched.
    Blocks nest (the inner one wins until it closes); other threads never see them."""
    device = torch.device(device)
    saved = getattr(_local, "gens", {})
    gens = dict(saved)
    gens["cpu"] = torch.Generator().manual_seed(seed)
    if device.type != "cpu":
        gens[device.type] = torch.Generator(device=device).manual_seed(seed)
    _local.gens = gens
    try:
        yield gens[device.type]
    finally:
        _local.gens = saved


def generator(device: torch.device | str = "cpu") -> torch.Generator | None:
    """This thread's generator for draws on ``device`` (None outside ``private_rng``: use the global one)."""
    return getattr(_local, "gens", {}).get(torch.device(device).type)


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """``F.dropout(x, p, training)``, its mask drawn from this thread's generator where one is open."""
    if not training or p <= 0:
        return x
    g = generator(x.device)
    if g is None:
        return torch.nn.functional.dropout(x, p, True)
    keep = 1.0 - p
    return x * torch.empty_like(x).bernoulli_(keep, generator=g).div_(keep)
