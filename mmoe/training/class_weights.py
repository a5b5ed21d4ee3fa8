"""Class weights of binary tasks: BCE's ``pos_weight`` per task, a number or "balanced".

"balanced" is derived from the *training* split only (validation and test rows never decide a
setting): negatives / positives among the task's labelled training rows, so that the positive rows
weigh as much in the loss as the negative ones. Use it for a task with a few percent positives: the
model then ranks and recalls the rare class better in the loss it trains on, at the price of
probabilities that are no longer calibrated (they are pushed up by about the factor itself).
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

from mmoe.config import BALANCED, ConfigError, TrainConfig


def positive_counts(data, columns) -> dict[str, tuple[int, int]]:
    """(positives, negatives) of each binary task in ``columns`` among its labelled training rows.
    ``data``: a ``PreparedData`` or a streamed table (read block by block, targets only)."""
    columns = list(columns)
    if getattr(data, "streamed", False):
        from mmoe.data.streaming import SPLIT_CODES

        counts = {c: [0, 0] for c in columns}
        for b in range(data.n_blocks):
            blk = data.block(b, features=False)
            train = blk["split"] == SPLIT_CODES["train"]
            for c in columns:
                m = train & blk["mask"][c].numpy()
                pos = int(np.count_nonzero(blk["y"][c].numpy()[m] > 0.5))
                counts[c][0] += pos
                counts[c][1] += int(np.count_nonzero(m)) - pos
        return {c: (p, n) for c, (p, n) in counts.items()}
    idx = data.splits["train"]
    out = {}
    for c in columns:
        m = data.mask[c][idx]
        y = data.y[c][idx][m]
        pos = int(torch.count_nonzero(y > 0.5))
        out[c] = (pos, int(m.sum()) - pos)
    return out


def resolve_pos_weights(config: TrainConfig, data) -> TrainConfig:
    """``config`` with every "balanced" pos_weight replaced by negatives / positives of the training split.
    Refuses (ConfigError) a pos_weight for a column that is no binary task, or "balanced" for a task whose
    training rows are all of one class."""
    if not config.pos_weight:
        return config
    config.check_tasks(data.tasks)
    balanced = [c for c, v in config.pos_weight.items() if v == BALANCED]
    if not balanced:
        return config
    counts = positive_counts(data, balanced)
    values = dict(config.pos_weight)
    for c in balanced:
        pos, neg = counts[c]
        if pos == 0 or neg == 0:
            raise ConfigError(f"train: pos_weight balanced for {c!r}: its labelled training rows are {pos} positive "
                              f"and {neg} negative, so negatives / positives is undefined; give a number instead")
        values[c] = neg / pos
    return dataclasses.replace(config, pos_weight=values)
