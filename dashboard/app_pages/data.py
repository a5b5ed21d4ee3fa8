"""Data page: choose a table (upload or built-in), its targets and features; see what will be trained."""
from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from mmoe.config import THRESHOLD_OPS, ConfigError
from mmoe.data import DataError, profile_columns, read_csv
from mmoe.runs.datasets import runs_using
from mmoe.runs.errors import StoreError
from mmoe.synthetic import paper_synthetic
from mmoe.views.datasets import (
    BUILTINS,
    IS_VALUE,
    OVERRIDABLE_KINDS,
    THRESHOLD,
    build_config,
    builtin,
    categorical_text,
    check,
    column_table,
    read_report_lines,
    summary_tables,
    target_choices,
    task_from_choice,
    usable_features,
    value_options,
)
from mmoe.views.formatting import plain
from mmoe_dashboard.continuity import (
    pending_features,
    restore_data_choices,
    save_data_choices,
    select_source,
    shelf,
)
from mmoe_dashboard.server_file import SERVER_FILE, server_file_source
from mmoe_dashboard.state import BACK_TO, DATA_KEY, page, store, text_column

KEEP = "session"   # widget values survive page switches
SOURCES = ["Upload a CSV", "Recent dataset", "Built-in dataset", SERVER_FILE]


# ------------------------------------------------------------------------------------- cached work

@st.cache_data(max_entries=4, show_spinner="Reading the file…")
def parse_upload(data: bytes, name: str) -> tuple[pd.DataFrame | None, str | None]:
    """Uploaded bytes -> (frame, None) or (None, the reason it cannot be used). Cached on the bytes."""
    try:
        return read_csv(data, filename=name), None
    except DataError as e:
        return None, str(e)
    except Exception as e:  # noqa: BLE001 - an unreadable upload must never show a traceback
        return None, f"{name!r} cannot be read as a CSV table ({type(e).__name__}: {e})"


@st.cache_data(max_entries=4, show_spinner="Reading the dataset…")
def load_recent(ds_id: str) -> tuple[pd.DataFrame | None, str | None]:
    """A kept dataset -> (frame, None) or (None, why not); cached on its id (its bytes never change)."""
    try:
        entry = shelf().get(ds_id)
        df, problem = parse_upload(shelf().read_bytes(ds_id), entry.name)
    except StoreError as e:
        return None, str(e)
    if df is not None:
        shelf().touch(ds_id, read=df.attrs.get("read_report"))
    return df, problem


def _keep_upload(n: int) -> None:
    """The uploader's callback (it runs before the widgets): keep a readable upload in the store and show
    it as the recent dataset; the uploader is then replaced by a fresh one, so the session holds no copy."""
    up = st.session_state.get(f"data.upload.{n}")
    if up is None:
        return
    _, problem = parse_upload(up.getvalue(), up.name)
    if problem is None:
        try:
            entry = shelf().add(up.getvalue(), up.name)
        except StoreError as e:
            problem = str(e)
        else:
            st.session_state.update({"data.source": "Recent dataset", "data.recent": entry.id,
                                     "data.upload_n": n + 1})
    if problem:
        st.session_state["data.upload_problem"] = problem


def delete_dataset_control(entry) -> None:
    with st.expander("Delete this dataset from the store"):
        used = runs_using(store(), entry.id)
        st.text(f"{len(used)} stored run(s) trained on it" + (": " + ", ".join(f"#{r.id}" for r in used[:20])
                                                               + (" ..." if len(used) > 20 else "") if used else "")
                + ". The runs stay (their models, metrics and predictions); only the table is removed.")
        if st.button("Delete the dataset", key=f"data.delete.{entry.id}"):
            shelf().delete(entry.id)
            st.session_state.pop("data.recent", None)
            st.session_state.pop(DATA_KEY, None)
            st.query_params.pop("dataset", None)
            st.rerun()


@st.cache_data(max_entries=8, show_spinner="Loading the dataset…")
def load_builtin(file: str) -> pd.DataFrame:
    return read_csv(builtin_path(file))


def builtin_path(file: str):
    return next(b.path for b in BUILTINS if b.file == file)


@st.cache_data(max_entries=4, show_spinner="Generating the synthetic data…")
def make_synthetic(rows: int, correlation: float, seed: int) -> pd.DataFrame:
    return paper_synthetic(n_rows=rows, correlation=correlation, seed=seed)


@st.cache_resource(max_entries=8, show_spinner=False)
def profile(key: str, _df: pd.DataFrame):
    """Column profiles of dataset ``key`` (the frame itself is not hashed: the key names it)."""
    return profile_columns(_df)


@st.cache_resource(max_entries=8, show_spinner="Preparing the data…")
def checked(key: str, config_json: str, _df: pd.DataFrame, _config):
    """check() of dataset ``key`` with the config whose JSON is ``config_json``."""
    return check(_df, _config)


# ------------------------------------------------------------------------------------- the source

def main() -> None:
    st.title("Data")
    st.caption("Choose a table, the target columns (one task each) and the feature columns.")

    requested, back = st.query_params.get("dataset"), st.query_params.pop(BACK_TO, None)   # (once: no loop)
    if "data.source" not in st.session_state and requested:
        kept = not requested.startswith("dataset:") or shelf().exists(requested.split(":", 1)[1])
        try:   # a refresh, a new tab or a link: back to the dataset in the address
            if kept:
                select_source(requested)
        except (StopIteration, ValueError):
            kept = False
        if not kept:   # (not silently another table: the newest recent one, or a default)
            st.warning(f"The dataset in this page's address ({plain(requested)}) is not in the run store or among the "
                       "built-in ones any more (deleted, or a link from another store). Upload it again or choose "
                       "another below.", icon=":material/link_off:")
    if st.session_state.get("continuity.again") is not None:
        st.info(f"Filled in from run #{st.session_state['continuity.again']}: its table, targets, features and "
                "split here, its model and training settings on the Model & training page. Check them, then "
                "press Train there.")
    source = st.radio("Source", SOURCES, horizontal=True, key="data.source", persist_state=KEEP)
    df: pd.DataFrame | None = None
    name = key = ""
    suggested: dict = {}
    suggested_drop: tuple = ()
    facts: dict = {}          # a file on the server: its path, size, whether it is streamed

    if source == "Upload a CSV":
        n = st.session_state.setdefault("data.upload_n", 0)
        st.file_uploader("CSV file (comma, semicolon or tab separated; .csv or .csv.gz; up to 1 GB). It is kept "
                         "in the run store, so a refresh or a new tab finds it again.",
                         type=["csv", "gz", "tsv", "txt"], key=f"data.upload.{n}", on_change=_keep_upload, args=(n,))
        problem = st.session_state.pop("data.upload_problem", None)
        if problem:
            st.error(plain(problem), icon=":material/block:")
            st.session_state.pop(DATA_KEY, None)
        else:
            st.info("Upload a CSV file, or choose a recent or a built-in dataset above.")
        st.stop()
    elif source == SERVER_FILE:
        df, name, key, facts = server_file_source()
    elif source == "Recent dataset":
        entries = shelf().list()
        if not entries:
            st.info("No uploaded datasets kept yet: upload a CSV file first.")
            st.stop()
        ids = [e.id for e in entries]
        if st.session_state.get("data.recent") not in ids:
            st.session_state["data.recent"] = ids[0]
        by_id = {e.id: e for e in entries}
        rid = st.selectbox("Recent dataset", ids, key="data.recent", persist_state=KEEP,
                           format_func=lambda i: f"{by_id[i].name} · {by_id[i].bytes / 1e6:,.1f} MB · added "
                                                 f"{by_id[i].added_at[:16].replace('T', ' ')}")
        entry = by_id[rid]
        df, problem = load_recent(rid)
        if problem:
            st.error(plain(problem), icon=":material/block:")
            st.session_state.pop(DATA_KEY, None)
            st.stop()
        name, key = entry.name, entry.key
        delete_dataset_control(entry)
    else:
        options = [b.name for b in BUILTINS if b.available]
        choice = st.selectbox("Built-in dataset", options, key="data.builtin", persist_state=KEEP)
        b = builtin(choice)
        st.caption(b.description)
        if b.file is None:
            c1, c2, c3 = st.columns(3)
            corr = c1.slider("Task correlation p", -1.0, 1.0, 0.5, 0.05, key="data.synth.p", persist_state=KEEP,
                             help="cosine similarity of the two tasks' weight vectors (Ma et al. 2018, sec. 3.2)")
            rows = c2.number_input("Rows", 100, 200_000, 10_000, 1_000, key="data.synth.rows", persist_state=KEEP)
            seed = c3.number_input("Seed", 0, 10_000, 0, key="data.synth.seed", persist_state=KEEP)
            df = make_synthetic(int(rows), float(corr), int(seed))
            name, key = f"synthetic p={corr:g} n={int(rows)} seed={int(seed)}", f"synthetic:{corr}:{rows}:{seed}"
        else:
            df = load_builtin(b.file)
            name, key = b.file, f"builtin:{b.file}"
        suggested = {t.column: t for t in b.tasks}
        suggested_drop = b.drop

    # ------------------------------------------------------------------------------------- overview

    df.attrs["dataset_key"] = key
    st.query_params["dataset"] = key
    profiles = profile(key, df)
    restore_data_choices(key, list(df.columns))
    c1, c2, c3 = st.columns(3)
    c1.metric("First rows shown" if facts.get("streamed") else "Rows", f"{len(df):,}")
    c2.metric("Columns", f"{df.shape[1]:,}")
    c3.metric("Missing cells", f"{float(df.isna().to_numpy().mean()):.1%}")
    lines, changed = read_report_lines(df.attrs.get("read_report"))
    if lines:
        with st.expander("How the file was read" + (" (rows dropped or values converted)" if changed else ""),
                         expanded=changed):
            for line in lines:
                st.text(line)
    with st.expander("Preview (first 100 rows)", expanded=False):
        st.dataframe(df.head(100), width="stretch", height=260)

    st.subheader("Columns")
    st.caption("The kind is inferred; change it in the **kind** column (e.g. treat integer codes as categorical, "
               "or use an identifier-like column as a feature).")
    table = column_table(df, profiles)
    overrides_key = f"data.overrides.{key}"
    saved = st.session_state.get(overrides_key, {})
    shown = table.assign(kind=[saved.get(c, k) for c, k in zip(table["column"], table["kind"])],
                         missing=table["missing"] * 100)
    edited = st.data_editor(
        shown, key=f"data.kinds.{key}", hide_index=True, width="stretch", height=min(420, 38 + 35 * len(shown)),
        disabled=["column", "type", "missing", "distinct", "examples"],
        column_config={
            "column": text_column("column", shown["column"], widest=360),
            "examples": text_column("examples", shown["examples"]),
            "kind": st.column_config.SelectboxColumn("kind", options=[*OVERRIDABLE_KINDS, "empty"], required=True,
                                                     help="how the column is used as a feature"),
            "missing": st.column_config.NumberColumn("missing", format="%.1f %%", help="share of missing cells"),
            "distinct": st.column_config.NumberColumn("distinct", help="number of distinct values"),
        })
    inferred = dict(zip(table["column"], table["kind"]))
    overrides = {c: k for c, k in zip(edited["column"], edited["kind"])
                 if k != inferred[c] and k in OVERRIDABLE_KINDS and inferred[c] != "empty"}
    st.session_state[overrides_key] = overrides
    slot_kinds = st.empty()

    # ------------------------------------------------------------------------------------- targets

    st.subheader("Targets")
    columns = list(df.columns)
    targets_key = f"data.targets.{key}"
    if targets_key not in st.session_state:
        st.session_state[targets_key] = [c for c in suggested if c in columns]
    targets = st.multiselect("Target columns (one task each)", columns, key=targets_key, persist_state=KEEP,
                             help="each target becomes one task with its own tower (and gate, for MMoE)")
    slot_targets = st.empty()
    tasks, slots = [], {}
    for col in targets:
        choices, default_kind, default_value = target_choices(df[col])
        natural = default_value if default_kind == "binary" else None
        spec = suggested.get(col)
        if spec is not None:
            default_kind = IS_VALUE if spec.positive is not None else spec.kind
            default_value = spec.positive
        kind_key, value_key = f"data.kind.{key}.{col}", f"data.value.{key}.{col}"
        if kind_key not in st.session_state or st.session_state[kind_key] not in choices:
            st.session_state[kind_key] = default_kind if default_kind in choices else choices[0]
        c1, c2, c3 = st.columns([2, 2, 3])
        c1.markdown(f"**{plain(col)}**")
        kind = c2.selectbox(f"Kind of {plain(col)}", choices, key=kind_key, persist_state=KEEP, label_visibility="collapsed",
                            format_func=lambda k: {IS_VALUE: "is VALUE (binary)",
                                                   THRESHOLD: "above/below a threshold (binary)"}.get(k, k))
        value = None
        if kind == THRESHOLD:
            o1, o2 = c3.columns([1, 2])
            num = pd.to_numeric(df[col], errors="coerce")
            op = o1.selectbox(f"Rule of {plain(col)}", THRESHOLD_OPS, key=f"data.op.{key}.{col}", persist_state=KEEP,
                              label_visibility="collapsed")
            if f"data.cut.{key}.{col}" not in st.session_state:
                st.session_state[f"data.cut.{key}.{col}"] = float(num.median())
            cut = o2.number_input(f"Threshold of {plain(col)}", key=f"data.cut.{key}.{col}", persist_state=KEEP,
                                  label_visibility="collapsed", format="%g",
                                  help=f"positive where {col} {op} this number ({col}: {num.min():g} to {num.max():g})")
            value = f"{op}{cut:g}"
        elif kind == IS_VALUE:
            values = value_options(df[col])
            if value_key not in st.session_state or st.session_state[value_key] not in values:
                st.session_state[value_key] = (default_value if default_value in values else values[0]) if values else None
            value = c3.selectbox(f"Positive value of {plain(col)}", values, key=value_key, persist_state=KEEP,
                                 label_visibility="collapsed", format_func=lambda v: f"{col} = {v}")
        else:
            c3.caption({"binary": f"two values; positive class: {plain(repr(natural))}" if natural is not None
                        else "needs exactly two values (use 'is VALUE' to pick one)",
                        "regression": "a number (standardised for training)",
                        "multiclass": "one class per distinct value"}.get(kind, ""))
        slots[f"target:{col}"] = st.empty()
        try:
            tasks.append(task_from_choice(col, kind, value))
        except ConfigError as e:
            slots[f"target:{col}"].error(plain(e))

    # ------------------------------------------------------------------------------------- features

    st.subheader("Features")
    feature_options = [c for c in columns if c not in targets]
    usable = usable_features(profiles, targets, overrides)
    default_features = [c for c in usable if c not in suggested_drop]
    feat_key, auto_key = f"data.features.{key}", f"data.features_auto.{key}"
    pending_features(key, default_features, feature_options)
    if st.session_state.get(auto_key, True):
        st.session_state[feat_key] = default_features
    else:
        st.session_state[feat_key] = [c for c in st.session_state.get(feat_key, []) if c in feature_options]


    def _features_touched() -> None:
        st.session_state[auto_key] = False


    features = st.multiselect(
        f"Feature columns ({len(feature_options)} candidates; identifier-like, constant and empty columns are left "
        "out unless you pick them)", feature_options, key=feat_key, on_change=_features_touched)
    if not st.session_state.get(auto_key, True) and st.button("Reset to the default features", key="data.feat_reset"):
        st.session_state[auto_key] = True
        st.rerun()
    slot_features = st.empty()

    # defaults through the session state, not the widgets' value: a restored choice (a refresh, "train again")
    # is set there too, and a widget given both warns
    for k, v in (("data.val", 0.2), ("data.test", 0.0), ("data.seed", 0)):
        st.session_state.setdefault(k, v)
    with st.expander("Validation split", expanded=False):
        c1, c2, c3 = st.columns(3)
        val_fraction = c1.slider("Validation share", 0.05, 0.5, step=0.05, key="data.val", persist_state=KEEP)
        test_fraction = c2.slider("Test share (held out)", 0.0, 0.4, step=0.05, key="data.test", persist_state=KEEP)
        split_seed = c3.number_input("Split seed", 0, 1_000_000, key="data.seed", persist_state=KEEP)
    slot_split = st.empty()
    save_data_choices(key)   # a refresh or a new tab comes back to these choices

    # ------------------------------------------------------------------------------------- check

    slot_targets_for = {"targets": slot_targets, "features": slot_features, "kinds": slot_kinds, "split": slot_split,
                        **slots}
    if not targets:
        slot_targets.info("Pick at least one target column.")
        st.session_state.pop(DATA_KEY, None)
        st.stop()
    if len(tasks) != len(targets):
        st.session_state.pop(DATA_KEY, None)
        st.stop()
    try:
        config = build_config(profiles, tasks, features, overrides, val_fraction=float(val_fraction),
                              test_fraction=float(test_fraction), seed=int(split_seed))
    except ConfigError as e:
        (slot_split if "fraction" in str(e) else slot_targets).error(plain(e))
        st.session_state.pop(DATA_KEY, None)
        st.stop()

    prepared, problems = checked(key, json.dumps(config.to_dict(), sort_keys=True, default=str), df, config)
    if problems:
        for control, message in problems.items():
            target = slot_targets_for.get(control)
            if target is None:
                st.error(plain(message))
            else:
                target.error(plain(message))
        st.session_state.pop(DATA_KEY, None)
        st.stop()

    # ------------------------------------------------------------------------------------- summary

    st.session_state[DATA_KEY] = {"name": name, "key": key, "frame": df, "data_config": config, "prepared": prepared,
                                  "server_file": facts}
    if back == "train" and key == requested:   # a refresh of the Train page: the dataset is ready again
        st.switch_page(page("train"), query_params={"dataset": key})
    summary = prepared.summary()
    st.success(f"Ready to train on **{plain(name)}**: {len(tasks)} task(s), "
               f"{len(prepared.feature_columns)} feature column(s)."
               + (" The numbers below are of its first rows; training streams the whole file."
                  if facts.get("streamed") else ""))
    tables = summary_tables(summary)
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Rows", f"{summary['rows']:,}")
    c2.metric("Training rows", f"{summary['splits'].get('train', 0):,}")
    c3.metric("Validation rows", f"{summary['splits'].get('val', 0):,}")
    c4.metric("Test rows", f"{summary['splits'].get('test', 0):,}")
    st.markdown("**Tasks**")
    st.dataframe(tables["tasks"], hide_index=True, width="stretch")
    feats = summary["features"]
    st.markdown(f"**Features used** ({len(feats['numeric'])} numeric, {len(feats['categorical'])} categorical)")
    used = pd.DataFrame(
        [{"column": c, "as": "numeric" + (" (+ missing flag)" if c in feats["missing_indicators"] else "")}
         for c in feats["numeric"]]
        + [{"column": c, "as": categorical_text(feats["cardinalities"][c])} for c in feats["categorical"]])
    st.dataframe(used, hide_index=True, width="stretch", height=min(300, 38 + 35 * max(1, len(used))))
    # full width, one below the other: a reason ("identifier-like (20000 distinct values, e.g. ...)") is
    # long, and a table cell does not wrap, so a half-width table cut it (and the column names) off
    st.markdown(f"**Not used as features** ({len(tables['ignored'])})")
    st.dataframe(tables["ignored"], hide_index=True, width="stretch",
                 height=min(300, 38 + 35 * max(1, len(tables["ignored"]))),
                 column_config={"column": text_column("column", tables["ignored"]["column"], widest=360)})
    st.page_link(page("train"), label="Next: choose a model and train", icon=":material/model_training:")


main()
