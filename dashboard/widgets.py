"""Widget groups of the Model & training page: each draws its controls and returns a config object.

    apply_preset(name)            fill the widgets below with a preset (an on_click/on_change callback)
    model_widgets()               -> ModelConfig            (raises ConfigError with a clear message)
    train_widgets(device_info)    -> TrainConfig
    task_weight_widgets(tasks)    -> ("fixed" | "uncertainty" | "gradnorm", {task: weight},
                                      {"gradnorm_alpha"?, "pos_weight": {task: number | "balanced"}})
    experiment_widgets()          -> (seeds, grid): repeat with N seeds, sweep up to two settings
"""
from __future__ import annotations

import streamlit as st

from mmoe.config import LAYERED_ARCHS, ModelConfig, TaskSpec, TrainConfig
from mmoe.runs.experiments import parse_grid
from mmoe.training import auto_schedule, schedule_text, schedule_warnings
from mmoe.views.formatting import plain
from mmoe.views.presets import DEFAULT_PRESET, PRESETS, widget_values

KEEP = "session"
ARCH_LABELS = {"mmoe": "MMoE (a gate per task)", "omoe": "OMoE (one shared gate)",
               "shared-bottom": "Shared-Bottom (no experts)", "cgc": "CGC (shared + per-task experts)",
               "ple": "PLE (stacked CGC levels)"}
LAYERED_DEFAULTS = {"shared_experts": 4, "task_experts": 2, "levels": 2}   # cgc / ple, until a preset sets them
K = "train."   # widget key prefix
PLAIN_NUMBER = "%g"   # a number input's display format (sprintf.js) for rates: 0, 0.0001, 0.003, 1e-7


def _preset_values(name: str) -> dict:
    p = PRESETS[name]
    values = widget_values(p.model, p.train)
    values.pop("weighting")   # the preset leaves the task weighting alone
    return values


def apply_preset(name: str | None = None) -> None:
    """Set every model/training widget to the preset's value (the preset selectbox's callback)."""
    name = name or st.session_state.get(K + "preset", DEFAULT_PRESET)
    for k, v in _preset_values(name).items():
        st.session_state[K + k] = v


def preset_changes(name: str) -> list[str]:
    """The widgets (without their key prefix) whose values differ from preset ``name``'s: the settings were
    changed after it was chosen, so the page should not say they are that preset."""
    ss = st.session_state
    auto = ss.get(K + "auto_schedule") is True     # (then the page fills epochs and batch size from the data)
    return [k for k, v in _preset_values(name).items()
            if K + k in ss and ss[K + k] != v and not (auto and k in ("epochs", "batch_size"))]


def init_defaults() -> None:
    """First visit: start from the default preset."""
    if K + "arch" not in st.session_state:
        apply_preset(DEFAULT_PRESET)


def model_widgets() -> ModelConfig:
    """Architecture, experts, gates, towers, dropout -> ModelConfig."""
    arch = st.radio("Architecture", list(ARCH_LABELS), format_func=ARCH_LABELS.get, key=K + "arch",
                    horizontal=True, persist_state=KEEP)
    shared = arch == "shared-bottom"
    layered = arch in LAYERED_ARCHS
    c1, c2, c3 = st.columns(3)
    if layered:   # cgc / ple: shared and per-task experts instead of one number of experts
        for k, v in LAYERED_DEFAULTS.items():
            st.session_state.setdefault(K + k, v)
        per_level = " (on each level)" if arch == "ple" else ""
        n_shared = c1.number_input("Shared experts", 1, 64, key=K + "shared_experts", persist_state=KEEP,
                                   help="experts every task's gate sees" + per_level)
        experts = ModelConfig().num_experts   # not used by cgc / ple: the command line's default, so the
        # stored settings and the command panel match a run started from the shell
    else:
        experts = c1.number_input("Experts", 1, 256, key=K + "experts", disabled=shared, persist_state=KEEP,
                                  help="number of expert networks shared by all tasks")
    expert_hidden = c2.text_input("Bottom MLP layers" if shared else "Expert layers", key=K + "expert_hidden",
                                  persist_state=KEEP, help="hidden widths, comma separated, e.g. 64,32")
    tower_hidden = c3.text_input("Tower layers", key=K + "tower_hidden", persist_state=KEEP,
                                 help="hidden widths of each task's tower, e.g. 16 (empty: a linear head)")
    c1, c2, c3 = st.columns(3)
    gate = c1.radio("Gate", ["linear", "MLP"], key=K + "gate", horizontal=True, disabled=shared,
                    persist_state=KEEP, help="linear: softmax(W x) as in the paper; MLP: a small network")
    gate_hidden = c2.text_input("Gate layers", key=K + "gate_hidden", disabled=shared or gate != "MLP",
                                persist_state=KEEP, help="hidden widths of the gate MLP, e.g. 16")
    dropout = c3.slider("Dropout", 0.0, 0.8, step=0.05, key=K + "dropout", persist_state=KEEP)
    n_task, levels = LAYERED_DEFAULTS["task_experts"], None
    if layered:
        c1, c2, c3 = st.columns(3)
        n_task = c1.number_input("Experts per task", 1, 64, key=K + "task_experts", persist_state=KEEP,
                                 help="each task's own experts" + per_level + ": only that task's gate sees them")
        if arch == "ple":
            levels = c2.number_input("Extraction levels", 1, 8, key=K + "levels", persist_state=KEEP,
                                     help="stacked CGC levels; every level but the last has a shared gate over "
                                          "all its experts, feeding the next level's shared experts")
        c3.caption("Each task's gate mixes the shared experts and that task's own experts.")
    c1, c2, c3 = st.columns(3)
    no_sparse = shared or layered
    sparse = c1.checkbox("Sparse top-k gating", key=K + "sparse", disabled=no_sparse, persist_state=KEEP,
                         help="CGC and PLE have dense gates only" if layered else
                         "route each row to its k best experts only (with a load-balancing loss)")
    top_k = c2.number_input("k", 1, 256, key=K + "top_k", disabled=no_sparse or not sparse, persist_state=KEEP)
    aux = c3.number_input("Load-balancing loss weight", 0.0, 10.0, step=0.005, format="%.3f", key=K + "aux",
                          disabled=no_sparse or not sparse, persist_state=KEEP)
    return ModelConfig(arch=arch, num_experts=1 if shared else int(experts), expert_hidden=expert_hidden,
                       gate_hidden=gate_hidden if gate == "MLP" and not shared else (),
                       tower_hidden=tower_hidden, top_k=int(top_k) if sparse and not no_sparse else None,
                       dropout=float(dropout), aux_loss_weight=float(aux),
                       **({"shared_experts": int(n_shared), "task_experts": int(n_task),
                           "levels": int(levels) if levels not in (None, LAYERED_DEFAULTS["levels"]) else None}
                        if layered else {}))   # levels None: PLE's default (2), as on the command line


def device_options() -> tuple[list[str], str]:
    """(device choices, a line saying what this machine has)."""
    import torch

    if torch.cuda.is_available():
        n = torch.cuda.device_count()
        names = ", ".join(sorted({torch.cuda.get_device_name(i) for i in range(n)}))
        return ["auto", "cuda", "cpu"], f"GPU available: {names} ({n} device{'s' if n > 1 else ''}); auto uses it."
    return ["auto", "cpu"], "No CUDA GPU on this machine: training runs on the CPU."


def train_widgets(n_train: int | None = None) -> TrainConfig:
    """Optimiser, schedule, stopping, device, seed -> TrainConfig (task weighting is added by the page).
    With "from the data" on, batch size and epochs are left to ``training.schedule`` (None) and the
    inputs show what it will choose for ``n_train`` training rows."""
    c1, c2, c3 = st.columns(3)
    optimizer = c1.radio("Optimiser", ["adam", "adamw"], format_func={"adam": "Adam", "adamw": "AdamW"}.get,
                         key=K + "optimizer", horizontal=True, persist_state=KEEP)
    # "%g": 0, 0.0001, 0.003 as typed ("%.1e" showed 0 as "0.0e+0" and 0.003 as "3.0e-3")
    lr = c2.number_input("Learning rate", 1e-6, 1.0, step=1e-4, format=PLAIN_NUMBER, key=K + "lr", persist_state=KEEP)
    wd = c3.number_input("Weight decay", 0.0, 1.0, step=1e-4, format=PLAIN_NUMBER, key=K + "weight_decay",
                         persist_state=KEEP)
    auto = st.checkbox("Batch size and epochs from the data", key=K + "auto_schedule", persist_state=KEEP,
                       help="a batch small enough for at least 20 optimiser steps per epoch (16 to 1024) and "
                            "epochs for about 1,000 steps in all (10 to 200); untick to set them yourself")
    if auto and n_train:
        st.session_state[K + "batch_size"], st.session_state[K + "epochs"] = auto_schedule(n_train)
    c1, c2, c3 = st.columns(3)
    epochs = c1.number_input("Epochs", 1, 10_000, key=K + "epochs", persist_state=KEEP, disabled=auto)
    batch = c2.number_input("Batch size", 1, 1_000_000, step=128, key=K + "batch_size", persist_state=KEEP,
                            disabled=auto)
    with c3:
        early = st.checkbox("Early stopping", key=K + "early", persist_state=KEEP,
                            help="stop when the validation loss has not improved for this many epochs "
                                 "and keep the best epoch's weights")
        patience = st.number_input("Patience (epochs)", 1, 1000, key=K + "patience", disabled=not early,
                                   persist_state=KEEP)
    choices, note = device_options()
    c1, c2 = st.columns([1, 2])
    if st.session_state.get(K + "device") not in choices:
        st.session_state[K + "device"] = "auto"
    device = c1.selectbox("Device", choices, key=K + "device", persist_state=KEEP,
                          format_func={"auto": "auto", "cuda": "GPU (cuda)", "cpu": "CPU"}.get)
    c2.caption(note)
    st.session_state.setdefault(K + "seed", 0)     # (the default here, not as value=: a restored seed would warn)
    seed = c1.number_input("Seed", 0, 2**31 - 1, key=K + "seed", persist_state=KEEP)
    chosen = TrainConfig(epochs=None if auto else int(epochs), batch_size=None if auto else int(batch))
    if n_train:
        st.caption(f"{'Chosen from the data' if auto else 'This schedule'}: {schedule_text(chosen, n_train)}.")
        for w in schedule_warnings(chosen, n_train):
            st.warning(w[0].upper() + w[1:] + ".")
    return TrainConfig(epochs=chosen.epochs, batch_size=chosen.batch_size, lr=float(lr), weight_decay=float(wd),
                       optimizer=optimizer, early_stopping_patience=int(patience) if early else None,
                       device=device, seed=int(seed))


WEIGHTINGS = {"fixed": "fixed per task", "uncertainty": "learned (uncertainty weighting)",
              "gradnorm": "learned (GradNorm)"}
CLASS_WEIGHTS = {"none": "none", "balanced": "balanced (from the training split)", "number": "a number"}


def task_weight_widgets(tasks: tuple[TaskSpec, ...]) -> tuple[str, dict[str, float], dict]:
    """Fixed per-task loss weights, or learned ones: uncertainty weighting (Kendall et al. 2018) or GradNorm
    (Chen et al. 2018) with its alpha; then a class weight per binary task (``class_weight_widgets``).
    Returns (weighting, fixed weights, the further TrainConfig fields: gradnorm_alpha, pos_weight)."""
    mode = st.radio("Task loss weights", list(WEIGHTINGS), key=K + "weighting", horizontal=True,
                    persist_state=KEEP, format_func=WEIGHTINGS.get,
                    help="uncertainty: each task's loss is scaled by a learned exp(-s), s its log variance; "
                         "GradNorm: weights learned so that the tasks' gradients at the last shared layer keep "
                         "their losses falling at the same rate (they sum to the number of tasks). Inspect "
                         "draws the learned weights per epoch.")
    weights: dict[str, float] = {}
    options: dict = {}
    if mode == "fixed":
        cols = st.columns(min(4, max(1, len(tasks))))
        for i, t in enumerate(tasks):
            st.session_state.setdefault(K + f"w.{t.column}", float(t.weight))   # not value=: see the seed
            weights[t.column] = float(cols[i % len(cols)].number_input(
                f"weight of {plain(t.column)}", 0.0, 100.0, step=0.1, key=K + f"w.{t.column}", persist_state=KEEP))
    elif mode == "gradnorm":
        st.session_state.setdefault(K + "gradnorm_alpha", TrainConfig().gradnorm_alpha)
        options["gradnorm_alpha"] = float(st.number_input(
            "GradNorm alpha", 0.0, 10.0, step=0.05, key=K + "gradnorm_alpha", persist_state=KEEP,
            help="how hard GradNorm lifts a task whose loss falls more slowly than the others': 0 evens out the "
                 "gradient norms only; the paper used 1.5 for tasks of different difficulty and 0.12 for tasks "
                 "alike (stable between 0 and 3)"))
    options["pos_weight"] = class_weight_widgets(tasks)
    return mode, weights, options


def class_weight_widgets(tasks: tuple[TaskSpec, ...]) -> dict[str, float | str]:
    """Per binary task: none, balanced or a number -> {task: pos_weight} (TrainConfig.pos_weight)."""
    binary = [t for t in tasks if t.kind == "binary"]
    chosen: dict[str, float | str] = {}
    if not binary:
        return chosen
    cols = st.columns(min(3, len(binary)))
    for i, t in enumerate(binary):
        with cols[i % len(cols)]:
            how = st.selectbox(
                f"class weight of {plain(t.column)}", list(CLASS_WEIGHTS), format_func=CLASS_WEIGHTS.get,
                key=K + f"pw.{t.column}", persist_state=KEEP,
                help="for a task with few positives (a few percent): the positive rows weigh this much more in "
                     "its loss (BCE pos_weight), so the model does not settle for predicting 'no'. balanced: "
                     "negatives / positives of the training split (6% positives: about 15.7). The rare class is "
                     "ranked and recalled better; predicted probabilities are pushed up, no longer calibrated. "
                     "none: every row weighs the same (right when the classes are not rare).")
            if how == "balanced":
                chosen[t.column] = "balanced"
            elif how == "number":
                st.session_state.setdefault(K + f"pw.{t.column}.value", 1.0)
                chosen[t.column] = float(st.number_input(
                    f"pos_weight of {plain(t.column)}", 0.01, 10_000.0, step=0.5, key=K + f"pw.{t.column}.value",
                    persist_state=KEEP, help="1 = no reweighting; 10 = a positive row counts as ten"))
    return chosen


# what the Train page can sweep (the CLI's --grid keys), with a starting list of values
SWEEPS = {"arch": ("architecture", "mmoe, omoe, shared-bottom, cgc, ple"), "experts": ("number of experts", "4, 8, 16"),
          "expert-hidden": ("expert layers", "32 / 64,32 / 128,64"), "gate-hidden": ("gate layers", " / 16"),
          "top-k": ("top-k (0 = dense)", "0, 2, 4"), "lr": ("learning rate", "0.0003, 0.001, 0.003"),
          "batch-size": ("batch size", "256, 1024"), "task-weighting": ("task weighting", "fixed, uncertainty")}


def experiment_widgets() -> tuple[int, list]:
    """Repeat with N seeds and sweep up to two settings -> (seeds, grid); a bad value raises ConfigError."""
    c1, c2 = st.columns([1, 3])
    st.session_state.setdefault(K + "seeds", 1)
    seeds = c1.number_input("Repeat with N seeds", 1, 100, key=K + "seeds", persist_state=KEEP,
                            help="train every setting with seeds seed, seed+1, ...: the results come with 95% "
                                 "intervals, and settings are compared seed by seed (paired)")
    keys = c2.multiselect("Sweep (up to two settings)", list(SWEEPS), format_func=lambda k: SWEEPS[k][0],
                          max_selections=2, key=K + "sweep", persist_state=KEEP, wrap=True,
                          help="train every combination of the values below, each with the same seeds")
    items = []
    cols = st.columns(max(1, len(keys)))
    for col, key in zip(cols, keys):
        st.session_state.setdefault(K + f"sweep.{key}", SWEEPS[key][1])
        text = col.text_input(f"Values of {SWEEPS[key][0]}", key=K + f"sweep.{key}",
                              persist_state=KEEP, help="separate values with commas; layer lists with /")
        items.append(f"{key}={text.replace(' ', '')}")
    return int(seeds), parse_grid(items)
