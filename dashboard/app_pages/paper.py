"""Paper lab: the experiments of Ma et al. (KDD 2018) in one click, with the architectures (synthetic: the
paper's three and CGC and PLE, as ``python -m mmoe paper``; any of them), rows, correlations, seeds and
epochs adjustable and a measured time estimate, of what will run, before anything starts."""
from __future__ import annotations

import dataclasses

import streamlit as st

from mmoe.nn import build_model, count_parameters
from mmoe.runs.experiments import submit_experiment
from mmoe.runs.paper import (
    ARCHS,
    CENSUS_DEFAULTS,
    CENSUS_TRAIN,
    PAPER_DEFAULTS,
    PAPER_MODEL,
    PAPER_TRAIN,
    census_experiment,
    layered_split,
    paper_experiment,
)
from mmoe.views.datasets import DATA_DIR
from mmoe.views.experiments import estimate_experiment
from mmoe.views.formatting import plain
from mmoe.views.jobview import duration_text
from mmoe_dashboard.state import ADDRESS, manager, open_experiment, store
from mmoe_dashboard.widgets import device_options

CORRELATIONS = (0.0, 0.25, 0.5, 0.75, 0.9, 1.0)
CENSUS_SAMPLE = DATA_DIR / "census_sample.csv.gz"
ARCH_NAMES = {"mmoe": "MMoE", "omoe": "OMoE", "shared-bottom": "Shared-Bottom", "cgc": "CGC", "ple": "PLE"}


def _arch_text(archs) -> str:
    """What each chosen architecture is, in the words of the synthetic tab's description."""
    experts, width = PAPER_MODEL.num_experts, PAPER_MODEL.expert_hidden[0]
    shared, per_task = layered_split(experts, 2)
    # each entry stands on its own: any subset may be chosen
    what = {"mmoe": f"MMoE: {experts} experts of {width} units, one gate per task",
            "omoe": f"OMoE: {experts} experts of {width} units, one gate for both tasks",
            "shared-bottom": "Shared-Bottom: a one-layer bottom of matched size",
            "cgc": f"CGC: {shared} shared experts and {per_task} per task, their width matched",
            "ple": f"PLE: two levels of {shared} shared experts and {per_task} per task, their width matched"}
    return "; ".join(what[a] for a in archs)


@st.cache_data(show_spinner="Timing one epoch on this machine…", max_entries=32)
def _estimate(kind: str, rows: int, corrs: tuple, seeds: int, epochs: int, device: str, path: str,
              archs: tuple = ARCHS) -> dict:
    return estimate_experiment(_build(kind, rows, corrs, seeds, epochs, device, path, archs))


def _build(kind: str, rows: int, corrs: tuple, seeds: int, epochs: int, device: str, path: str,
           archs: tuple = ARCHS):
    if kind == "census":
        return census_experiment(path, seeds=seeds, epochs=epochs,
                                 train=dataclasses.replace(CENSUS_TRAIN, device=device), archs=archs)
    return paper_experiment(corrs, seeds=seeds, rows=rows, epochs=epochs,
                            train=dataclasses.replace(PAPER_TRAIN, device=device), archs=archs)


def _start(kind: str, *args) -> None:
    try:
        job = submit_experiment(manager(), _build(kind, *args), store_home=str(store().home))
    except (ValueError, RuntimeError) as e:
        st.session_state["paper.flash"] = str(e)
    else:
        st.session_state["paper.started"] = job.id


def _sizes(exp) -> str:
    from mmoe.data import prepare

    point = exp.points[0]
    src = point.data(exp.seeds[0]) if callable(point.data) else point.data
    data = prepare(src.source, src.config) if hasattr(src, "source") else src
    first = exp.points[0].settings.get("correlation")
    return " · ".join(f"{p.settings['arch']}: {count_parameters(build_model(p.model_config, data)):,} parameters"
                      for p in exp.points if p.settings.get("correlation") == first)


def _launch(kind: str, args: tuple, key: str) -> None:
    try:
        est = _estimate(kind, *args)
    except (ValueError, OSError) as e:
        st.error(f"Cannot set up this experiment: {plain(e)}")
        return
    st.info(f"**{est['runs']} runs**, about **{duration_text(est['seconds'])}** on this machine (measured just now: "
            f"one epoch took {est['seconds_per_epoch']:.2f} s of training plus {est['per_run_overhead']:.2f} s "
            "per run to prepare, evaluate and save). It queues behind other training on the same device.")
    if st.button("Start", type="primary", key=f"paper.start.{key}"):
        _start(kind, *args)
        st.rerun()


def main() -> None:
    st.title("Paper lab")
    st.caption("Ma et al., *Modeling Task Relationships in Multi-task Learning with Multi-gate Mixture-of-Experts*, "
               "KDD 2018: MMoE against OMoE (one gate for all tasks) and Shared-Bottom, at comparable parameter "
               "counts, over several seeds; CGC and PLE (Tang et al., RecSys 2020) beside them. Whatever comes out "
               "is shown as it is: the generator is not tuned.")
    if "paper.flash" in st.session_state:
        st.error(plain(st.session_state.pop("paper.flash")))
    started = st.session_state.get("paper.started")
    if started is not None:
        job = manager().get(started)
        exp_id = (job.snapshot().extra or {}).get("experiment_id") if job else None
        c1, c2 = st.columns([3, 1])
        c1.success(f"Experiment started (job {started}); follow it on the Experiments page.")
        if exp_id is not None and c2.button("Open results", key="paper.open"):
            open_experiment(exp_id)
    choices, _ = device_options()
    device = st.selectbox("Device", choices, key="paper.device", bind=ADDRESS)

    synth, census = st.tabs(["Synthetic: task correlation (sec. 3)", "Census-income (sec. 6)"], key="paper.tab",
                            bind=ADDRESS)
    with synth:
        chosen = st.multiselect("Architectures", ARCHS, default=list(ARCHS), format_func=ARCH_NAMES.get,
                                key="paper.archs", bind=ADDRESS,
                                help="the paper compares MMoE, OMoE and Shared-Bottom; each one added runs once per "
                                     "correlation and seed")
        archs = tuple(a for a in ARCHS if a in chosen)
        st.markdown("Two regression tasks read the same 100 inputs from directions whose cosine is the task "
                    "correlation. Every seed draws a fresh table and fresh initial weights. "
                    f"{_arch_text(archs) or 'No architecture chosen'}; Adam, batch 128.")
        c1, c2, c3 = st.columns(3)
        rows = c1.number_input("Rows per table", 200, 1_000_000, PAPER_DEFAULTS["rows"], step=1000, key="paper.rows",
                               bind=ADDRESS)
        seeds = c2.number_input("Seeds per setting", 1, 200, PAPER_DEFAULTS["seeds"], key="paper.seeds", bind=ADDRESS)
        epochs = c3.number_input("Epochs", 1, 1000, PAPER_DEFAULTS["epochs"], key="paper.epochs", bind=ADDRESS)
        corrs = st.multiselect("Task correlations", CORRELATIONS, default=list(PAPER_DEFAULTS["correlations"]),
                               key="paper.corrs", bind=ADDRESS)
        if not archs:
            st.warning("Choose at least one architecture.")
        elif not corrs:
            st.warning("Choose at least one correlation.")
        else:
            args = (int(rows), tuple(sorted(corrs)), int(seeds), int(epochs), device, "", archs)
            st.caption(_sizes(_build("paper", *args)))
            _launch("paper", args, "synth")
    with census:
        chosen_c = st.multiselect("Architectures", ARCHS, default=list(ARCHS), format_func=ARCH_NAMES.get,
                                  key="paper.c_archs", bind=ADDRESS, help="each one runs once per seed")
        archs_c = tuple(a for a in ARCHS if a in chosen_c)
        names = ", ".join(ARCH_NAMES[a] for a in archs_c) or "no architecture chosen"
        st.markdown("Income above 50K and never married, from the UCI census-income table (`instance_weight`, a "
                    f"survey weight, is dropped): {names} at matched sizes, batch 1024, Adam.")
        path = st.text_input("File on the server", str(CENSUS_SAMPLE), key="paper.census_path", bind=ADDRESS,
                             help="the packaged 15,000-row sample, or the path of the full census-income CSV")
        c1, c2 = st.columns(2)
        seeds_c = c1.number_input("Seeds per architecture", 1, 200, CENSUS_DEFAULTS["seeds"], key="paper.c_seeds",
                                  bind=ADDRESS)
        epochs_c = c2.number_input("Epochs", 1, 1000, CENSUS_DEFAULTS["epochs"], key="paper.c_epochs", bind=ADDRESS)
        if not archs_c:
            st.warning("Choose at least one architecture.")
        else:
            _launch("census", (0, (), int(seeds_c), int(epochs_c), device, path.strip(), archs_c), "census")


main()
