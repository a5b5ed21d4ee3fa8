"""Inspect page (AppTest): every kind of stored run opens without an exception and shows
the right charts; a sample chosen in the gate heatmap shows its details."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from mmoe.config import DataConfig, ModelConfig, TrainConfig
from mmoe.runner import run_training
from mmoe.store import RunStore

from helpers import TASKS, make_frame

PAGE = str(Path(__file__).resolve().parents[2] / "dashboard" / "app_pages" / "inspect.py")
def make_runs(home: Path) -> dict[str, int]:
    """mmoe, omoe, shared-bottom (trained 2 epochs), a failed and a diverged run (via the store)."""
    store = RunStore(home)
    df = make_frame()
    dc = DataConfig(tasks=TASKS)
    tc = TrainConfig(epochs=2, batch_size=64, device="cpu")
    ids = {}
    for arch in ("mmoe", "omoe", "shared-bottom"):
        mc = ModelConfig(arch=arch, num_experts=3, expert_hidden=(8,), tower_hidden=(4,))
        summary = run_training(df, dc, mc, tc, store=store, name=f"{arch}-run", dataset="tiny.csv")
        assert summary.status == "finished", summary.message
        ids[arch] = summary.run_id
    for status, error in (("failed", "RuntimeError: out of memory in epoch 1"),
                          ("diverged", "training diverged: the loss became NaN at epoch 2, batch 1")):
        rid = store.create_run(f"{status}-run", dataset="tiny.csv", data_config=dc.to_dict(),
                               model_config=ModelConfig(num_experts=3).to_dict(), train_config=tc.to_dict())
        store.set_status(rid, "running")
        store.log_epoch(rid, 1, {"train": {"click": {"loss": 0.7, "gate_entropy": 1.0}},
                                 "val": {"click": {"loss": 0.69, "gate_entropy": 1.0}}})
        if status == "diverged":
            store.log_epoch(rid, 2, {"train": {"click": {"loss": float("nan")}}})
        store.finish(rid, status, final_metrics={"click": {"loss": 0.69}}, epochs=1, train_seconds=0.1,
                     samples_per_second=1.0, error=error)
        ids[status] = rid
    store.close()
    return ids


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    home = tmp_path_factory.mktemp("inspect") / "runs"
    return home, make_runs(home)


@pytest.fixture
def page(runs, monkeypatch):
    home, ids = runs
    monkeypatch.setenv("MMOE_HOME", str(home))

    def open_page(run_id: int | None = None, tab: str | None = None) -> AppTest:
        at = AppTest.from_file(PAGE, default_timeout=60)
        if run_id is not None:
            at.query_params["run"] = str(run_id)
        if tab is not None:
            at.session_state["inspect.tab"] = tab
        at.run()
        assert not at.exception, at.exception
        return at
    return open_page, ids


def charts_of(at: AppTest) -> list:
    return list(at.get("plotly_chart"))


def test_defaults_to_newest_finished_run(page):
    open_page, ids = page
    at = open_page()
    assert at.title[0].value == "shared-bottom-run"       # failed/diverged runs are newer, not finished
    assert at.selectbox(key="inspect.pick").value == ids["shared-bottom"]


def test_session_state_picks_the_run(page, runs):
    _, ids = page
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.session_state["mmoe.inspect_run"] = ids["omoe"]
    at.run()
    assert not at.exception and at.title[0].value == "omoe-run"
    assert at.query_params["run"] in (str(ids["omoe"]), [str(ids["omoe"])])


def test_training_tab_of_a_finished_run(page):
    open_page, ids = page
    at = open_page(ids["mmoe"])
    assert at.title[0].value == "mmoe-run"
    assert any("finished" in m.value for m in at.markdown)
    assert any("trained in " in m.value for m in at.markdown)     # mmoe.jobview.duration_text, as everywhere
    assert at.selectbox(key="inspect.pick").format_func(ids["mmoe"]) == \
        f"#{ids['mmoe']} mmoe-run — mmoe on tiny.csv (finished)"
    assert all(d.proto.placeholder == "—" for d in at.dataframe)
    assert len(charts_of(at)) == 1                         # loss curves
    metrics = at.dataframe[0].value
    assert set(metrics.index) == {"click", "score", "kind"} and "auc" in metrics.columns
    at.selectbox(key="inspect.curve_metric").set_value("gate_entropy").run()
    assert not at.exception and len(charts_of(at)) == 1


def test_predictions_tab_has_charts_per_task_kind(page):
    open_page, ids = page
    at = open_page(ids["mmoe"], tab="Predictions")
    keys = {c.proto.id for c in charts_of(at)}
    # binary: roc, pr, calibration, histogram; regression: two; multiclass: confusion
    assert len(keys) == 7, keys
    assert [h.value for h in at.subheader] == ["click · binary", "score · regression", "kind · multiclass"]


def test_gates_tab_heatmaps_and_summaries(page):
    open_page, ids = page
    at = open_page(ids["mmoe"], tab="Gates")
    charts = charts_of(at)
    # 3 heatmaps + utilisation + entropy + similarity
    assert len(charts) == 6
    assert any("sorted by dominant expert" in c.value for c in at.caption)
    at.radio(key="inspect.sim_method").set_value("cosine").run()
    assert not at.exception


def test_choosing_a_sample_shows_its_details(page):
    open_page, ids = page
    at = open_page(ids["mmoe"], tab="Gates")
    frame = RunStore().load_frame(ids["mmoe"], "predictions.parquet")
    row = int(frame["_row"].iloc[3])
    key = f"inspect.row.{ids['mmoe']}"
    at.number_input(key=key).set_value(row).run()
    assert not at.exception, at.exception
    assert any(f"Row **{row}**" in m.value for m in at.markdown)
    tasks = at.dataframe[1].value
    assert list(tasks["task"]) == ["click", "score", "kind"]
    from mmoe.analysis import format_number
    score = tasks.set_index("task").loc["score"]
    assert score["target"] == format_number(frame["target:score"].iloc[3])
    assert score["prediction"] == format_number(frame["pred:score"].iloc[3])
    feats = at.dataframe[0].value
    assert set(feats["feature"]) >= {"a", "b", "color"}
    assert len(charts_of(at)) == 7                          # + the sample's gate bars


def click_point(at: AppTest, chart_key: str, customdata: int) -> AppTest:
    """Send the selection a browser sends when a point of a plotly chart is clicked.

    AppTest has no click for plotly charts, so this adds the chart's widget state to the
    next run by hand (AppTest._run with the tree's widget states plus this one)."""
    chart = next(c for c in at.get("plotly_chart") if chart_key in c.proto.id)
    ws = at._tree.get_widget_states()
    w = ws.widgets.add()
    w.id = chart.proto.id
    w.string_value = json.dumps({"selection": {
        "points": [{"curve_number": 1, "point_number": customdata, "point_index": customdata,
                    "x": "e1", "y": 0, "customdata": customdata}],
        "point_indices": [customdata], "box": [], "lasso": []}})
    at._run(ws)
    assert not at.exception, at.exception
    return at


def test_clicking_a_heatmap_sample_shows_its_details(page):
    open_page, ids = page
    rid = ids["mmoe"]
    at = open_page(rid, tab="Gates")
    assert not at.dataframe                                  # no sample chosen yet
    frame = RunStore().load_frame(rid, "predictions.parquet")
    at = click_point(at, f"inspect.heat.{rid}.score", customdata=5)
    row = int(frame["_row"].iloc[5])
    assert at.session_state[f"inspect.row.{rid}"] == row
    assert any(f"Row **{row}**" in m.value for m in at.markdown)
    assert list(at.dataframe[1].value["task"]) == ["click", "score", "kind"]


def test_unknown_row_number_warns(page):
    open_page, ids = page
    at = open_page(ids["mmoe"], tab="Gates")
    at.number_input(key=f"inspect.row.{ids['mmoe']}").set_value(10**6).run()
    assert not at.exception
    assert any("not among" in w.value for w in at.warning)


def test_omoe_gates(page):
    open_page, ids = page
    at = open_page(ids["omoe"], tab="Gates")
    assert len(charts_of(at)) == 6
    assert any("OMoE has one gate" in c.value for c in at.caption)


def test_shared_bottom_says_it_has_no_gates(page):
    open_page, ids = page
    at = open_page(ids["shared-bottom"], tab="Gates")
    assert not charts_of(at)
    assert any("No gates in this run" in i.value for i in at.info)


@pytest.mark.parametrize("status", ["failed", "diverged"])
def test_failed_and_diverged_runs_show_error_and_history(page, status):
    open_page, ids = page
    at = open_page(ids[status])
    assert at.error and status in at.error[0].value
    assert ("out of memory" if status == "failed" else "diverged") in at.error[0].value
    assert len(charts_of(at)) == 1                         # the history is still drawn
    for tab in ("Predictions", "Gates", "Downloads"):
        at = open_page(ids[status], tab=tab)
        assert any("no stored predictions" in i.value for i in at.info), [i.value for i in at.info]
    assert any("No saved model" in i.value for i in at.info)


def test_downloads(page):
    open_page, ids = page
    at = open_page(ids["mmoe"], tab="Downloads")
    buttons = at.get("download_button")
    assert len(buttons) == 2
    labels = " ".join(b.proto.label for b in buttons)
    assert "CSV" in labels and "zip" in labels


def test_empty_store(tmp_path, monkeypatch):
    monkeypatch.setenv("MMOE_HOME", str(tmp_path / "empty"))
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.run()
    assert not at.exception and "no stored runs" in at.info[0].value
