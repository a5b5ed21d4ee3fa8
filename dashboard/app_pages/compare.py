"""Compare stored runs: filter and pick them in a table, then see their curves, settings,
final metrics and gates side by side; rename or delete runs.

The selection lives in ``st.session_state[COMPARE_RUNS_KEY]`` (a list of run ids; other
pages may set it, and ``?runs=1,2`` works too). Each run keeps one colour in every chart of
the comparison, no two alike (``charts.run_colors``). Run, task and dataset names are user text: shown through
``plain`` wherever Streamlit reads Markdown.
"""
from __future__ import annotations

import html
import re

import pandas as pd
import streamlit as st

from mmoe import views as A
from mmoe.runs.predictions import rows_of_split, rows_text
from mmoe.runs.store import RunRecord, RunStore, StoreError
from mmoe.views.comparing import (
    MetricColumn,
    compare_metrics,
    curve_title,
    experiment_members,
    experiment_order,
    group_members,
    group_notes,
    primary_columns,
)
from mmoe.views.formatting import plain
from mmoe.views.jobview import run_label
from mmoe_dashboard import charts, gate_charts
from mmoe_dashboard.gates_panel import heatmap_of, run_layout, shared_scale
from mmoe_dashboard.manage_panel import manage_section, show_flash
from mmoe_dashboard.state import (ADDRESS, COMPARE_RUNS_KEY, NA, digest, labelled_key, predictions, run_ids, store,
                                  text_column)
from mmoe_dashboard.tracking_panel import tracking_section

PICK = "compare.pick"
MAX_SIDE_BY_SIDE = 4
HEATMAP_ROWS = 400


def _frame_of(run_id: int) -> pd.DataFrame | None:
    """The rows a run is judged on (validation, else test, else its training sample); None if unreadable."""
    try:
        frame = predictions(run_id)
    except Exception:  # unreadable artifact: treated as missing
        return None
    return None if frame is None else rows_of_split(frame)


def _label(r: RunRecord) -> str:
    return run_label(r.id, r.name)


def _swatch(r: RunRecord, color: str) -> str:
    """The run's colour and name over its gates column, two lines high whatever its length, so the charts of
    side-by-side runs start level."""
    name, arch, status = (html.escape(str(x)) for x in (_label(r), r.arch, r.status))   # (HTML block: no Markdown)
    return (f"<div style='line-height:1.6;min-height:3.5em'><span style='color:{color};font-size:1.2em'>■</span> "
            f"<b>{name}</b> · {arch} · {status}</div>")


def _tasks(runs: list[RunRecord]) -> list[str]:
    out: list[str] = []
    for r in runs:
        out += [t for t in A.task_kinds(r.data_config) if t not in out]
    return out


def _notes(notes: list[str]) -> None:
    """Why a task's numbers are shown apart (plain text: the notes hold column and class names)."""
    if notes:
        with st.container(border=True):
            for note in notes:
                st.text(note)


def _metric_config(cols: list[MetricColumn]) -> dict:
    return {c.name: st.column_config.NumberColumn(c.header, format="%.4f", help=c.help) for c in cols}


def _experiments(s: RunStore) -> dict[int, str]:
    """experiment id -> its label ("#2 lr-sweep"); empty where the store keeps no experiments."""
    try:
        return {int(e.id): f"#{e.id} {e.name}" for e in getattr(s, "list_experiments", list)()}
    except StoreError:
        return {}


# ----------------------------------------------------------------------------- table

def runs_table(s: RunStore, runs: list[RunRecord], experiments: dict[int, str]) -> tuple[pd.DataFrame, dict]:
    """The table rows (one per run) with each task's primary metric, and its column config.

    A task that is a different kind (or has a different positive class) in some runs gets one
    column per kind, so a sort never ranks a log loss against an RMSE."""
    df = s.runs_frame()
    show = pd.DataFrame({"id": df["id"], "name": df["name"]})
    cfg: dict = {"id": st.column_config.NumberColumn("id", format="%d", width="small", pinned=True),  # (in view
                 "name": text_column("name", df["name"], widest=260, pinned=True)}               # on scroll)
    if "experiment_id" in df and df["experiment_id"].notna().any():
        show["experiment"] = [None if pd.isna(e) else experiments.get(int(e), f"#{int(e)}")
                              for e in df["experiment_id"]]
        cfg["experiment"] = st.column_config.TextColumn("experiment", help="the experiment the run belongs to")
    show["status"] = df["status"]
    metrics, cols = primary_columns(runs, df)
    for c in cols:
        show[c.name] = metrics[c.name]
    cfg.update(_metric_config(cols))
    for col in ("dataset", "arch", "tasks", "experts", "epochs"):
        show[col] = df[col]
    show.loc[df["arch"] == "shared-bottom", "experts"] = None     # (its config's num_experts is unused)
    cfg["experts"] = st.column_config.NumberColumn("experts", width="small")
    cfg["epochs"] = st.column_config.NumberColumn("epochs", width="small")
    show["train s"] = df["train_seconds"]
    cfg["train s"] = st.column_config.NumberColumn("train s", format="%.1f", help="training time in seconds")
    show["created"] = pd.to_datetime(df["created_at"], utc=True, errors="coerce").dt.tz_convert(None)
    cfg["created"] = st.column_config.DatetimeColumn("created (UTC)", format="YYYY-MM-DD HH:mm")
    return show, cfg


def filters(table: pd.DataFrame) -> pd.DataFrame:
    c1, c2, c3, c4 = st.columns([1, 1, 1, 2])
    status = c1.multiselect("Status", sorted(table["status"].dropna().unique()), key="compare.f_status", bind=ADDRESS,
                            placeholder="any status", wrap=True)
    dataset = c2.multiselect("Dataset", sorted(table["dataset"].dropna().unique()), key="compare.f_dataset",
                             bind=ADDRESS, placeholder="any dataset", wrap=True)
    arch = c3.multiselect("Architecture", sorted(table["arch"].dropna().astype(str).unique()), key="compare.f_arch",
                          bind=ADDRESS, placeholder="any architecture", wrap=True)
    text = c4.text_input("Search", key="compare.f_text", bind=ADDRESS,
                         placeholder="name, id, task, dataset or experiment")
    out = table
    if status:
        out = out[out["status"].isin(status)]
    if dataset:
        out = out[out["dataset"].isin(dataset)]
    if arch:
        out = out[out["arch"].astype(str).isin(arch)]
    if text.strip():
        needle = text.strip().lower()
        hay = (out["id"].astype(str) + " " + out["name"].astype(str) + " " + out["tasks"].astype(str) + " "
               + out["dataset"].astype(str) + " " + out["arch"].astype(str) + " "
               + (out["experiment"].astype(str) if "experiment" in out else "")).str.lower()
        out = out[hay.str.contains(needle, regex=False)]
    c5, c6, _ = st.columns([2, 1, 3])
    sortable = [c for c in out.columns if c not in ("tasks", "experiment")]
    by = c5.selectbox("Sort by", sortable, index=sortable.index("created"), key="compare.sort", bind=ADDRESS)
    desc = c6.toggle("Descending", value=True, key="compare.desc", bind=ADDRESS)
    return out.sort_values(by, ascending=not desc, na_position="last", kind="stable").reset_index(drop=True)


def _table_key(shown_ids: list[int]) -> str:
    return "compare.table." + digest(shown_ids)


def _on_pick_change(key: str) -> None:
    """The multiselect changed: store it and tick the same rows in the table."""
    _set_selection(run_ids(st.session_state.get(key)))


def _on_add_experiment(key: str, members: dict[int, list[int]]) -> None:
    """An experiment was picked: add all its runs to the selection, then clear the box."""
    exp = st.session_state.get(key)
    if exp is not None:
        _set_selection(sorted(set(run_ids(st.session_state.get(COMPARE_RUNS_KEY))) | set(members.get(exp, [])),
                              reverse=True))
    st.session_state[key] = None


def _set_selection(ids: list[int]) -> None:
    st.session_state[COMPARE_RUNS_KEY] = ids
    tkey, shown = st.session_state.get("compare.table_key"), st.session_state.get("compare.shown_ids", [])
    if tkey:
        st.session_state[tkey] = {"selection": {"rows": [i for i, rid in enumerate(shown) if rid in ids],
                                                "columns": []}}


def selection(view: pd.DataFrame, cfg: dict, all_ids: list[int], labels: dict[int, str],
              experiments: dict[int, tuple[str, list[int]]] | None = None) -> list[int]:
    """Render the runs table (tick rows to compare) and the selected-runs box; return the ids.

    ``st.session_state[COMPARE_RUNS_KEY]`` is the one source of truth; the table and the
    multiselect are views of it. Table ticks are merged in only when the table was already on
    screen under the same key in the previous run (a fresh table, after a delete or a filter
    change, has not been ticked by anyone yet and would otherwise drop runs)."""
    if not any(isinstance(k, str) and k.startswith(PICK + ".") for k in st.session_state):  # page (re)opened
        initial = run_ids(str(st.query_params.get("runs", "")).split(",")) or run_ids(st.session_state.get(COMPARE_RUNS_KEY))
        st.session_state[COMPARE_RUNS_KEY] = initial
    chosen = [i for i in run_ids(st.session_state.get(COMPARE_RUNS_KEY)) if i in all_ids]
    shown = [int(i) for i in view["id"]]
    key = _table_key(shown)
    same_table = st.session_state.get("compare.table_key") == key and key in st.session_state
    st.session_state["compare.table_key"], st.session_state["compare.shown_ids"] = key, shown
    event = st.dataframe(view, key=key, on_select="rerun", selection_mode="multi-row", hide_index=True,
                         column_config=cfg, placeholder=NA, height=min(420, 38 + 35 * max(len(view), 1)),
                         selection_default={"selection": {"rows": [i for i, rid in enumerate(shown) if rid in chosen],
                                                          "columns": []}})
    if same_table and event is not None:
        rows = list(event.selection.rows)
        ticked = [shown[i] for i in rows if 0 <= i < len(shown)]
        merged = [i for i in chosen if i not in shown] + [i for i in shown if i in ticked]
        if sorted(merged) != sorted(chosen):
            chosen = merged
    chosen = sorted(set(chosen), reverse=True)
    st.session_state[COMPARE_RUNS_KEY] = chosen
    hidden = len(all_ids) - len(shown)
    st.caption(f"{len(shown)} of {len(all_ids)} runs shown" + (f" ({hidden} hidden by the filters)" if hidden else "")
               + ". Tick rows to compare them; click a column header to sort in place.")
    fmt = lambda i: labels.get(i, f"#{i}")  # noqa: E731
    pkey = labelled_key(PICK, [fmt(i) for i in all_ids])
    if run_ids(st.session_state.get(pkey)) != chosen or pkey not in st.session_state:
        st.session_state[pkey] = chosen
    box = st.columns([3, 1]) if experiments else [st.container()]
    box[0].multiselect("Selected runs", all_ids, key=pkey, on_change=_on_pick_change, args=(pkey,),
                       format_func=fmt, placeholder="tick runs in the table above", wrap=True)   # (all tags seen)
    if experiments:
        members = {e: ids for e, (_, ids) in experiments.items()}
        box[1].selectbox("Add an experiment's runs", list(experiments), index=None, key="compare.add_experiment",
                         format_func=lambda e: f"{experiments[e][0]} ({len(experiments[e][1])} runs)",
                         on_change=_on_add_experiment, args=("compare.add_experiment", members),
                         placeholder="pick an experiment", help="selects every run of the experiment")
    if chosen:
        st.query_params["runs"] = ",".join(map(str, chosen))
    elif "runs" in st.query_params:
        del st.query_params["runs"]
    return chosen


# ----------------------------------------------------------------------------- comparisons

def curves_section(s: RunStore, runs: list[RunRecord], notes: list[str], colors: dict[int, str]) -> None:
    hist = {r.id: s.history(r.id) for r in runs}
    metrics: list[str] = []
    for h in hist.values():
        metrics += [m for m in A.history_metrics(h) if m not in metrics]
    if not metrics:
        st.info("None of the selected runs logged an epoch.")
        return
    c1, c2, c3 = st.columns([2, 2, 1])
    metric = c1.selectbox("Metric", metrics, key="compare.metric", bind=ADDRESS, format_func=charts._metric_title)
    smooth = c2.slider("Smoothing (EMA)", 0.0, 0.95, 0.0, 0.05, key="compare.smooth", bind=ADDRESS,
                       help="Exponential moving average of each curve; 0 shows the raw values.")
    train = c3.toggle("Training curves", value=True, key="compare.train_curves", bind=ADDRESS)
    splits = ["val"] + (["train"] if train else [])
    _notes(notes)
    figs = []
    for group, members in group_members(runs).items():   # one chart per task and kind: never one y-axis
        series = []
        for r in members:
            c = A.curves(hist[r.id], metric)
            for split in splits:
                d = c[(c["task"] == group.task) & (c["split"] == split)]
                if not d.empty:
                    series.append({"run_id": r.id, "label": _label(r), "color": colors[r.id], "split": split,
                                   "epoch": d["epoch"].to_numpy(),
                                   "value": A.ema(d["value"].to_numpy(), smooth)})
        if series:
            figs.append((group.label, charts.overlay_curves(series, group.label, metric,
                                                            y_title=curve_title(metric, group.kind))))
    if not figs:
        st.info(f"No {metric} curves for the selected runs.")
    for i in range(0, len(figs), 2):
        cols = st.columns(2)
        for col, (name, fig) in zip(cols, figs[i:i + 2]):
            col.plotly_chart(fig, key="compare.curve." + re.sub(r"[^A-Za-z0-9_]+", "-", name).strip("-"))


def _highlight(df: pd.DataFrame, best: dict[str, list]) -> pd.DataFrame:
    css = pd.DataFrame("", index=df.index, columns=df.columns)
    for col, idx in best.items():
        for i in idx:
            css.loc[i, col] = "background-color: #c8ecd0; font-weight: 700"
    return css


def _metrics_table(cmp, names: list[str], key: str, experiments: dict[str, str]) -> None:
    m = cmp.frame[names]
    best = {c: rows for c, rows in cmp.best().items() if c in names}
    cfg = _metric_config([c for c in cmp.columns if c.name in names])
    cfg["_index"] = text_column("run", m.index, widest=320)                 # run names readable, not "#4 exp 1 · s…"
    if experiments and any(experiments.values()):
        m = m.copy()
        m.insert(0, "experiment", [experiments.get(label) for label in m.index])
        cfg["experiment"] = st.column_config.TextColumn("experiment")
    styled = m.style.format("{:.4f}", na_rep=NA, subset=names).apply(lambda d: _highlight(d, best), axis=None)
    st.dataframe(styled, key=key, placeholder=NA, column_config=cfg)


def tables_section(runs: list[RunRecord], notes: list[str], experiments: dict[int, str]) -> None:
    labels = [_label(r) for r in runs]
    st.subheader("Final metrics")
    cmp = compare_metrics(runs, labels)
    if cmp.frame.empty or cmp.frame.columns.empty:
        st.caption("None of the selected runs recorded final metrics.")
    else:
        _notes(notes)
        exp = {_label(r): experiments.get(r.experiment_id, f"#{r.experiment_id}")
               for r in runs if getattr(r, "experiment_id", None) is not None}
        _metrics_table(cmp, cmp.main, "compare.metrics", exp)
        st.caption("Each task's primary metric (↑ higher is better, ↓ lower is better), validation split. The best "
                   "value per column is highlighted, ranked only among runs in which the task has the same kind "
                   "(and positive class).")
        with st.expander(f"All final metrics ({len(cmp.columns)} columns)"):
            _metrics_table(cmp, list(cmp.frame.columns), "compare.metrics_all", exp)
            st.caption("For binary and multiclass tasks the training loss is the log loss (shown once, as "
                       "logloss); for regression it is the MSE on the standardised target. Diagnostics such as "
                       "gate entropy describe the model rather than score it, so they are never highlighted.")
    st.subheader("Settings")
    only = st.toggle("Differences only", value=True, key="compare.diff_only", bind=ADDRESS)
    d = A.settings_diff(runs, labels, only_differences=only)
    if d.empty:
        st.caption("The selected runs have identical settings." if only else "No settings recorded.")
    else:
        st.dataframe(d, key="compare.settings", height=min(600, 38 + 35 * len(d)), placeholder=NA,
                     column_config={"_index": text_column("setting", d.index)})


def gates_section(s: RunStore, runs: list[RunRecord], colors: dict[int, str]) -> None:
    frames = {r.id: _frame_of(r.id) for r in runs}
    gated = [r for r in runs if frames[r.id] is not None and A.has_gates(frames[r.id])]
    utils = {r.id: A.utilisation(frames[r.id], layout=run_layout(r, frames[r.id])) for r in gated}
    ymax = max([float(u["weight"].max()) for u in utils.values() if not u.empty] or [1.0]) * 1.1
    tasks = _tasks(gated)
    task = (st.selectbox("Heatmap task", tasks, key="compare.heat_task", bind=ADDRESS) if len(tasks) > 1
            else (tasks[0] if tasks else None))
    zmax = shared_scale([frames[r.id] for r in gated], [task] if task else [])
    for i in range(0, len(runs), MAX_SIDE_BY_SIDE):
        cols = st.columns(min(MAX_SIDE_BY_SIDE, len(runs)))
        for col, r in zip(cols, runs[i:i + MAX_SIDE_BY_SIDE]):
            with col:
                st.markdown(_swatch(r, colors[r.id]), unsafe_allow_html=True)
                f = frames[r.id]
                if r.model_config.get("arch", r.arch) == "shared-bottom":
                    st.info("Shared-Bottom: no gates.")
                    continue
                if f is None:
                    st.info(f"No stored predictions (run {r.status}).")
                    continue
                if r.id not in utils:
                    st.info("No gate weights stored.")
                    continue
                util = gate_charts.utilisation_figure(utils[r.id], title="mean gate weight", ymax=ymax, height=300)
                st.plotly_chart(util, key=f"compare.util.{r.id}", config={"displayModeBar": False})   # narrow column
                if task and A.gate_columns(f, task):
                    fig, drawn, total = heatmap_of(r, f, task, HEATMAP_ROWS, selectable=False, height=380,
                                                   title=f"{task}: gates per sample", zmax=zmax)
                    st.plotly_chart(fig, key=f"compare.heat.{r.id}", config={"displayModeBar": False})
                    if total > drawn:
                        st.caption(f"{drawn:,} of {total:,} {rows_text(f)}, stratified by dominant expert.")
                elif task:
                    st.caption(f"This run has no task {plain(task)}.")


# ----------------------------------------------------------------------------- page

def main() -> None:
    st.title("Compare runs")
    s = store()
    show_flash()
    try:
        runs = s.list_runs()
    except StoreError as e:
        st.error(plain(e))
        return
    if not runs:
        st.info("There are no stored runs yet. Train some on the Train page (or `python -m mmoe train ...`).")
        return
    by_id = {r.id: r for r in runs}
    labels = {r.id: f"{_label(r)} · {r.arch}" + ("" if r.status == "finished" else f" · {r.status}") for r in runs}
    names = _experiments(s)
    experiments = {e: (names.get(e, f"#{e}"), ids) for e, ids in experiment_members(runs).items()}
    table, cfg = runs_table(s, runs, names)
    view = filters(table)
    chosen = experiment_order([by_id[i] for i in selection(view, cfg, list(by_id), labels, experiments) if i in by_id])

    if not chosen:
        st.info("Tick one or more runs in the table to compare their curves, settings, metrics and gates.")
    else:
        if len(chosen) > 8:
            st.warning(f"{len(chosen)} runs selected: the charts get crowded beyond about 8.")
        notes, colors = group_notes(chosen), charts.run_colors([r.id for r in chosen])
        st.header("Curves")
        curves_section(s, chosen, notes, colors)
        tables_section(chosen, notes, names)
        st.header("Gates")
        gates_section(s, chosen, colors)
        tracking_section(s, [r.id for r in chosen if not r.active], key="compare")
    st.header("Manage runs")
    manage_section(s, runs)


main()
