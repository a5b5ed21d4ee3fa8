"""A refresh loses nothing beyond the data and training pages either (AppTest): on Inspect, Compare,
Experiments and the Paper lab the view's controls are bound to the page's address (Streamlit's
``bind="query-params"``), so a new session opened with that address (a refresh, a new tab, a shared
link) comes back to the same tab, split, filters, sort, metric and settings."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from mmoe.runs.store import RunStore

from helpers import tiny_experiment

PAGES = Path(__file__).resolve().parents[2] / "dashboard" / "app_pages"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    home = tmp_path_factory.mktemp("address") / "runs"
    store = RunStore(home)
    exp_id = tiny_experiment(store, [("lr", [0.001, 0.01])], (0, 1), "lr sweep")
    ids = [r.id for r in store.list_runs()]
    store.close()
    return home, exp_id, ids


@pytest.fixture
def open_at(built, tmp_path, monkeypatch):
    src, exp_id, ids = built
    home = tmp_path / "runs"
    shutil.copytree(src, home)
    monkeypatch.setenv("MMOE_HOME", str(home))

    def run(name: str, query: dict) -> AppTest:
        """A new session of page ``name`` opened at the address with ``query``."""
        at = AppTest.from_file(str(PAGES / f"{name}.py"), default_timeout=90)
        at.query_params.update(query)
        at.run()
        assert not at.exception, at.exception
        return at

    return run, exp_id, ids


def _bound(widget) -> bool:
    return widget.proto.query_param_key == widget.key


def test_compare_comes_back_to_its_filters_sort_and_charts(open_at):
    run, _, ids = open_at
    at = run("compare", {"runs": f"{ids[0]},{ids[2]}", "compare.sort": "name", "compare.desc": "false",
                         "compare.f_text": "lr", "compare.smooth": "0.3", "compare.train_curves": "false",
                         "compare.diff_only": "false", "compare.heat_task": "score"})
    assert at.text_input(key="compare.f_text").value == "lr"
    assert at.selectbox(key="compare.sort").value == "name" and at.toggle(key="compare.desc").value is False
    assert at.slider(key="compare.smooth").value == 0.3 and at.toggle(key="compare.train_curves").value is False
    assert at.toggle(key="compare.diff_only").value is False
    assert at.selectbox(key="compare.heat_task").value == "score"
    assert sorted(at.session_state["compare.shown_ids"]) == sorted(ids)      # the text filter keeps every run
    widgets = [at.text_input(key="compare.f_text"), at.selectbox(key="compare.sort"), at.toggle(key="compare.desc"),
               at.slider(key="compare.smooth"), at.toggle(key="compare.train_curves"),
               at.toggle(key="compare.diff_only"), at.selectbox(key="compare.heat_task"),
               at.selectbox(key="compare.metric"), at.multiselect(key="compare.f_arch")]
    assert all(_bound(w) for w in widgets), [w.key for w in widgets if not _bound(w)]
    metric = [m for m in at.selectbox(key="compare.metric").options if m != "loss"][0]
    again = run("compare", {"runs": f"{ids[0]},{ids[2]}", "compare.metric": metric})
    assert again.selectbox(key="compare.metric").value == metric


def test_experiments_comes_back_to_its_task_metric_split_and_settings(open_at):
    run, exp_id, _ = open_at
    key = f"exp.curve_settings.{exp_id}"
    at = run("experiments", {"experiment": str(exp_id)})
    labels = at.multiselect(key=key).options
    assert len(labels) == 2 and at.multiselect(key=key).value == labels      # both settings by default
    at = run("experiments", {"experiment": str(exp_id), "exp.task": "score", "exp.metric.score": "r2",
                             "exp.split": "training", key: [labels[1]]})    # (a radio's label is its value)
    assert at.selectbox(key="exp.task").value == "score" and at.selectbox(key="exp.metric.score").value == "r2"
    assert at.radio(key="exp.split").value == "train" and at.multiselect(key=key).value == [labels[1]]
    widgets = [at.selectbox(key="exp.task"), at.selectbox(key="exp.metric.score"), at.radio(key="exp.split"),
               at.selectbox(key="exp.curve_metric"), at.multiselect(key=key)]
    assert all(_bound(w) for w in widgets)


def test_experiments_with_no_setting_chosen_says_so(open_at):
    run, exp_id, _ = open_at
    at = run("experiments", {"experiment": str(exp_id)})
    at.multiselect(key=f"exp.curve_settings.{exp_id}").set_value([]).run()
    assert not at.exception
    assert any("Choose at least one setting" in i.value for i in at.info)


def test_inspect_comes_back_to_its_tab_split_and_sample(open_at):
    run, _, ids = open_at
    rid = ids[1]
    at = run("inspect", {"run": str(rid), "inspect.tab": "Gates", "inspect.split": "training",
                         "inspect.sim_method": "cosine similarity", f"inspect.row.{rid}": "5"})
    assert at.session_state["inspect.tab"] == "Gates"
    assert at.radio(key="inspect.split").value == "train" and at.radio(key="inspect.sim_method").value == "cosine"
    assert at.number_input(key=f"inspect.row.{rid}").value == 5
    assert all(_bound(w) for w in (at.radio(key="inspect.split"), at.radio(key="inspect.sim_method"),
                                   at.number_input(key=f"inspect.row.{rid}")))
    metrics = run("inspect", {"run": str(rid), "inspect.tab": "Training"}).selectbox(key="inspect.curve_metric")
    other = [m for m in metrics.options if m != metrics.value][0]
    at = run("inspect", {"run": str(rid), "inspect.tab": "Training", "inspect.curve_metric": other})
    assert at.selectbox(key="inspect.curve_metric").value == other and _bound(at.selectbox(key="inspect.curve_metric"))


def test_the_paper_lab_comes_back_to_its_settings(open_at):
    run, _, _ = open_at
    at = run("paper", {"paper.rows": "2000", "paper.seeds": "3", "paper.epochs": "7", "paper.corrs": ["0.9", "1.0"],
                       "paper.tab": "Census-income (sec. 6)", "paper.c_seeds": "2", "paper.c_epochs": "4"})
    assert (at.number_input(key="paper.rows").value, at.number_input(key="paper.seeds").value,
            at.number_input(key="paper.epochs").value) == (2000, 3, 7)
    assert at.multiselect(key="paper.corrs").value == [0.9, 1.0]
    assert at.session_state["paper.tab"] == "Census-income (sec. 6)"
    assert (at.number_input(key="paper.c_seeds").value, at.number_input(key="paper.c_epochs").value) == (2, 4)
    assert all(_bound(at.number_input(key=k)) for k in ("paper.rows", "paper.seeds", "paper.epochs", "paper.c_seeds",
                                                         "paper.c_epochs"))
    assert _bound(at.multiselect(key="paper.corrs")) and _bound(at.text_input(key="paper.census_path"))
