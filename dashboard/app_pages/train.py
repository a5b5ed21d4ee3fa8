"""Model & training page: settings, Train (a background job), live progress, jobs and stored runs."""
from __future__ import annotations

import dataclasses

import streamlit as st

from mmoe.config import ConfigError
from mmoe.nn import build_model, count_parameters
from mmoe.runs.errors import StoreError
from mmoe.runs.experiments import grid_experiment, submit_experiment
from mmoe.runs.naming import MAX_NAME, fit_run_name, optional_run_name
from mmoe.runs.runner import DataSource, submit_training
from mmoe.views.datasets import with_task_weights
from mmoe.views.formatting import plain
from mmoe.views.jobview import (
    METRIC_FORMAT,
    curves_frame,
    experiment_label,
    jobs_frame,
    metrics_by_task,
    outcome,
    overview_columns,
    progress_text,
    run_label,
    runs_overview,
)
from mmoe.views.presets import PRESETS, compare_configs
from mmoe.views.runinfo import no_better_than_baseline
from mmoe_dashboard.charts import loss_curve_figure
from mmoe_dashboard.continuity import command_panel, restore_train_settings, save_train_settings
from mmoe_dashboard.state import (
    BACK_TO,
    DATA_KEY,
    NA,
    manager,
    open_experiment,
    open_in_inspect,
    page,
    store,
    text_column,
)
from mmoe_dashboard.widgets import (
    apply_preset,
    preset_changes,
    experiment_widgets,
    init_defaults,
    model_widgets,
    task_weight_widgets,
    train_widgets,
)

POLL_SECONDS = 1.0
SHOWN_JOBS = 6       # jobs drawn as full cards (newest first); the table lists all of them

def main() -> None:
    st.title("Model & training")
    dataset = st.session_state.get(DATA_KEY)

    # ------------------------------------------------------------------------------------- settings

    if dataset is None and st.query_params.get("dataset") and "data.source" not in st.session_state:
        # a refresh, a new tab or a link of this page (a new session): the Data page prepares the dataset in the
        # address with the choices kept for it, then comes back here (``BACK_TO``)
        st.switch_page(page("data"), query_params={"dataset": st.query_params["dataset"], BACK_TO: "train"})
    if dataset is not None:
        st.query_params["dataset"] = dataset["key"]        # in the address: a refresh comes back to it
    if dataset is None:
        st.info("No dataset is ready yet: choose one and its targets on the Data page first. "
                "Runs started earlier are listed below.")
        st.page_link(page("data"), label="Go to the Data page", icon=":material/table_view:")
    else:
        prepared = dataset["prepared"]
        tasks = prepared.tasks
        streamed = (dataset.get("server_file") or {}).get("streamed", False)
        n_train = len(prepared.splits["train"])
        if streamed and (dataset["server_file"].get("rows") or 0) > len(prepared):   # estimated from the file
            n_train = int(dataset["server_file"]["rows"] * n_train / max(len(prepared), 1))
        st.caption(f"Dataset **{plain(dataset['name'])}** · tasks: "
                   + ", ".join(plain(t.label()) for t in tasks)
                   + (f" · streamed from the server: about {n_train:,} training rows" if streamed
                      else f" · {n_train:,} training rows"))
        restore_train_settings(dataset["key"])   # a refresh: the settings last used with this dataset
        init_defaults()
        c1, c2 = st.columns([1, 2])
        c1.selectbox("Preset", list(PRESETS), key="train.preset", on_change=apply_preset, persist_state="session",
                     help="fills in all settings below; change any of them afterwards")
        preset = st.session_state.get("train.preset", next(iter(PRESETS)))
        changed = preset_changes(preset)
        changed_text = ", ".join(c.replace("_", " ") for c in changed)
        c2.caption(PRESETS[preset].description + (f" · changed since: {changed_text}" if changed else ""))

        model_config = train_config = None
        with st.container(border=True):
            st.markdown("**Model**")
            try:
                model_config = model_widgets()
            except ConfigError as e:
                st.error(plain(e))
        with st.container(border=True):
            st.markdown("**Training**")
            try:
                train_config = train_widgets(n_train)
            except ConfigError as e:
                st.error(plain(e))
            weighting, weights, loss_options = task_weight_widgets(tasks)
            run_name = st.text_input("Run name (optional)", key="train.name", persist_state="session",
                                     max_chars=MAX_NAME, placeholder=f"e.g. {dataset['name'][:60]} baseline")
            try:
                optional_run_name(run_name)
            except StoreError as e:
                st.error(plain(e))
                train_config = None

        seeds, grid = 1, []
        with st.container(border=True):
            st.markdown("**Repeat and sweep** · one run says little: differences between two seeds are often "
                        "as large as between two architectures")
            try:
                seeds, grid = experiment_widgets()
            except ConfigError as e:
                st.error(plain(e))
                train_config = None

        save_train_settings(dataset["key"])
        data = with_task_weights(prepared, weights)
        # a streamed file: the job prepares (or finds) its cache and trains on all of it, not on these first rows
        job_data = DataSource(dataset["server_file"]["path"], data.config, stream=True) if streamed else data
        if train_config is not None:
            train_config = dataclasses.replace(train_config, task_weighting=weighting, **loss_options)
        if model_config is not None:
            try:
                n_params = count_parameters(build_model(model_config, data))
                st.metric("Trainable parameters", f"{n_params:,}")
            except Exception as e:  # noqa: BLE001 - a settings combination the model refuses
                st.error(f"This model cannot be built with these settings: {plain(e)}")
                model_config = None

        ready = model_config is not None and train_config is not None
        if ready:
            command_panel(data.config, model_config, train_config, dataset["key"], dataset["name"],
                          what="these settings", stream=streamed)
        if store().read_only:
            st.warning(f"The run store {plain(str(store().home))} is read-only for this server: stored runs can be "
                       "inspected and compared, but new runs cannot be saved. Start the dashboard with a writable "
                       "--store (or fix the folder's permissions) to train.")
            ready = False
        experiment = None
        if ready and streamed and (seeds > 1 or grid):
            st.error("Repeats and sweeps of a streamed file are not supported yet: train one run at a time, or "
                     "use a sample of the file that fits in memory.")
            ready = False
        if ready and (seeds > 1 or grid):
            try:
                experiment = grid_experiment(data, model_config, train_config, grid,
                                             range(train_config.seed, train_config.seed + seeds),
                                             name=run_name.strip() or None, dataset=dataset["name"])
            except ConfigError as e:
                st.error(plain(e))
                ready = False
        # a row of buttons as wide as their labels (in fixed columns a long label was cut: "Run experiment: 1 setti…")
        buttons = st.container(horizontal=True)
        label = experiment_label(len(experiment.points), seeds) if experiment is not None else "Train"
        train_clicked = buttons.button(label, type="primary", disabled=not ready, key="train.go")
        compare_clicked = buttons.button("Train MMoE, OMoE and Shared-Bottom",
                                         disabled=not ready or experiment is not None, key="train.go3",
                                         help="queue the same data and settings once per architecture, to compare "
                                              "them (with seeds or a sweep, sweep the architecture instead)")
        slot_submit = st.empty()
        if experiment is not None and train_clicked:
            try:
                submit_experiment(manager(), experiment, store_home=str(store().home))
            except (ValueError, RuntimeError) as e:
                slot_submit.error(str(e))
            else:
                slot_submit.success(f"Queued an experiment of {experiment.total_runs} runs; its progress is shown "
                                    "below and its results on the Experiments page.")
        elif ready and (train_clicked or compare_clicked):
            configs = compare_configs(model_config) if compare_clicked else [model_config]
            try:
                for mc in configs:
                    base = run_name.strip() or f"{mc.arch} on {dataset['name']}"
                    name = fit_run_name(f"{base} [{mc.arch}]" if compare_clicked and run_name.strip() else base)
                    submit_training(manager(), job_data, mc, train_config, store_home=str(store().home), name=name,
                                    dataset=dataset["name"])
            except (ValueError, RuntimeError) as e:   # e.g. cuda asked for but absent
                slot_submit.error(str(e))
            else:
                slot_submit.success(f"Queued {len(configs)} run(s); progress is shown below.")

    # ------------------------------------------------------------------------------------- live jobs

    st.divider()
    st.subheader("Runs in progress and finished in this session of the server")
    active_at_start = any(not j.done for j in manager().jobs())


    def _cancel(job_id: int) -> None:
        manager().cancel(job_id)


    @st.fragment(run_every=POLL_SECONDS if active_at_start else None)
    def live_jobs() -> None:
        jobs = manager().jobs()
        snaps = [j.snapshot() for j in jobs]
        if not snaps:
            st.caption("No runs started since the server started. Press **Train** above.")
        rank = {"running": 0, "queued": 1}   # running first, then the queue in order, then the newest ended
        order = sorted(snaps, key=lambda p: (rank.get(p.status, 2), p.job_id if p.status == "queued" else -p.job_id))
        for p in order[:SHOWN_JOBS]:
            with st.container(border=True):
                head, b1, b2 = st.columns([5, 1, 1])
                exp_id = (p.extra or {}).get("experiment_id")
                run = f" · experiment {exp_id}" if exp_id is not None else (
                    f" · run {p.run_id}" if p.run_id is not None else "")
                head.text(f"{p.name} · job {p.job_id}{run} · {p.status} on {p.device}")
                if not p.done:
                    # a callback, not `if st.button(): cancel; st.rerun(scope="fragment")`: it runs before the
                    # rerun the click causes, so this card already shows "cancelling…", and it works when
                    # that rerun is a full one (where scope="fragment" raises an exception)
                    b1.button("Cancel all" if exp_id is not None else "Cancel", key=f"train.cancel.{p.job_id}",
                              disabled=p.cancel_requested, on_click=_cancel, args=(p.job_id,))
                if exp_id is not None:
                    if b2.button("Results", key=f"train.exp.{p.job_id}"):
                        open_experiment(exp_id)
                elif p.run_id is not None and b2.button("Inspect", key=f"train.inspect.{p.job_id}"):
                    open_in_inspect(p.run_id)
                st.progress(p.fraction, text=progress_text(p) + (" · cancelling…" if p.cancel_requested and not p.done
                                                                   else ""))
                why = outcome(p)
                if why:
                    (st.warning if p.status == "cancelled" else st.error)(plain(why))
                elif p.done and exp_id is None and p.run_id is not None and store().exists(p.run_id):
                    rec = store().get_run(p.run_id)
                    st.caption(f"Why it stopped: {plain(rec.stop_reason or p.status)}")
                    for flag in no_better_than_baseline(rec):
                        st.warning(f"No better than a constant prediction: {plain(flag)}. Train longer, with a smaller "
                                   "batch or a higher learning rate, or check that the features carry signal.")
                elif p.done and exp_id is not None and p.message:
                    st.caption(p.message)
                curves = curves_frame(p)
                if not curves.empty:
                    c1, c2 = st.columns([3, 2])
                    c1.plotly_chart(loss_curve_figure(curves, f"Loss per task · job {p.job_id}"), width="stretch",
                                    key=f"train.curve.{p.job_id}")
                    m = metrics_by_task(p.last_metrics)
                    if not m.empty:
                        c2.markdown(f"**Metrics after epoch {p.epoch}**")
                        c2.dataframe(m, hide_index=True, width="stretch", placeholder=NA, column_config={
                            c: st.column_config.NumberColumn(c, format=METRIC_FORMAT) for c in m.columns[2:]})
                        c2.caption("the training split logs only its loss; Inspect has every metric")
        if len(snaps) > SHOWN_JOBS:
            with st.expander(f"All {len(snaps)} jobs"):
                st.dataframe(jobs_frame(snaps), hide_index=True, width="stretch", placeholder=NA)
        if active_at_start and all(p.done for p in snaps):
            st.rerun()   # everything ended: a full rerun redraws this fragment without its timer


    live_jobs()

    # ------------------------------------------------------------------------------------- stored runs

    st.subheader("Stored runs")
    runs = store().runs_frame()
    if runs.empty:
        st.caption(f"No stored runs in {store().home} yet.")
    else:
        table = runs_overview(runs)
        texts, metrics = overview_columns(table)
        columns = {c: text_column(c, table[c]) for c in texts}      # names and reasons in full, not "why it sto…"
        columns["id"] = st.column_config.NumberColumn("id", format="%d", width="small", pinned=True)
        columns["name"] = text_column("name", table["name"], widest=320, pinned=True)   # (in view on scroll)
        columns |= {c: st.column_config.NumberColumn(c, format=METRIC_FORMAT) for c in metrics}
        st.dataframe(table, hide_index=True, width="stretch", height=min(420, 38 + 35 * len(table)), placeholder=NA,
                     column_config=columns)
        c1, c2 = st.columns([2, 1])
        newest = int(table["id"].iloc[0])
        if st.session_state.get("train.pick_newest") != newest:     # a new run: the box follows it, unless the
            if st.session_state.get("train.pick_run") in (None, st.session_state.get("train.pick_newest")):
                st.session_state["train.pick_run"] = newest        # user had chosen another
            st.session_state["train.pick_newest"] = newest
        pick = c1.selectbox("Run", table["id"].tolist(), key="train.pick_run", label_visibility="collapsed",
                            format_func=lambda i: run_label(i, table.set_index("id").at[i, "name"]))
        if c2.button("Open in Inspect", key="train.open_run"):
            open_in_inspect(int(pick))


main()
