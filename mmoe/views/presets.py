"""Named starting points for the model and training settings (the dashboard's "Presets").

    PRESETS["Quick look"] -> Preset(model=ModelConfig(...), train=TrainConfig(...), description)

A preset only fills in settings; every value can be changed afterwards.
"""
from __future__ import annotations

from dataclasses import dataclass

from mmoe.config import ModelConfig, TrainConfig


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    model: ModelConfig
    train: TrainConfig


PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset("Quick look",
           "Small MMoE, batch size and epochs from the table's size: a first result in seconds on a CPU.",
           ModelConfig(arch="mmoe", num_experts=4, expert_hidden=(32,), gate_hidden=(), tower_hidden=(8,)),
           TrainConfig(lr=2e-3)),
    Preset("Paper (census)",
           "After the MMoE paper's census-income setup: 8 small experts with linear gates, "
           "Adam, batch 1024, early stopping on the validation loss.",
           ModelConfig(arch="mmoe", num_experts=8, expert_hidden=(16,), gate_hidden=(), tower_hidden=(8,)),
           TrainConfig(epochs=30, batch_size=1024, lr=1e-3, early_stopping_patience=5)),
    Preset("Sparse top-2",
           "8 experts, each row routed to its 2 best experts (with a load-balancing loss).",
           ModelConfig(arch="mmoe", num_experts=8, expert_hidden=(64, 32), gate_hidden=(), tower_hidden=(16,),
                       top_k=2, aux_loss_weight=0.01),
           TrainConfig(lr=1e-3)),
    Preset("Shared-Bottom baseline",
           "The classic hard-parameter-sharing baseline: one shared MLP and a tower per task.",
           ModelConfig(arch="shared-bottom", num_experts=1, expert_hidden=(128, 64), tower_hidden=(16,)),
           TrainConfig(lr=1e-3)),
)}

DEFAULT_PRESET = "Quick look"


def preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise KeyError(f"no preset named {name!r}; choose one of {', '.join(PRESETS)}") from None


def widths_text(widths: tuple[int, ...]) -> str:
    """(64, 32) -> '64,32' (the form the layer-width text boxes use)."""
    return ",".join(str(w) for w in widths)


def compare_configs(model: ModelConfig) -> list[ModelConfig]:
    """The same settings as MMoE, OMoE and Shared-Bottom, for a quick side-by-side comparison.

    Shared-Bottom has no gate: its top-k is cleared (and it uses a single bottom MLP)."""
    out = []
    for arch in ("mmoe", "omoe", "shared-bottom"):
        d = model.to_dict()
        d["arch"] = arch
        if arch == "shared-bottom":
            d["top_k"] = None
        out.append(ModelConfig.from_dict(d))
    return out
