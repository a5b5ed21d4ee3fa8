"""Inspect one stored run: settings, curves, predictions per task, and what the gates do.

The run comes from ``?run=ID``, then ``st.session_state[INSPECT_RUN_KEY]`` (set by other
pages), then the newest finished run. Computations live in ``mmoe.views``; figures in
``dashboard/charts.py``. User text (run, file, column and class names, error messages) goes through
``plain`` wherever Streamlit reads Markdown, and through ``chart_text`` into hover labels.
"""
from __future__ import annotations

import pandas as pd
import streamlit as st

from mmoe import views as A
from mmoe.runs.predictions import (
    SPLIT,
    SPLIT_NAMES,
    TRAIN_SAMPLE_ROWS,
    pred_col,
    rows_of_split,
    rows_text,
    stored_splits,
)
from mmoe.runs.status import ENDED_BADLY
from mmoe.runs.store import RunRecord, RunStore, StoreError
from mmoe.views.formatting import plain
from mmoe.views.jobview import duration_text, run_label
from mmoe.views.task_weights import learned_task_weights
from mmoe_dashboard import charts
from mmoe_dashboard.continuity import command_panel, source_of, train_again
from mmoe_dashboard.downloads_panel import downloads_section
from mmoe_dashboard.gates_panel import gates_section
from mmoe_dashboard.scoring import score_tab
from mmoe_dashboard.state import (
    ADDRESS,
    INSPECT_RUN_KEY,
    NA,
    no_predictions,
    open_experiment,
    predictions,
    store,
)

STATUS_BADGE = {"finished": "green", "running": "blue", "queued": "gray", "cancelled": "orange",
                "diverged": "red", "failed": "red", "interrupted": "orange"}
TABS = ["Training", "Predictions", "Gates", "Downloads", "Score a file"]
BR = "  \n"     # a Markdown line break (no HTML on this page)


# ----------------------------------------------------------------------------- choosing the run

def _label(r: RunRecord) -> str:
    return run_label(r.id, r.name, r.arch, r.dataset, r.status)


def _default_run(runs: list[RunRecord]) -> int:
    ids = [r.id for r in runs]
    for candidate in (st.query_params.get("run"), st.session_state.get(INSPECT_RUN_KEY)):
        try:
            if candidate is not None and int(candidate) in ids:
                return int(candidate)
        except (TypeError, ValueError):
            pass
    finished = [r.id for r in runs if r.status == "finished"]
    return finished[0] if finished else ids[0]


def _on_pick() -> None:
    rid = st.session_state["inspect.pick"]
    st.session_state[INSPECT_RUN_KEY] = rid
    st.query_params["run"] = str(rid)


# ----------------------------------------------------------------------------- sections

FOLLOW_SECONDS = 2.0


def follow(run_id: int, logged: int) -> None:
    """While the run trains: every FOLLOW_SECONDS check its status and logged epochs, and redraw the
    page when either changed (new curve points; the predictions and gates once it ends)."""
    @st.fragment(run_every=FOLLOW_SECONDS)
    def watch() -> None:
        try:
            rec = store().get_run(run_id)
            now = len(store().history(run_id))
        except StoreError:
            return
        if not rec.active or now != logged:
            st.rerun()

    watch()


def header(rec: RunRecord) -> None:
    st.title(plain(rec.name))
    kinds = A.task_kinds(rec.data_config)
    mc, tc, summ = rec.model_config, rec.train_config, rec.data_summary or {}
    line = f":{STATUS_BADGE.get(rec.status, 'gray')}-badge[{rec.status}] · run #{rec.id} · created {rec.created_at[:19].replace('T', ' ')} UTC"
    if rec.epochs:
        line += f" · {rec.epochs} epochs"
        if rec.best_epoch:
            line += f" (best {rec.best_epoch})"
    if rec.train_seconds:
        line += f" · trained in {duration_text(rec.train_seconds)}"
    if rec.samples_per_second:
        line += f" · {rec.samples_per_second:,.0f} samples/s"
    st.markdown(line)
    if rec.stop_reason:
        st.text(f"Why it stopped: {rec.stop_reason}")
    if not rec.active and st.button("Train again with these settings", key="inspect.again",
                                    help="fill the Data and Model & training pages with this run's table and "
                                         "settings (its seed too: the same run again)"):
        why = train_again(rec)
        if why:
            st.warning(f"Cannot train again: {plain(why)}.")
    if rec.experiment_id is not None and store().exists(rec.id):
        c1, c2 = st.columns([4, 1])
        c1.text(f"One of the runs of experiment #{rec.experiment_id} (its seed: {tc.get('seed')}); the experiment "
                "shows how much seeds alone change these numbers.")
        if c2.button("Open experiment", key="inspect.experiment"):
            open_experiment(rec.experiment_id)
    if rec.status in ENDED_BADLY:
        st.error(f"**This run {rec.status}.** {plain(rec.error or 'No error message was recorded.')}", icon="🚨")
    elif rec.status == "interrupted":
        st.warning(f"**This run was interrupted.** {plain(rec.error or '')}")
    elif rec.status == "cancelled":
        st.warning(f"This run was cancelled. {plain(rec.error or '')}")
    elif rec.active:
        st.info(f"This run is still {rec.status}: this page follows it, curves fill in as epochs end, and "
                "predictions and gates appear when it finishes.")
        follow(rec.id, len(store().history(rec.id)))
    c1, c2, c3 = st.columns(3)
    with c1:
        st.markdown("**Data**")
        rows = summ.get("rows")
        splits = summ.get("splits") or {}
        st.markdown(plain(rec.dataset) + (f" · {rows:,} rows" if rows else "")
                    + (BR + " / ".join(f"{k} {v:,}" for k, v in splits.items()) if splits else ""))
        st.markdown("Tasks: " + ", ".join(f"{plain(t)} ({k})" for t, k in kinds.items()))
    with c2:
        st.markdown("**Architecture**")
        arch = mc.get("arch", rec.arch)
        if arch == "shared-bottom":
            desc = f"Shared-Bottom · bottom {_layers(mc.get('expert_hidden'))}"
        elif arch in ("cgc", "ple"):
            levels = 1 if arch == "cgc" else (mc.get("levels") or 2)
            desc = (f"{str(arch).upper()} · {levels} level{'s' if levels != 1 else ''} of {mc.get('shared_experts')} "
                    f"shared + {mc.get('task_experts')} experts per task {_layers(mc.get('expert_hidden'))}"
                    f" · gate {_layers(mc.get('gate_hidden')) or 'linear'}")
        else:
            desc = (f"{str(arch).upper()} · {mc.get('num_experts')} experts {_layers(mc.get('expert_hidden'))}"
                    f" · gate {_layers(mc.get('gate_hidden')) or 'linear'}")
            if mc.get("top_k"):
                desc += f" · top-{mc['top_k']} routing"
        st.markdown(desc + f"{BR}towers {_layers(mc.get('tower_hidden'))} · dropout {mc.get('dropout', 0)}"
                    + (f"{BR}{summ['parameters']:,} parameters" if summ.get("parameters") else ""))
    with c3:
        st.markdown("**Training**")
        st.markdown(f"{tc.get('optimizer', 'adam')} · lr {tc.get('lr')} · batch {tc.get('batch_size')}"
                    f"{BR}{tc.get('epochs')} epochs max · seed {tc.get('seed')} · weighting "
                    f"{tc.get('task_weighting', 'fixed')}"
                    + (f" (alpha {tc.get('gradnorm_alpha', 1.5):g})" if tc.get("task_weighting") == "gradnorm" else "")
                    + "".join(f"{BR}pos_weight {plain(col)}: {_pos_weight_text(w, (summ.get('pos_weight') or {}).get(col))}"
                              for col, w in (tc.get("pos_weight") or {}).items())
                    + (f"{BR}device {plain(A.device_text(summ))}" if summ.get("device") else ""))
    with st.expander("All settings"):
        st.json({"data": rec.data_config, "model": rec.model_config, "train": rec.train_config}, expanded=False)
    key, _ = source_of(rec)
    command_panel(rec.data_config, rec.model_config, rec.train_config, key, rec.dataset, stream="streamed" in summ)


def _pos_weight_text(setting, used) -> str:
    """A binary task's pos_weight as set and as used: '15.3 (balanced: negatives / positives of the training split)'."""
    if setting == "balanced":
        return (f"{used:.4g}" if isinstance(used, (int, float)) else "?") + \
            " (balanced: negatives / positives of the training split)"
    return f"{setting:g}" if isinstance(setting, (int, float)) else plain(str(setting))


def _layers(v) -> str:
    if not v:
        return ""
    return "[" + "→".join(map(str, v)) + "]" if isinstance(v, (list, tuple)) else str(v)


def training_section(s: RunStore, rec: RunRecord) -> None:
    hist = s.history(rec.id)
    if hist.empty:
        st.info("No epoch finished, so there are no curves." + (f" Error: {plain(rec.error)}" if rec.error else ""))
    else:
        metrics = A.history_metrics(hist)
        metric = st.selectbox("Metric", metrics, index=0, key="inspect.curve_metric", bind=ADDRESS,
                              format_func=charts._metric_title)
        st.plotly_chart(charts.task_curves(A.curves(hist, metric), metric, list(A.task_kinds(rec.data_config)) or None),
                        key="inspect.curves")
        weights, method = learned_task_weights(hist)
        if method is not None:     # GradNorm, or uncertainty weighting's exp(-log variance)
            st.plotly_chart(charts.task_weights_figure(weights, method, list(A.task_kinds(rec.data_config)) or None),
                            key="inspect.task_weights")
            st.caption("GradNorm's weights start at 1 and always sum to the number of tasks: a task whose loss "
                       "falls more slowly than the others' gains weight." if method == "GradNorm" else
                       "Uncertainty weighting multiplies each task's loss by exp(-s), s its learned log variance.")
    st.subheader("Final metrics")
    fm = A.final_metrics_table(rec.final_metrics)
    if fm.empty:
        st.caption("No final metrics were recorded.")
    else:
        split = "validation" if (rec.data_summary or {}).get("splits", {}).get("val") else "training"
        cfg = {"loss": st.column_config.NumberColumn(
            "training loss", help="The loss the model minimised, where it is not the log loss beside it: for a "
            "regression task the mean squared error of the standardised target (1.0 = always predicting the mean)")}
        st.dataframe(fm.style.format("{:.4f}", na_rep=NA), placeholder=NA, column_config=cfg)
        st.caption(f"On the {split} split" + (f", from epoch {rec.best_epoch} (best validation loss)"
                                               if rec.best_epoch and rec.train_config.get("early_stopping_patience")
                                               else ", after the last epoch") + ".")
    if not hist.empty:
        with st.expander("Per-epoch history (table)"):
            wide = hist.pivot_table(index=["epoch", "split"], columns=["task", "metric"], values="value")
            wide.columns = [f"{t} · {m}" for t, m in wide.columns]
            st.dataframe(wide.reset_index(), placeholder=NA)


def predictions_section(rec: RunRecord, frame: pd.DataFrame | None) -> None:
    if frame is None:
        no_predictions(rec)
        return
    kinds = A.task_kinds(rec.data_config)
    st.caption(f"{len(frame):,} stored rows ({rows_text(frame)}).")
    for task, kind in kinds.items():
        st.subheader(f"{plain(task)} · {kind}")
        if pred_col(task) not in frame:
            st.info(f"No predictions stored for {plain(task)}.")
            continue
        n = A.labelled_count(frame, task)
        if n == 0:
            st.info(f"None of the {len(frame):,} stored rows has a {plain(task)} target, so there is nothing to score.")
            continue
        if n < len(frame):
            missing = len(frame) - n
            st.caption(f"{missing:,} row{' has' if missing == 1 else 's have'} no {plain(task)} target and "
                       f"{'is' if missing == 1 else 'are'} left out.")
        if kind == "binary":
            cur = A.quiet(A.binary_curves, frame, task)
            c1, c2 = st.columns(2)
            c1.plotly_chart(charts.roc_figure(cur, task), key=f"inspect.roc.{task}")
            c2.plotly_chart(charts.pr_figure(cur, task), key=f"inspect.pr.{task}")
            c3, c4 = st.columns(2)
            c3.plotly_chart(charts.calibration_figure(A.calibration(frame, task), task), key=f"inspect.cal.{task}")
            pos = ((rec.data_summary or {}).get("tasks", {}).get(task, {}) or {}).get("positive")
            names = (f"≠ {pos}", f"= {pos}") if pos is not None else ("negative", "positive")
            c4.plotly_chart(charts.score_histogram_figure(A.score_histogram(frame, task, class_names=names), task),
                            key=f"inspect.hist.{task}")
        elif kind == "regression":
            pts, stats = A.regression_points(frame, task)
            c1, c2 = st.columns([2, 3])
            c1.plotly_chart(charts.pred_vs_actual_figure(pts, stats, task), key=f"inspect.pva.{task}")
            c2.plotly_chart(charts.residual_figure(pts, stats, task), key=f"inspect.resid.{task}")
            if stats["shown"] < stats["n"]:
                st.caption(f"Scatter shows a random {stats['shown']:,} of {stats['n']:,} rows; the statistics use all.")
        else:
            cm = A.confusion(frame, task)
            c1, _ = st.columns([3, 2]) if len(cm) <= 6 else (st.container(), None)
            c1.plotly_chart(charts.confusion_figure(cm, task), key=f"inspect.cm.{task}")
    with st.expander("Predictions table (first 1,000 rows)"):
        st.dataframe(frame.head(1000), placeholder=NA)


def split_picker(frame: pd.DataFrame | None) -> pd.DataFrame | None:
    """The split whose rows Predictions and Gates show (validation first); the whole frame has one split."""
    found = stored_splits(frame) if frame is not None else []
    if len(found) < 2:
        return frame
    counts = frame[SPLIT].astype(str).value_counts()
    # the split's name is its label (and its value in the address: ``?inspect.split=training``), its rows the caption
    split = st.radio("Rows shown in Predictions and Gates", found, horizontal=True, key="inspect.split", bind=ADDRESS,
                     format_func=lambda x: SPLIT_NAMES.get(x, x),
                     captions=[f"{counts.get(x, 0):,} rows"
                               + (", a sample" if x == "train" and counts.get(x, 0) >= TRAIN_SAMPLE_ROWS else "")
                               for x in found],
                     help="Judge a model on the validation (or test) rows; the training rows (a seeded sample "
                          "of at most 20,000) show what it fitted: a much better fit there than on validation "
                          "means it overfits.")
    if split not in found:
        split = found[0]
    return rows_of_split(frame, split)


# ----------------------------------------------------------------------------- page

def main() -> None:
    s = store()
    try:
        runs = s.list_runs()
    except StoreError as e:
        st.error(plain(e))
        return
    if not runs:
        st.title("Inspect a run")
        st.info("There are no stored runs yet. Train one on the Train page (or `python -m mmoe train ...`).")
        return
    ids = [r.id for r in runs]
    by_id = {r.id: r for r in runs}
    default = _default_run(runs)
    # no session-state write before the widget: the URL / other pages only decide its default
    rid = st.selectbox("Run", ids, index=ids.index(default), key="inspect.pick",
                       format_func=lambda i: _label(by_id[i]), on_change=_on_pick)
    if rid not in by_id:
        rid = default
    st.session_state[INSPECT_RUN_KEY] = rid
    if st.query_params.get("run") != str(rid):
        st.query_params["run"] = str(rid)
    rec = by_id[rid]

    header(rec)
    try:
        frame = predictions(rid)
    except Exception as e:  # a damaged artifact must not take the page down
        st.error(plain(f"Could not read this run's predictions: {type(e).__name__}: {e}"))
        frame = None

    shown = split_picker(frame)
    tabs = st.tabs(TABS, key="inspect.tab", bind=ADDRESS, on_change="rerun")
    for tab, name in zip(tabs, TABS):
        if tab.open is False:
            continue
        with tab:
            if name == "Training":
                training_section(s, rec)
            elif name == "Predictions":
                predictions_section(rec, shown)
            elif name == "Gates":
                gates_section(s, rec, shown)
            elif name == "Score a file":
                score_tab(s, rec)
            else:
                downloads_section(s, rec, frame)


main()
