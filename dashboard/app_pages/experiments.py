"""Experiments: settings x seeds trained as one unit. Per setting the mean and 95% interval of each
task's primary metric, the metric against the swept setting with bands, paired differences in words,
mean learning curves with bands, and every member run one tick away (its row's box opens it in Inspect).
Too few seeds for the intervals to say much (under 3) is said above the results.

The experiment shown comes from ``?experiment=ID``, else the session, else the newest.
"""
from __future__ import annotations

import streamlit as st
from scipy import stats

from mmoe.runs.experiments import settings_text, summarize
from mmoe.runs.store import StoreError
from mmoe.tasks import METRIC_DIRECTIONS
from mmoe.views.experiments import (
    ARROW,
    config_table,
    differences_frame,
    mean_curves,
    members_frame,
    metric_choices,
    primary_metrics,
    sweep_frame,
)
from mmoe.views.formatting import plain
from mmoe_dashboard import experiment_charts as X
from mmoe_dashboard.state import (ADDRESS, COMPARE_RUNS_KEY, EXPERIMENT_KEY, NA, manager, open_in_inspect, page, store,
                                  text_column)

POLL_SECONDS = 2.0
FEW_SEEDS = 3            # below this a 95% t-interval is too wide to say anything
MEMBER_TEXT = ("run", "settings", "seed", "status", "why it stopped")   # members_frame's other columns: metrics


def _job_of(exp_id: int):
    for job in manager().jobs():
        if (job.snapshot().extra or {}).get("experiment_id") == exp_id and not job.done:
            return job
    return None


def _pick(exps) -> int:
    ids = [e.id for e in exps]
    kind = lambda e: "seeds" if e.kind == "grid" and not e.spec.get("grid") else e.kind  # noqa: E731  (no sweep)
    names = {e.id: f"#{e.id} {e.name} · {kind(e)}" for e in exps}   # its status is the live line below
    wanted = st.query_params.get("experiment") or st.session_state.get(EXPERIMENT_KEY)
    try:
        wanted = int(wanted)
    except (TypeError, ValueError):
        wanted = None
    index = ids.index(wanted) if wanted in ids else 0
    exp_id = st.selectbox("Experiment", ids, index=index, format_func=names.get, key="exp.pick")
    st.session_state[EXPERIMENT_KEY] = exp_id
    st.query_params["experiment"] = str(exp_id)
    return exp_id


def _cancel(job_id: int) -> None:
    manager().cancel(job_id)


def status_section(exp_id: int) -> None:
    @st.fragment(run_every=POLL_SECONDS if store().get_experiment(exp_id).active else None)
    def live() -> None:
        rec = store().get_experiment(exp_id)
        runs = store().experiment_runs(exp_id)
        total = len(rec.points) * len(rec.seeds)
        ended = sum(not r.active for r in runs)
        c1, c2 = st.columns([5, 1])
        c1.progress(min(ended / max(total, 1), 1.0),
                    text=f"{rec.status} · {ended} of {total} runs ended · {len(rec.points)} setting(s) x "
                         f"{len(rec.seeds)} seed(s) on {plain(rec.dataset)}")
        job = _job_of(exp_id)
        if job is not None:
            c2.button("Cancel all", key=f"exp.cancel.{job.id}", on_click=_cancel, args=(job.id,),
                      disabled=job.snapshot().cancel_requested)
        if rec.error:
            st.warning(plain(rec.error))
        if rec.active and job is None:
            st.caption("Running in another process (a CLI experiment): this page follows it.")
        if st.session_state.get(f"exp.was_active.{exp_id}") and not rec.active:
            st.session_state[f"exp.was_active.{exp_id}"] = False
            st.rerun()   # it just ended: redraw the whole page with the final numbers
        st.session_state[f"exp.was_active.{exp_id}"] = rec.active

    live()


def seeds_warning(n_seeds: int) -> None:
    """Say plainly when the experiment has too few seeds for its 95% intervals to mean much."""
    if n_seeds >= FEW_SEEDS:
        return
    if n_seeds <= 1:
        st.warning("With 1 seed there is no 95% interval: no difference can be told from noise. Use 3 or more seeds "
                   "(5 for narrow intervals).")
        return
    k = float(stats.t.ppf(0.975, n_seeds - 1))
    st.warning(f"With {n_seeds} seeds a 95% interval spans ±{k:.1f} standard errors: it says almost nothing. "
               "Use 3 or more seeds (5 for narrow intervals).")


def results_section(summary: dict) -> None:
    n_seeds = max([len(c["seeds"]) for c in summary["configs"]] + [0])
    seeds_warning(n_seeds)
    table = config_table(summary)
    st.markdown("**Mean over seeds [95% interval]** of each task's primary metric (↑ higher is better, "
                "↓ lower is better)")
    st.dataframe(table, hide_index=True, width="stretch", placeholder=NA)
    tasks = list(primary_metrics(summary))
    if not tasks:
        st.info("No run of this experiment has finished yet.")
        return
    c1, c2 = st.columns(2)
    task = c1.selectbox("Task", tasks, key="exp.task", bind=ADDRESS)
    choices = metric_choices(summary, task)
    last = st.session_state.get("exp.metric_last")
    if f"exp.metric.{task}" not in st.session_state and last in choices:   # another task: keep the metric read
        st.session_state[f"exp.metric.{task}"] = last
    metric = c2.selectbox("Metric", choices, key=f"exp.metric.{task}", bind=ADDRESS)
    st.session_state["exp.metric_last"] = metric
    arrow = ARROW.get(METRIC_DIRECTIONS.get(metric) or "", "")
    st.plotly_chart(X.sweep_figure(sweep_frame(summary, task, metric), task, metric, arrow), width="stretch",
                    key="exp.sweep")

    others = " and of each other task's primary metric" if len(tasks) > 1 else ""
    st.markdown(f"**Paired differences** of {plain(task)}'s {plain(metric)} (the metric chosen above){others}: the "
                "same seeds, setting b minus its baseline a (the first value of the first swept setting, the others "
                "held equal)")
    diffs = differences_frame(summary, task, metric)
    if diffs.empty:
        st.caption("No differences: the experiment has one setting (repeated over seeds).")
    else:
        detected = diffs[diffs["what it says"].str.contains("is better")]
        if detected.empty:
            st.info(f"No difference detected with {n_seeds} seeds: every 95% interval contains 0. More seeds "
                    "narrow the intervals; the settings may also simply perform alike.")
        else:
            st.success(f"{len(detected)} of {len(diffs)} differences are outside noise (95% interval excludes 0).")
        st.plotly_chart(X.differences_figure(diffs, task), width="stretch", key="exp.diffs")
        # sized to their values: a cell does not wrap, and "shared-bottom vs mmoe · correlation=0.5" cut after
        # "correla" made rows look identical
        st.dataframe(diffs.drop(columns=["mean", "lo", "hi"]), hide_index=True, width="stretch", placeholder=NA,
                     column_config={"compared": text_column("compared", diffs["compared"], pinned=True),
                                    "task": text_column("task", diffs["task"]),
                                    "metric": st.column_config.TextColumn(width="small"),
                                    "difference (b − a)": text_column("difference (b − a)",
                                                                      diffs["difference (b − a)"]),
                                    "paired seeds": st.column_config.NumberColumn("seeds", width="small"),
                                    "what it says": text_column("what it says", diffs["what it says"], widest=760)})

    st.markdown("**Mean learning curves** over seeds, with 95% bands")
    c1, c2 = st.columns(2)
    split = c1.radio("Split", ["val", "train"], horizontal=True, key="exp.split", bind=ADDRESS,
                     format_func={"val": "validation", "train": "training"}.get)
    curve_metric = c2.selectbox("Curve", ["loss"] + [m for m in choices if m != "loss"] if split == "val"
                                else ["loss"], key="exp.curve_metric", bind=ADDRESS)
    labels = [settings_text(c["settings"]) for c in summary["configs"]]
    grid = summary.get("grid", [])
    default = labels
    if len(grid) > 1:   # e.g. the paper: the architectures at the first correlation, not 9 bands at once
        last, first_value = grid[-1][0], grid[-1][1][0]
        default = [lab for lab, c in zip(labels, summary["configs"]) if c["settings"].get(last) == first_value]
    # one choice per experiment: another experiment's settings are not among this one's options (switching
    # experiments emptied the choice, and the chart then said no epochs were stored)
    shown = st.multiselect("Settings shown", labels, default=default, bind=ADDRESS,
                           key=f"exp.curve_settings.{summary['experiment_id']}")
    if not shown:
        st.info("Choose at least one setting to draw its mean curve.")
        return
    curves = {lab: mean_curves(store(), c["runs"], task, curve_metric, split)
              for lab, c in zip(labels, summary["configs"]) if lab in shown}
    st.plotly_chart(X.mean_curves_figure(curves, task, curve_metric, split), width="stretch", key="exp.curves")


def members_section(summary: dict) -> None:
    # Streamlit selects a row by its box at the left (a click on a cell only focuses the cell)
    st.markdown("**Member runs** · tick the box at the left of a row to open that run in Inspect")
    members = members_frame(summary, store())
    if members.empty:
        st.caption("No runs yet.")
        return
    ids = members["run"].tolist()
    columns = {c: text_column(c, members[c]) for c in ("settings", "status", "why it stopped") if c in members}
    columns.update({c: st.column_config.NumberColumn(c, format="%.4f") for c in members if c not in MEMBER_TEXT})
    event = st.dataframe(members, hide_index=True, width="stretch", placeholder=NA, on_select="rerun",
                         selection_mode="single-row", key="exp.members", height=min(420, 38 + 35 * len(members)),
                         column_config=columns)
    rows = event.selection.rows if event is not None else []
    if rows:
        open_in_inspect(int(ids[rows[0]]))
    if st.button("Compare all", key="exp.compare", help="open every member run in Compare, as one group"):
        st.session_state[COMPARE_RUNS_KEY] = [int(i) for i in ids]
        st.switch_page(page("compare"), query_params={"runs": ",".join(str(int(i)) for i in ids)})


def delete_section(exp_id: int) -> None:
    with st.expander("Delete this experiment"):
        n = len(store().experiment_runs(exp_id))
        sure = st.checkbox(f"Yes, delete the experiment and its {n} runs (their models and predictions too)",
                           key=f"exp.sure.{exp_id}")
        if st.button("Delete", disabled=not sure, key=f"exp.delete.{exp_id}"):
            try:
                store().delete_experiment(exp_id)
            except StoreError as e:
                st.error(plain(e))
            else:
                st.session_state.pop(EXPERIMENT_KEY, None)
                st.query_params.pop("experiment", None)
                st.rerun()


def main() -> None:
    st.title("Experiments")
    st.caption("Settings x seeds trained as one unit, so every comparison says how sure it is. Start one on the "
               "Model & training page (repeat with N seeds, sweep a setting), in the Paper lab, or with "
               "`python -m mmoe experiment`.")
    exps = store().list_experiments()
    if not exps:
        st.info("No experiments yet.")
        c1, c2 = st.columns(2)
        c1.page_link(page("train"), label="Repeat or sweep on the Model & training page", icon=":material/tune:")
        c2.page_link(page("paper"), label="Reproduce the MMoE paper in the Paper lab", icon=":material/article:")
        return
    exp_id = _pick(exps)
    status_section(exp_id)
    summary = summarize(store(), exp_id)
    results_section(summary)
    members_section(summary)
    delete_section(exp_id)


main()
