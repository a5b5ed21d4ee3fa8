"""Run under torchrun by test_distributed.py: two processes fit one model on the tiny frame, one of them
alone asking to stop (or being cancelled); each writes what it ended with to OUT/rank<r>.json."""
from __future__ import annotations

import hashlib
import json
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import torch  # noqa: E402

from frames import make_tiny_frame  # noqa: E402
from mmoe.config import DataConfig, ModelConfig, TaskSpec, TrainConfig  # noqa: E402
from mmoe.data import prepare  # noqa: E402
from mmoe.nn import build_model  # noqa: E402
from mmoe.training import Callback, fit  # noqa: E402
from mmoe.training.distributed import join_from_env, leave  # noqa: E402


class OnlyHere(Callback):
    """On one rank only: ask to stop (``stop``) or set the cancel event (``cancel``) at epoch 2, batch 3."""

    def __init__(self, how: str, event: threading.Event):
        self.how, self.event = how, event

    def on_batch_end(self, state) -> None:
        if state.epoch == 2 and state.batch == 3:
            if self.how == "stop":
                state.request_stop("stop asked on rank 1 only")
            else:
                self.event.set()


def main(how: str, out: Path) -> None:
    world = join_from_env("cpu")
    data = prepare(make_tiny_frame(), DataConfig(tasks=(TaskSpec("click", "binary", positive="yes"),
                                                        TaskSpec("score", "regression")), seed=0))
    torch.manual_seed(0)
    model = build_model(ModelConfig(num_experts=3, expert_hidden=(8,), tower_hidden=(4,)), data)
    event = threading.Event()
    callbacks = [OnlyHere(how, event)] if world.rank == 1 else []
    r = fit(model, data, TrainConfig(epochs=6, batch_size=16, precision="fp32", threads=1),
            callbacks=callbacks, cancel_event=event)
    weights = torch.cat([p.detach().reshape(-1) for p in model.parameters()]).numpy().tobytes()
    (out / f"rank{world.rank}.json").write_text(json.dumps({
        "status": r.status, "epochs": r.epochs, "message": r.message, "metrics": r.metrics,
        "weights": hashlib.sha256(weights).hexdigest(), "history": len(r.history)}))
    leave()


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
