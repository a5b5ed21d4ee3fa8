"""Inspect's Gates tab: per-sample gate heatmaps (a click shows the sample), expert utilisation,
gate entropy per epoch and how alike the tasks' gates are. Computations live in ``mmoe.views``."""
from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import streamlit as st

from mmoe import views as A
from mmoe.runs.predictions import ROW, pred_col, rows_text, target_col
from mmoe.runs.store import RunRecord, RunStore
from mmoe.views.formatting import chart_text, plain
from mmoe.views.gates import ExpertLayout, expert_layout
from mmoe_dashboard import gate_charts
from mmoe_dashboard.state import ADDRESS, no_predictions, predictions_version

HOVER_FEATURES = 3


@st.cache_data(max_entries=24, show_spinner=False)
def _heatmap_payload(frame: pd.DataFrame, task: str, max_rows: int, features: tuple[str, ...],
                     kind: str, key: tuple, columns: tuple[int, ...] | None = None
                     ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(gates of the rows shown [n, e], their positions in the frame, hover text per row).
    ``key`` (home, run, mtime) only keys the cache; frame hashing does the rest. ``columns``: the
    experts drawn (CGC / PLE: the ones the task's gate sees; None: all)."""
    g = A.gate_matrix(frame, task)
    if columns is not None:
        g = g[:, list(columns)]
    pos = A.order_and_sample(g, max_rows=max_rows)
    rows = frame[ROW].to_numpy() if ROW in frame else np.arange(len(frame))
    tgt = frame.get(target_col(task))
    prd = frame.get(pred_col(task))
    labels = A.class_labels(frame, task) if kind == "multiclass" else []
    hover = []
    for p in pos:
        bits = [f"<b>row {chart_text(rows[p])}</b>"]
        if tgt is not None and pd.notna(tgt.iat[p]):
            t = tgt.iat[p]
            t = labels[int(t)] if labels and 0 <= int(t) < len(labels) else (A.format_number(t) if kind == "regression" else int(t))
            bits.append(f"{chart_text(task)}: {chart_text(t)}")
        if prd is not None:
            v = prd.iat[p]
            bits.append(f"predicted: {A.format_number(v)}" if isinstance(v, (float, np.floating))
                        else f"predicted: {chart_text(v)}")
        bits.append(", ".join(f"{chart_text(c)}={chart_text(_short(frame[c].iat[p]))}"
                              for c in features[:HOVER_FEATURES]))
        hover.append("<br>".join(bits))
    return g[pos], pos, hover


def _short(v) -> str:
    if isinstance(v, (float, np.floating)):
        return A.format_number(v)
    s = str(v)
    return s if len(s) <= 16 else s[:15] + "…"


def _on_gate_click(chart_key: str, row_key: str, rows: np.ndarray) -> None:
    ev = st.session_state.get(chart_key)
    try:
        pts = ev["selection"]["points"]
    except (KeyError, TypeError):
        return
    if not pts:
        return
    cd = pts[0].get("customdata")
    if isinstance(cd, (list, tuple)):
        cd = cd[0] if cd else None
    if cd is None:
        return
    st.session_state[row_key] = int(rows[int(cd)])


def run_layout(rec: RunRecord, frame: pd.DataFrame) -> ExpertLayout:
    """Who owns each stored gate column (CGC / PLE: shared or one task's experts)."""
    tasks = A.gate_tasks(frame)
    n = len(A.gate_columns(frame, tasks[0])) if tasks else 0
    return expert_layout(rec.model_config, list(A.task_kinds(rec.data_config)), n_experts=n)


def shared_scale(frames, tasks) -> float:
    """The top of one colour scale for heatmaps shown side by side: the largest gate weight any of them
    holds (each panel on its own scale made one colour mean 0.8 in one panel and 0.65 beside it)."""
    tops = [float(np.nanmax(A.gate_matrix(f, t))) for f in frames for t in tasks if f is not None and
            A.gate_columns(f, t) and len(f)]
    return max(tops + [1e-6])


def heatmap_of(rec: RunRecord, frame: pd.DataFrame, task: str, max_rows: int, hover_of=None, **kw):
    """(figure, rows drawn, rows stored) of one task's per-sample gates, only the experts its gate sees
    (CGC / PLE), labelled as in Inspect; ``hover_of(positions)``: the hover text of the rows drawn."""
    layout = run_layout(rec, frame)
    seen = layout.visible(task)
    g = A.gate_matrix(frame, task)[:, seen]
    pos = A.order_and_sample(g, max_rows=max_rows)
    labels, groups = layout.labels(), layout.groups()
    if hover_of is not None:
        kw.update(hover=hover_of(pos), positions=pos)
    return (gate_charts.gate_heatmap(g[pos], task, labels=[labels[j] for j in seen], groups=[groups[j] for j in seen],
                                **kw), len(pos), len(g))


@st.fragment
def gate_explorer(s: RunStore, rec: RunRecord, frame: pd.DataFrame) -> None:
    """Per-sample heatmaps; a click (or a typed row number) shows that sample in detail."""
    kinds = A.task_kinds(rec.data_config)
    tasks = [t for t in kinds if A.gate_columns(frame, t)]
    layout = run_layout(rec, frame)
    labels, groups = layout.labels(), layout.groups()
    feats = tuple(A.feature_columns(frame, rec.data_summary, kinds))
    rows = frame[ROW].to_numpy() if ROW in frame else np.arange(len(frame))
    row_key = f"inspect.row.{rec.id}"
    n = len(frame)
    top = min(n, A.MAX_HEATMAP_ROWS)
    shown = top if n <= 200 else st.slider("Samples per heatmap", min_value=min(200, top), max_value=top,
                                           value=min(1000, top), step=100 if top >= 300 else 1,
                                           key="inspect.heatmap_rows", bind=ADDRESS,
                                           help="Rows are drawn stratified by dominant expert, so every expert "
                                                "keeps its share.")
    what = rows_text(frame)
    if n > shown:
        st.caption(f"Each panel shows {shown:,} of {n:,} {what}, sampled stratified by dominant expert "
                   "and sorted by dominant expert, then by its weight. Click a sample for its details.")
    else:
        st.caption(f"All {n:,} {what}, sorted by dominant expert, then by its weight. "
                   "Click a sample for its details.")
    if rec.model_config.get("arch") == "omoe":
        st.caption("OMoE has one gate shared by all tasks, so every task's panel is the same.")
    if layout.layered:
        st.caption(plain(layout.caption()))
    per_row = min(len(tasks), 3)
    version = predictions_version(rec.id)
    zmax = shared_scale([frame], tasks)
    for i in range(0, len(tasks), per_row):
        cols = st.columns(per_row)
        for col, task in zip(cols, tasks[i:i + per_row]):
            seen = layout.visible(task)
            g, pos, hover = _heatmap_payload(frame, task, shown, feats, kinds[task], (str(s.home), rec.id, version),
                                             tuple(seen) if layout.layered else None)
            key = f"inspect.heat.{rec.id}.{task}"
            col.plotly_chart(gate_charts.gate_heatmap(g, task, hover=hover, positions=pos,
                                                 labels=[labels[j] for j in seen],
                                                 groups=[groups[j] for j in seen], zmax=zmax), key=key,
                             on_select=functools.partial(_on_gate_click, key, row_key, rows), selection_mode="points",
                             config={"displayModeBar": False})

    st.markdown("**Sample details**")
    st.number_input("Row number (click a sample above, or type a row number from the data)", min_value=0,
                    value=None, step=1, key=row_key, bind=ADDRESS,
                    placeholder="no sample chosen")
    chosen = st.session_state.get(row_key)
    if chosen is None:
        st.caption("No sample chosen yet.")
        return
    hits = np.flatnonzero(rows == int(chosen))
    if not len(hits):
        st.warning(f"Row {chosen} is not among the {n:,} {what} of this run; pick another row, or another "
                   "split above the tabs.")
        return
    classes = {t: d.get("classes") for t, d in ((rec.data_summary or {}).get("tasks") or {}).items()
               if d.get("kind") == "binary"}
    d = A.sample_details(frame, int(hits[0]), kinds, feats, binary_labels=classes)
    c1, c2 = st.columns([2, 3])
    with c1:
        st.markdown(f"Row **{d['row']}** ({d['split'] or 'validation'} split): features")
        st.dataframe(pd.DataFrame({"feature": list(d["features"]),
                                   "value": [_short(v) for v in d["features"].values()]}),
                     hide_index=True, key="inspect.sample_features")
    with c2:
        table = []
        for t, info in d["tasks"].items():
            pred = info["prediction"]
            if info["kind"] == "binary" and pred is not None:
                pred = f"P(positive) = {float(pred):.3f}"
            elif info["kind"] == "regression" and pred is not None:
                pred = A.format_number(pred)
            elif info["probabilities"]:
                pred = f"{pred} ({info['probabilities'].get(str(pred), float('nan')):.0%})"
            tgt = info["target"]
            table.append({"task": t, "kind": info["kind"], "target": "missing" if tgt is None else
                          (A.format_number(tgt) if info["kind"] == "regression" else str(tgt)),
                          "prediction": str(pred),
                          "top expert": (f"{_label(labels, int(np.argmax(info['gates'])))} "
                                         f"({max(info['gates']):.2f})" if info["gates"] else "—")})
        st.dataframe(pd.DataFrame(table), hide_index=True, key="inspect.sample_tasks")
        st.plotly_chart(gate_charts.sample_gates_figure(d, layout if layout.layered else None), key="inspect.sample_gates")


def _label(labels: list[str], j: int) -> str:
    return labels[j] if 0 <= j < len(labels) else f"e{j}"


def gates_section(s: RunStore, rec: RunRecord, frame: pd.DataFrame | None) -> None:
    hist = s.history(rec.id)
    arch = rec.model_config.get("arch", rec.arch)
    if arch == "shared-bottom" or (frame is not None and not A.has_gates(frame)):
        st.info("**No gates in this run.** A Shared-Bottom model feeds every task the same shared layers, so there "
                "is no per-task or per-sample expert routing to show. Train an MMoE, OMoE, CGC or PLE run to see "
                "gates.")
        return
    layout = run_layout(rec, frame) if frame is not None else expert_layout(rec.model_config,
                                                                         list(A.task_kinds(rec.data_config)))
    # the experts one gate sees: ln of it is the entropy of uniform gating
    n_experts = layout.n_visible() if layout.n_experts else int(rec.model_config.get("num_experts") or 1)
    if n_experts == 1:
        st.caption("This run has a single expert: every gate weight is 1.")
    ent = A.entropy_history(hist)
    order = list(A.task_kinds(rec.data_config))    # the run's task order: one colour per task in every chart
    if frame is None:
        no_predictions(rec)
        if not ent.empty:
            st.plotly_chart(gate_charts.entropy_figure(ent, n_experts, order), key="inspect.entropy")
        return
    st.subheader("Per-sample gate weights")
    gate_explorer(s, rec, frame)
    st.subheader("Expert utilisation")
    c1, c2 = st.columns(2)
    util = A.utilisation(frame, layout=layout)
    if layout.layered:
        c1.caption(plain(f"Each task's bars cover the {n_experts} experts its gate sees: the shared ones and its "
                         "own; the dashed line is the uniform share. Entropy's ceiling is "
                         f"ln({n_experts})."))
    c1.plotly_chart(gate_charts.utilisation_figure(util, tasks=order), key="inspect.util")
    c2.plotly_chart(gate_charts.entropy_figure(ent, n_experts, order), key="inspect.entropy")
    st.subheader("How alike are the tasks' gates?")
    tasks = A.gate_tasks(frame)
    if len(tasks) < 2:
        st.caption("One task only: nothing to compare.")
        return
    method = st.radio("Measure", ["js", "cosine"], horizontal=True, key="inspect.sim_method", bind=ADDRESS,
                      format_func={"js": "Jensen–Shannon divergence", "cosine": "cosine similarity"}.get,
                      captions=["0 = same routing", "1 = same routing"])
    c1, c2 = st.columns([3, 2])
    c1.plotly_chart(gate_charts.similarity_figure(A.task_gate_similarity(frame, tasks, method), method),
                    key="inspect.similarity")
    c2.caption(f"Each cell averages, over the {rows_text(frame)}, how different two tasks' gate distributions are "
               "for the same sample. Tasks that route alike share experts; tasks that route apart have "
               "specialised experts." + (" OMoE shares one gate, so all tasks are identical." if arch == "omoe" else "")
               + (" Here each task's own experts are seen by its gate alone, so weight on them counts as routing "
                  "apart; only weight on the shared experts can route alike." if layout.layered else ""))
