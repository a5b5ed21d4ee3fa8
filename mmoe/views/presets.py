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


def widget_values(model: ModelConfig, train: TrainConfig) -> dict:
    """The Model & training page's widget values (without their key prefix) for these settings: what a
    preset fills in, and what "train again with these settings" restores."""
    m, t = model, train
    return {
        "arch": m.arch, "experts": m.num_experts, "expert_hidden": widths_text(m.expert_hidden),
        "gate": "MLP" if m.gate_hidden else "linear", "gate_hidden": widths_text(m.gate_hidden) or "16",
        "sparse": m.top_k is not None, "top_k": m.top_k or 2, "aux": m.aux_loss_weight,
        "tower_hidden": widths_text(m.tower_hidden), "dropout": m.dropout,
        "shared_experts": m.shared_experts, "task_experts": m.task_experts,
        "levels": m.num_levels if m.arch == "ple" else 2,
        "optimizer": t.optimizer, "lr": t.lr, "weight_decay": t.weight_decay, "epochs": t.epochs or 10,
        "batch_size": t.batch_size or 512, "auto_schedule": t.batch_size is None and t.epochs is None,
        "early": t.early_stopping_patience is not None, "patience": t.early_stopping_patience or 3,
        "weighting": t.task_weighting,
    }


def run_widget_values(record) -> dict:
    """A stored run's settings as widget values: the batch size and epochs it used (never "automatic",
    so training again is exactly the same run), its seed, device and per-task loss weights."""
    model, train = ModelConfig.from_dict(record.model_config), TrainConfig.from_dict(record.train_config)
    values = widget_values(model, train)
    values.update(auto_schedule=False, seed=train.seed, device=train.device)
    for t in (record.data_config or {}).get("tasks", []):
        values[f"w.{t['column']}"] = float(t.get("weight", 1.0))
        if t.get("kind", "binary") == "binary":
            values[f"pw.{t['column']}"] = "none"
    values["gradnorm_alpha"] = train.gradnorm_alpha
    for col, w in train.pos_weight.items():     # a binary task's class weight: balanced or a number
        values[f"pw.{col}"] = "balanced" if w == "balanced" else "number"
        if w != "balanced":
            values[f"pw.{col}.value"] = float(w)
    return values


def run_data_choices(record) -> dict:
    """A stored run's Data page choices: targets with their kinds (and positive values), features
    (None: the default ones), kind overrides and the split."""
    from mmoe.views.datasets import IS_VALUE, THRESHOLD

    dc = record.data_config or {}
    tasks = dc.get("tasks", [])
    return {"targets": [t["column"] for t in tasks],
            "kinds": {t["column"]: THRESHOLD if t.get("threshold") else IS_VALUE if t.get("positive") is not None
                      else t.get("kind", "binary") for t in tasks},
            "thresholds": {t["column"]: t["threshold"] for t in tasks if t.get("threshold")},
            "values": {t["column"]: t["positive"] for t in tasks if t.get("positive") is not None},
            "features": list(dc["features"]) if dc.get("features") is not None else None,
            "drop": list(dc.get("drop") or []), "overrides": dict(dc.get("kind_overrides") or {}),
            "val": dc.get("val_fraction", 0.2), "test": dc.get("test_fraction", 0.0), "seed": dc.get("seed", 0)}
