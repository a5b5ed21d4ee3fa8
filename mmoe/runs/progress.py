"""The command line's progress: a tqdm bar over all batches of all epochs, and each epoch's validation
metrics as a line, on stderr when it is a terminal."""
from __future__ import annotations

import sys

from mmoe.training import Callback


class ProgressBar(Callback):
    def __init__(self, enabled: bool):
        self.enabled, self.bar = enabled, None

    def on_train_begin(self, state):
        if self.enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=state.epochs * state.batches, unit="batch", file=sys.stderr,
                            dynamic_ncols=True, leave=False)

    def on_batch_end(self, state):
        if self.bar is not None:
            self.bar.update(1)
            if state.batch % 20 == 0:
                self.bar.set_postfix_str(f"epoch {state.epoch}/{state.epochs} "
                                         f"{state.samples_per_second:,.0f} samples/s", refresh=False)

    def on_epoch_end(self, state):
        if self.bar is not None:
            val = state.epoch_metrics.get("val", {})
            parts = [f"{t}: " + " ".join(f"{k}={v:.4f}" for k, v in m.items() if k != "gate_entropy")
                     for t, m in val.items()]
            self.bar.write(f"epoch {state.epoch}: " + " | ".join(parts), file=sys.stderr)

    def on_train_end(self, state):
        if self.bar is not None:
            self.bar.close()
