"""Nothing lost on a refresh: the Data and Train pages' choices are kept in the run store (the dataset
shelf, ``mmoe.runs.datasets``) and the dataset in the query string, so a refresh, a new tab or a link
comes back to the same view; and "train again with these settings" fills both pages from a stored run.

Widget values live in ``st.session_state`` under the pages' keys; this module reads them into a plain
dict (saved per dataset key) and writes such a dict back before the widgets are drawn.
"""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from mmoe.runs.datasets import DatasetShelf
from mmoe.runs.store import RunRecord
from mmoe.views.commands import train_commands
from mmoe.views.datasets import BUILTINS
from mmoe.views.formatting import plain
from mmoe.views.presets import run_data_choices, run_widget_values
from mmoe_dashboard.server_file import KEY_PREFIX, SERVER_FILE
from mmoe_dashboard.state import page, store

TRAIN_PREFIX = "train."
PENDING = "continuity.pending"        # {dataset key: data choices} waiting for the Data page to apply
# the Train page's widgets (without the prefix) that are saved and restored
TRAIN_KEYS = ("arch", "experts", "expert_hidden", "gate", "gate_hidden", "sparse", "top_k", "aux", "tower_hidden",
              "dropout", "optimizer", "lr", "weight_decay", "epochs", "batch_size", "auto_schedule", "early",
              "patience", "device", "seed", "weighting", "gradnorm_alpha", "seeds", "sweep", "name")


def shelf() -> DatasetShelf:
    return DatasetShelf(store().home)


# ----------------------------------------------------------------------------- the Data page

def data_keys(key: str, col: str | None = None) -> dict[str, str]:
    """The Data page's session keys for dataset ``key`` (and target ``col``)."""
    keys = {"targets": f"data.targets.{key}", "features": f"data.features.{key}",
            "auto": f"data.features_auto.{key}", "overrides": f"data.overrides.{key}",
            "val": "data.val", "test": "data.test", "seed": "data.seed"}
    if col is not None:
        keys.update(kind=f"data.kind.{key}.{col}", value=f"data.value.{key}.{col}")
    return keys


def current_data_choices(key: str) -> dict:
    ss, k = st.session_state, data_keys(key)
    targets = list(ss.get(k["targets"], []))
    return {"targets": targets,
            "kinds": {c: ss.get(data_keys(key, c)["kind"]) for c in targets if data_keys(key, c)["kind"] in ss},
            "values": {c: ss.get(data_keys(key, c)["value"]) for c in targets if data_keys(key, c)["value"] in ss},
            "thresholds": {c: f"{ss[f'data.op.{key}.{c}']}{ss[f'data.cut.{key}.{c}']:g}" for c in targets
                           if f"data.op.{key}.{c}" in ss and f"data.cut.{key}.{c}" in ss},
            "features": None if ss.get(k["auto"], True) else list(ss.get(k["features"], [])),
            "overrides": dict(ss.get(k["overrides"], {})),
            "val": ss.get(k["val"], 0.2), "test": ss.get(k["test"], 0.0), "seed": ss.get(k["seed"], 0)}


def save_data_choices(key: str) -> None:
    try:
        shelf().save_choices(key, {"data": current_data_choices(key)})
    except Exception:   # noqa: BLE001 - a read-only store must not break the page; the choices stay in the session
        pass


def restore_data_choices(key: str, columns: list[str]) -> dict | None:
    """Put the saved (or pending "train again") choices of ``key`` into the session before the widgets
    are drawn, once per session and key. Returns the choices applied (the features are applied later,
    by ``pending_features``, once the usable columns are known)."""
    ss = st.session_state
    pending = ss.get(PENDING, {}).pop(key, None)
    done = f"continuity.restored.{key}"
    if pending is None and ss.get(done):
        return None
    ss[done] = True
    choices = pending if pending is not None else (shelf().choices(key).get("data") or None)
    if not choices:
        return None
    k = data_keys(key)
    ss[k["targets"]] = [c for c in choices.get("targets", []) if c in columns]
    for col in ss[k["targets"]]:
        ck = data_keys(key, col)
        if col in choices.get("kinds", {}):
            ss[ck["kind"]] = choices["kinds"][col]
        if col in choices.get("values", {}):
            ss[ck["value"]] = choices["values"][col]
        rule = (choices.get("thresholds") or {}).get(col)
        if rule:   # ">=7" -> the rule and the number widgets
            op = next(o for o in (">=", "<=", ">", "<") if rule.startswith(o))
            ss[f"data.op.{key}.{col}"], ss[f"data.cut.{key}.{col}"] = op, float(rule[len(op):])
    ss[k["overrides"]] = {c: v for c, v in (choices.get("overrides") or {}).items() if c in columns}
    for name in ("val", "test", "seed"):
        if choices.get(name) is not None:
            ss[k[name]] = choices[name]
    ss[f"continuity.features.{key}"] = (choices.get("features"), list(choices.get("drop") or []))
    return choices


def pending_features(key: str, usable: list[str], candidates: list[str]) -> None:
    """Apply restored features: an explicit list, or the default ones minus what the run dropped."""
    features, drop = st.session_state.pop(f"continuity.features.{key}", (None, []))
    k = data_keys(key)
    if features is not None:
        st.session_state[k["auto"]] = False
        st.session_state[k["features"]] = [c for c in features if c in candidates]
    elif drop:
        st.session_state[k["auto"]] = False
        st.session_state[k["features"]] = [c for c in usable if c not in drop]


# ----------------------------------------------------------------------------- the Train page

def save_train_settings(key: str) -> None:
    ss = st.session_state
    values = {name: ss[TRAIN_PREFIX + name] for name in TRAIN_KEYS if TRAIN_PREFIX + name in ss}
    values.update({k[len(TRAIN_PREFIX):]: v for k, v in ss.items()
                   if isinstance(k, str) and k.startswith((TRAIN_PREFIX + "w.", TRAIN_PREFIX + "pw."))})
    try:
        shelf().save_choices(f"train:{key}", {"train": values})
    except Exception:   # noqa: BLE001 - see save_data_choices
        pass


def restore_train_settings(key: str) -> bool:
    """Saved settings of ``key`` into the session when this session has none yet (a refresh)."""
    ss = st.session_state
    if TRAIN_PREFIX + "arch" in ss:
        return False
    values = shelf().choices(f"train:{key}").get("train") or {}
    for name, v in values.items():
        ss[TRAIN_PREFIX + name] = v
    return bool(values)


# ----------------------------------------------------------------------------- train again

def source_of(record: RunRecord) -> tuple[str | None, str]:
    """(the Data page key of the run's table, or None when it is gone, why not)."""
    src = (record.data_summary or {}).get("source") or {}
    key, ds_id = src.get("dataset_key"), src.get("dataset_id")
    if ds_id and shelf().exists(ds_id):
        return f"dataset:{ds_id}", ""
    if not key and (record.data_summary or {}).get("streamed") and src.get("path"):
        key = KEY_PREFIX + str(src["path"])          # a streamed file on the server
    if key and key.startswith(KEY_PREFIX):
        if Path(key[len(KEY_PREFIX):]).exists():
            return key, ""
        return None, f"the file this run trained on ({key[len(KEY_PREFIX):]}) is no longer on the server"
    if key and (key.startswith("builtin:") or key.startswith("synthetic:")):
        return key, ""
    builtin = next((b for b in BUILTINS if b.file and b.file == record.dataset), None)
    if builtin is not None:
        return f"builtin:{builtin.file}", ""
    return None, (f"the table this run trained on ({record.dataset}) is not kept in the store: it was trained "
                  "from the command line or before uploads were kept; upload it again, then use these settings")


def select_source(key: str) -> None:
    """Point the Data page's source controls at dataset ``key``."""
    ss = st.session_state
    if key.startswith(KEY_PREFIX):
        ss["data.source"], ss["data.server_path"] = SERVER_FILE, key[len(KEY_PREFIX):]
    elif key.startswith("dataset:"):
        ss["data.source"], ss["data.recent"] = "Recent dataset", key.split(":", 1)[1]
    elif key.startswith("builtin:"):
        file = key.split(":", 1)[1]
        ss["data.source"] = "Built-in dataset"
        ss["data.builtin"] = next(b.name for b in BUILTINS if b.file == file)
    elif key.startswith("synthetic:"):
        _, corr, rows, seed = key.split(":")
        ss["data.source"] = "Built-in dataset"
        ss["data.builtin"] = next(b.name for b in BUILTINS if b.file is None)
        ss["data.synth.p"], ss["data.synth.rows"], ss["data.synth.seed"] = float(corr), int(rows), int(seed)


def train_again(record: RunRecord) -> str | None:
    """Fill the Data and Train pages with a stored run's table and settings and go to the Data page;
    returns why not when the run's table is gone."""
    key, why = source_of(record)
    if key is None:
        return why
    select_source(key)
    choices = run_data_choices(record)
    st.session_state.setdefault(PENDING, {})[key] = choices
    st.session_state.pop(f"continuity.restored.{key}", None)
    for name, value in run_widget_values(record).items():
        st.session_state[TRAIN_PREFIX + name] = value
    st.session_state[TRAIN_PREFIX + "seeds"], st.session_state[TRAIN_PREFIX + "sweep"] = 1, []
    st.session_state["continuity.again"] = record.id
    st.switch_page(page("data"), query_params={"dataset": key})
    return None


# ----------------------------------------------------------------------------- the same run from a shell

def data_argument(key: str | None, name: str) -> tuple[str, str]:
    """(the ``--data`` argument for the Data page's dataset ``key``, a step to run first or a note)."""
    if key and key.startswith("dataset:") and shelf().exists(key.split(":", 1)[1]):
        return str(shelf().data_file(key.split(":", 1)[1])), ""
    if key and key.startswith(KEY_PREFIX):
        return key[len(KEY_PREFIX):], ""
    if key and key.startswith("builtin:"):
        b = next((b for b in BUILTINS if b.file == key.split(":", 1)[1]), None)
        if b is not None and b.path is not None:
            return str(b.path), ""
    if key and key.startswith("synthetic:"):
        _, corr, rows, seed = key.split(":")
        return "synth.csv", (f"Make the same table first: python -m mmoe synth --correlation {corr} "
                             f"--rows {int(float(rows))} --seed {int(float(seed))} --out synth.csv")
    return name, f"{name} is not kept in the store: give the path of that file on the machine that trains."


def command_panel(data_config, model_config, train_config, key: str | None, name: str, *,
                  what: str = "this run", stream: bool = False) -> None:
    """The ``python -m mmoe train`` and ``torchrun`` commands for ``what``, to copy."""
    with st.expander("The same run from the command line (one process, or torchrun)"):
        path, note = data_argument(key, name)
        cmds = train_commands(data_config, model_config, train_config, path, stream=stream)
        st.caption(f"Train {what} from a shell, e.g. on the full table or on a machine with more GPUs or cores "
                   "(add --store DIR to choose the run store). torchrun: one model on N processes, data-parallel; "
                   "--batch-size stays the global batch.")
        if note:
            st.text(note)
        st.code(cmds["python"], language="bash", wrap_lines=True)
        st.code(cmds["torchrun"], language="bash", wrap_lines=True)
        if cmds["unsaid"]:
            st.warning(plain(f"The command line cannot give: {cmds['unsaid']}."))
