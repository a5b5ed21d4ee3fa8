"""What the training tests share: prepared tiny data (a fixture), a model with its TrainConfig, and a
callback that records the events it sees."""

import torch

from mmoe.config import ModelConfig, TaskSpec, TrainConfig
from mmoe.nn import build_model
from mmoe.training import Callback

TASKS = (TaskSpec("click", "binary", positive="yes"), TaskSpec("score", "regression"),
         TaskSpec("kind", "multiclass"))


def _fit(data, mc=None, *, init_seed=0, **kw):
    """A model and its TrainConfig. ``init_seed`` seeds the weight initialisation explicitly: ``fit``
    seeds only what it draws itself (shuffles, dropout), and nothing here seeds torch globally."""
    torch.manual_seed(init_seed)
    model = build_model(mc or ModelConfig(num_experts=3, expert_hidden=(16,), tower_hidden=(8,)), data)
    cfg = TrainConfig(**{"epochs": 3, "batch_size": 32, "lr": 1e-2, "device": "cpu", **kw})
    return model, cfg


class Recorder(Callback):
    def __init__(self):
        self.events = []

    def on_train_begin(self, s): self.events.append("begin")
    def on_epoch_end(self, s): self.events.append(f"epoch{s.epoch}")
    def on_batch_end(self, s): self.events.append("batch")
    def on_train_end(self, s): self.events.append(f"end:{s.status}")
