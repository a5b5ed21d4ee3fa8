"""Experiments and Paper lab pages (AppTest): intervals and paired differences as stored, the chart
with bands, mean curves, member runs, deleting; the Paper lab's estimate and its Start button."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from mmoe.runs.experiments import summarize
from mmoe.runs.store import RunStore

from helpers import chart, figure, tiny_experiment

PAGES = Path(__file__).resolve().parents[2] / "dashboard" / "app_pages"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    home = tmp_path_factory.mktemp("experiments") / "runs"
    store = RunStore(home)
    exp_id = tiny_experiment(store, [("lr", [0.001, 0.01])], (0, 1, 2), "lr sweep", epochs=3)
    store.close()
    return home, exp_id


@pytest.fixture
def open_page(built, tmp_path, monkeypatch):
    src, exp_id = built
    home = tmp_path / "runs"
    shutil.copytree(src, home)
    monkeypatch.setenv("MMOE_HOME", str(home))

    def run(name: str = "experiments") -> AppTest:
        at = AppTest.from_file(str(PAGES / f"{name}.py"), default_timeout=90)
        at.run()
        assert not at.exception, at.exception
        return at

    return run, RunStore(home), exp_id


def test_the_page_shows_the_stored_intervals_and_differences(open_page):
    run, store, exp_id = open_page
    at = run()
    s = summarize(store, exp_id)
    table = at.dataframe[0].value
    assert list(table["lr"]) == [0.001, 0.01] and list(table["finished runs"]) == ["3 of 3", "3 of 3"]
    stat = s["configs"][1]["metrics"]["click"]["auc"]
    assert table["click · auc ↑"].iloc[1] == f"{stat['mean']:.4f} [{stat['ci95'][0]:.4f}, {stat['ci95'][1]:.4f}]"
    # the sweep chart: the mean per lr, with its interval as the band's edges
    fig = figure(chart(at, "exp.sweep"))
    line = [t for t in fig["data"] if t.get("mode") == "lines+markers"][0]
    assert list(line["y"]) == pytest.approx([c["metrics"]["click"]["auc"]["mean"] for c in s["configs"]])
    band = [t for t in fig["data"] if t.get("fill") == "toself"][0]
    assert max(band["y"]) == pytest.approx(max(c["metrics"]["click"]["auc"]["ci95"][1] for c in s["configs"]))
    # the paired differences, in words, one per task
    diffs = at.dataframe[1].value
    assert set(diffs["task"]) == {"click", "score", "kind"}
    d = next(x for x in s["differences"] if x["task"] == "click")
    assert diffs.set_index("task").at["click", "what it says"] == d["verdict"]
    assert any("95% interval" in m.value for m in at.info) or any("outside noise" in m.value for m in at.success)
    # mean curves: one per setting
    curves = figure(chart(at, "exp.curves"))
    assert {t["name"] for t in curves["data"] if t.get("fill") != "toself"} == {"lr=0.001", "lr=0.01"}
    # the member runs, each with why it stopped
    members = at.dataframe[2].value
    assert sorted(members["run"]) == sorted(s["runs"]) and set(members["why it stopped"]) == {"all 3 epochs done"}
    assert not at.warning        # 3 seeds: no warning that the intervals say nothing


def _widths(table) -> dict:
    return {k: v.get("width") for k, v in json.loads(table.proto.columns).items()}


def test_text_columns_fit_their_values_and_metrics_share_one_format(open_page):
    run, store, exp_id = open_page
    at = run()
    # paired differences: "compared" and "what it says" as wide as their longest value (a cell does not wrap)
    diffs, widths = at.dataframe[1].value, _widths(at.dataframe[1])
    for col in ("compared", "what it says"):
        longest = max(len(v) for v in diffs[col])
        assert isinstance(widths[col], int) and widths[col] >= 8 * longest, (col, widths[col], longest)
    # member runs: every metric column with 4 decimals (not 0.615 next to 0.8672), text columns sized
    members, config = at.dataframe[2].value, json.loads(at.dataframe[2].proto.columns)
    metrics = [c for c in members if " · " in c]
    assert metrics and all(config[c]["type_config"].get("format") == "%.4f" for c in metrics)
    assert isinstance(config["why it stopped"].get("width"), int)
    # the words say how a run is opened: Streamlit selects a row by its box, a click on a cell does not
    head = next(m.value for m in at.markdown if "Member runs" in m.value)
    assert "tick the box" in head and "click a row" not in head


def test_choosing_another_metric_redraws(open_page):
    run, store, exp_id = open_page
    at = run()
    at.selectbox(key="exp.task").set_value("score").run()
    assert at.selectbox(key="exp.metric.score").value == "rmse"      # the primary metric first
    assert "gate_entropy" not in at.selectbox(key="exp.metric.score").options
    at.selectbox(key="exp.metric.score").set_value("r2").run()
    assert not at.exception
    assert "R²" in figure(chart(at, "exp.sweep"))["layout"]["yaxis"]["title"]["text"]
    # the paired differences follow the chosen metric for that task, the other tasks keep their primary one
    diffs = at.dataframe[1].value.set_index("task")
    assert diffs.at["score", "metric"] == "r2 ↑" and diffs.at["click", "metric"] == "auc ↑"
    s = summarize(store, exp_id)
    r2 = [c["metrics"]["score"]["r2"]["values"] for c in s["configs"]]          # lr=0.01 minus lr=0.001, per seed
    paired = [b - a for a, b in zip(*r2)]
    shown = figure(chart(at, "exp.diffs"))["data"][0]
    assert shown["x"] == pytest.approx([sum(paired) / len(paired)])
    assert "difference in r2" in figure(chart(at, "exp.diffs"))["layout"]["xaxis"]["title"]["text"]
    # another task keeps the metric being read where it has it (r2 is a regression metric: click falls back)
    at.selectbox(key="exp.task").set_value("click").run()
    assert at.selectbox(key="exp.metric.click").value == "auc"
    at.selectbox(key="exp.metric.click").set_value("logloss").run()
    at.selectbox(key="exp.task").set_value("kind").run()
    assert at.selectbox(key="exp.metric.kind").value == "logloss"


def test_the_experiment_box_says_what_kind_each_is(open_page):
    run, store, exp_id = open_page
    repeat = tiny_experiment(store, [], (0, 1), "repeat", epochs=1)          # seeds only: nothing swept
    options = run().selectbox(key="exp.pick").options                       # (as shown: the formatted labels)
    assert f"#{repeat} repeat · seeds" in options and f"#{exp_id} lr sweep · grid" in options, options


def test_deleting_the_experiment_removes_its_runs(open_page):
    run, store, exp_id = open_page
    at = run()
    at.checkbox(key=f"exp.sure.{exp_id}").check().run()
    at.button(key=f"exp.delete.{exp_id}").click().run()
    assert not at.exception
    assert store.list_experiments() == [] and store.list_runs() == []
    assert any("No experiments yet" in m.value for m in at.info)


def _estimate(at) -> str:
    return next(m.value for m in at.info if "runs**" in m.value)


def test_paper_lab_estimates_then_starts_the_chosen_architectures(open_page, process_manager):
    run, store, _ = open_page
    at = run("paper")
    # all five by default, as `python -m mmoe paper`, and the words say what will run
    assert at.multiselect(key="paper.archs").value == ["mmoe", "omoe", "shared-bottom", "cgc", "ple"]
    at.number_input(key="paper.rows").set_value(300)
    at.number_input(key="paper.seeds").set_value(1)
    at.number_input(key="paper.epochs").set_value(1).run()
    assert "**15 runs**" in _estimate(at) and "measured just now" in _estimate(at)   # 5 architectures x 3 correlations
    at.multiselect(key="paper.archs").set_value(["mmoe", "omoe", "shared-bottom"]).run()
    words = next(m.value for m in at.markdown if "Two regression tasks" in m.value)
    assert "Shared-Bottom" in words and "CGC" not in words and "PLE" not in words
    assert "**9 runs**" in _estimate(at)
    # fewer architectures: fewer runs, shown and started
    at.multiselect(key="paper.archs").set_value(["mmoe", "omoe"]).run()
    assert "**6 runs**" in _estimate(at)
    words = next(m.value for m in at.markdown if "Two regression tasks" in m.value)
    assert "OMoE" in words and "Shared-Bottom" not in words
    at.button(key="paper.start.synth").click().run()
    assert not at.exception
    assert any("Experiment started" in m.value for m in at.success)
    job = process_manager.jobs()[0]
    assert job.wait(120) and job.snapshot().status == "finished"
    newest = store.list_experiments()[0]
    runs = store.experiment_runs(newest.id)
    assert newest.kind == "paper" and len(runs) == 6
    assert {r.model_config["arch"] for r in runs} == {"mmoe", "omoe"}


def test_paper_lab_can_add_cgc_and_ple_and_needs_one_architecture(open_page):
    run, _, _ = open_page
    at = run("paper")
    at.number_input(key="paper.rows").set_value(300)
    at.number_input(key="paper.seeds").set_value(1)
    at.number_input(key="paper.epochs").set_value(1)
    at.multiselect(key="paper.archs").set_value(["ple", "cgc"]).run()
    assert "**6 runs**" in _estimate(at)
    assert "CGC" in next(m.value for m in at.markdown if "Two regression tasks" in m.value)
    at.multiselect(key="paper.archs").set_value(["omoe", "ple"]).run()       # each described on its own
    words = next(m.value for m in at.markdown if "Two regression tasks" in m.value)
    assert "OMoE: 8 experts of 16 units" in words and "PLE: two levels of" in words and "such" not in words
    at.multiselect(key="paper.archs").set_value([]).run()
    assert not at.exception and any("at least one architecture" in w.value for w in at.warning)
    assert not [b for b in at.button if b.key == "paper.start.synth"]


def test_paper_lab_census_runs_the_chosen_architectures(open_page, process_manager):
    run, store, _ = open_page
    at = run("paper")
    at.number_input(key="paper.c_seeds").set_value(1)
    at.number_input(key="paper.c_epochs").set_value(1)
    at.multiselect(key="paper.c_archs").set_value(["shared-bottom", "mmoe"]).run()
    assert not at.exception
    words = next(m.value for m in at.markdown if "Income above 50K" in m.value)
    assert "MMoE, Shared-Bottom at matched sizes" in words
    assert any("**2 runs**" in m.value for m in at.info)
    at.button(key="paper.start.census").click().run()
    job = process_manager.jobs()[0]
    assert job.wait(180) and job.snapshot().status == "finished"
    newest = store.list_experiments()[0]
    assert newest.kind == "census" and [r.model_config["arch"] for r in store.experiment_runs(newest.id)] == [
        "mmoe", "shared-bottom"]
    at.multiselect(key="paper.c_archs").set_value([]).run()
    assert any("at least one architecture" in w.value for w in at.warning)
