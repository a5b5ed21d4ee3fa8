"""What a model description (``model.json``: sizes and the ModelConfig) costs, computed without allocating
anything, so a damaged or hostile file, or settings far too large, are refused before torch allocates.

    parameter_count(meta, mc)   the parameters ``TabularModel(meta)`` would hold
    check_model_size(meta, mc)  ConfigError (a ValueError) when the sizes are not whole numbers of a
                                sensible range, or the float32 weights need more memory than this machine has
"""
from __future__ import annotations

import os
from typing import Mapping, Sequence

from mmoe.config import ConfigError

BYTES_PER_PARAMETER = 4          # float32 weights
NO_MEMORY_INFO_LIMIT = 2 ** 40   # bytes assumed where the OS does not say (1 TiB)


def physical_memory() -> int | None:
    """This machine's memory in bytes (None where the OS does not say)."""
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return None


def _count(value, what: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"model description: {what} is {value!r}; it must be a whole number >= {minimum} "
                          "(the model.json is damaged: train the run again)")
    return value


def _stacked(n: int, din: int, widths: Sequence[int]) -> int:
    """Parameters of ``StackedMLP(n, din, widths)``: per member, a weight and a bias per layer."""
    dims = (din, *widths)
    return n * sum(a * b + b for a, b in zip(dims[:-1], dims[1:]))


def parameter_count(meta: Mapping, mc) -> int:
    """The parameters of ``TabularModel(meta)`` (``mc`` its ModelConfig), from the sizes alone."""
    num_numeric = _count(meta.get("num_numeric"), "num_numeric", 0)
    cards = meta.get("cardinalities")
    dims = meta.get("embedding_dims")
    tasks = meta.get("task_dims")
    if not isinstance(cards, list) or not isinstance(dims, list) or len(cards) != len(dims):
        raise ConfigError("model description: cardinalities and embedding_dims must be lists of equal length "
                          "(the model.json is damaged: train the run again)")
    if not isinstance(tasks, Mapping) or not tasks:
        raise ConfigError("model description: task_dims must name at least one task "
                          "(the model.json is damaged: train the run again)")
    cards = [_count(c, "a cardinality", 1) for c in cards]
    dims = [_count(d, "an embedding width", 1) for d in dims]
    outs = [_count(v, f"the output width of task {str(k)[:40]!r}", 1) for k, v in tasks.items()]
    d = num_numeric + sum(dims)
    total = sum(cards) * max(dims, default=0)                                  # one shared embedding table
    t, widths = len(outs), tuple(mc.expert_hidden)
    if mc.arch == "shared-bottom":
        total += _stacked(1, d, widths)
    elif mc.arch in ("cgc", "ple"):   # mmoe.nn.ple: per level e experts, t task gates over s+k, a shared gate
        s, k = mc.shared_experts, mc.task_experts
        for i in range(mc.num_levels):
            din = d if i == 0 else widths[-1]
            total += _stacked(s + t * k, din, widths) + _stacked(t, din, (*mc.gate_hidden, s + k))
            if i < mc.num_levels - 1:
                total += _stacked(1, din, (*mc.gate_hidden, s + t * k))
    else:
        gates = 1 if mc.arch == "omoe" else t
        total += _stacked(mc.num_experts, d, widths) + _stacked(gates, d, (*mc.gate_hidden, mc.num_experts))
    return total + _stacked(t, widths[-1], (*mc.tower_hidden, max(outs)))


def check_model_size(meta: Mapping, mc) -> int:
    """The parameter count, or ConfigError when the float32 weights alone would not fit in this
    machine's memory (or in 1 TiB where the OS does not say how much it has)."""
    n = parameter_count(meta, mc)
    need = n * BYTES_PER_PARAMETER
    have = physical_memory()
    limit = have if have else NO_MEMORY_INFO_LIMIT
    if need > limit:
        raise ConfigError(f"model: these sizes make {n:,} parameters, {need / 2**30:,.1f} GiB of float32 weights, "
                          f"more than this machine's {limit / 2**30:,.1f} GiB of memory: use fewer experts, "
                          "narrower layers or fewer categories (a stored model.json with such sizes is damaged)")
    return n
