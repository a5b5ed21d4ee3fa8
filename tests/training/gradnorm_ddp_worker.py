"""Run under torchrun by test_gradnorm_distributed.py: two processes fit one model with GradNorm (an uneven
last batch, missing labels) and each writes its learned task weights and model weights to OUT/rank<r>.json."""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import numpy as np  # noqa: E402
import torch  # noqa: E402

from frames import make_tiny_frame  # noqa: E402
from mmoe.config import DataConfig, ModelConfig, TaskSpec, TrainConfig  # noqa: E402
from mmoe.data import prepare  # noqa: E402
from mmoe.nn import build_model  # noqa: E402
from mmoe.training import fit  # noqa: E402
from mmoe.training.distributed import join_from_env, leave  # noqa: E402


def main(out: Path) -> None:
    world = join_from_env("cpu")
    frame = make_tiny_frame()
    frame.loc[np.arange(0, len(frame), 3), "click"] = None          # a third of the click labels missing
    data = prepare(frame, DataConfig(tasks=(TaskSpec("click", "binary", positive="yes"),
                                            TaskSpec("score", "regression")), seed=0))
    torch.manual_seed(0)
    model = build_model(ModelConfig(num_experts=3, expert_hidden=(8,), tower_hidden=(4,)), data)
    r = fit(model, data, TrainConfig(epochs=3, batch_size=53, lr=1e-2, precision="fp32", threads=1,
                                     task_weighting="gradnorm", pos_weight={"click": "balanced"}))
    weights = torch.cat([p.detach().reshape(-1) for p in model.parameters()]).numpy().tobytes()
    (out / f"rank{world.rank}.json").write_text(json.dumps({
        "status": r.status, "message": r.message, "step": r.step,
        "task_weights": [[e["train"][t]["task_weight"] for t in ("click", "score")] for e in r.history],
        "weights": hashlib.sha256(weights).hexdigest()}))
    leave()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
