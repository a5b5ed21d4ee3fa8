"""Compare page (AppTest) beyond one store of like runs: an empty store, a task trained as two kinds
(never ranked across kinds), run and task names shown as plain text, an experiment's runs together."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from mmoe.config import DataConfig, ModelConfig, TaskSpec, TrainConfig
from mmoe.runs.store import RunStore

from helpers import COMPARE_PAGE, chart, curve_key, figure, headers, highlighted, select_rows, table, w

PAGE = COMPARE_PAGE


def test_empty_store(tmp_path, monkeypatch):
    monkeypatch.setenv("MMOE_HOME", str(tmp_path / "empty"))
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.run()
    assert not at.exception and "no stored runs" in at.info[0].value


# ----------------------------------------------------------------------------- tasks of different kinds

QUALITY_REG = {"rmse": 0.9, "mae": 0.7, "r2": 0.5, "loss": 0.30, "gate_entropy": 1.0}
QUALITY_MULTI = {"accuracy": 0.6, "macro_f1": 0.5, "logloss": 0.20, "loss": 0.20, "gate_entropy": 1.3}


def make_mixed_runs(home: Path) -> dict[str, int]:
    """quality: regression in two runs, multiclass in one (whose log loss, 0.20, is below both
    regression losses); click: positive class "yes" in two runs, "no" in one."""
    store = RunStore(home)
    specs = [("reg-a", "regression", "yes", QUALITY_REG, 0.80),
             ("multi", "multiclass", "yes", QUALITY_MULTI, 0.85),
             ("reg-b", "regression", "no", {**QUALITY_REG, "rmse": 0.8, "loss": 0.25, "gate_entropy": 0.4}, 0.95)]
    ids = {}
    for name, kind, pos, quality, auc in specs:
        dc = DataConfig(tasks=(TaskSpec("quality", kind), TaskSpec("click", "binary", positive=pos)))
        rid = store.create_run(name, dataset="wine.csv", data_config=dc.to_dict(), model_config=ModelConfig().to_dict(),
                               train_config=TrainConfig().to_dict())
        store.set_status(rid, "running")
        click = {"auc": auc, "logloss": 0.5, "accuracy": 0.7, "loss": 0.5, "gate_entropy": 0.9}
        for epoch in (1, 2):
            store.log_epoch(rid, epoch, {split: {"quality": {"loss": quality["loss"] * (3 - epoch)},
                                                 "click": {"loss": 0.5 * (3 - epoch)}} for split in ("train", "val")})
        store.finish(rid, "finished", final_metrics={"quality": quality, "click": click}, epochs=2, train_seconds=1.0,
                     samples_per_second=1.0)
        ids[name] = rid
    store.close()
    return ids


@pytest.fixture
def mixed(tmp_path, monkeypatch):
    home = tmp_path / "runs"
    ids = make_mixed_runs(home)
    monkeypatch.setenv("MMOE_HOME", str(home))
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    return select_rows(at, list(ids.values())), ids


def test_a_task_of_two_kinds_is_never_ranked_across_kinds(mixed):
    """The regression and the multiclass runs of one column get separate columns, charts and rankings,
    and a note says why (before, one "quality · loss" column held an MSE next to a log loss)."""
    at, ids = mixed
    reg, multi = "quality (regression)", "quality (multiclass)"
    a, b, c = (f"#{ids[n]} {n}" for n in ("reg-a", "multi", "reg-b"))
    # the runs table: one column per kind, a run's value only in its own
    t = table(at).set_index("name")
    assert f"{reg} · rmse" in t and f"{multi} · accuracy" in t and not [x for x in t if x.startswith("quality ·")]
    assert pd.isna(t.at["multi", f"{reg} · rmse"]) and pd.isna(t.at["reg-a", f"{multi} · accuracy"])
    # the main metrics table: one primary metric per task and kind, with its direction
    main = at.dataframe[1]
    assert list(main.value.columns) == [f"{reg} · rmse", f"{multi} · accuracy", "click (binary=no) · auc",
                                        "click (binary=yes) · auc"]
    assert headers(main)[f"{reg} · rmse"] == f"{reg} · rmse ↓" and headers(main)[f"{multi} · accuracy"].endswith("↑")
    # ranked within a kind only; a column held by one run has no "best"
    assert highlighted(main) == {(c, f"{reg} · rmse"), (b, "click (binary=yes) · auc")}
    full = at.dataframe[2]
    loss = f"{reg} · loss (MSE, standardised target)"
    assert full.value[loss].notna().tolist() == [True, False, True] and f"{multi} · logloss" in full.value
    assert (c, loss) in highlighted(full) and not {x for x in highlighted(full) if x[0] == b and "quality" in x[1]}
    assert not {x for x in highlighted(full) if x[1].endswith("gate_entropy")}
    # the note, as plain text
    notes = [x.value for x in at.text]
    assert (f"quality is a regression task in runs #{ids['reg-a']}, #{ids['reg-b']} and a multiclass task in run "
            f"#{ids['multi']}: their losses and metrics are different quantities, so they are shown apart.") in notes
    assert any(n.startswith("click is a binary task with positive class “no”") for n in notes)
    # separate curve charts, each with the loss it really is on its y-axis
    fig_reg, fig_multi = figure(chart(at, curve_key(reg))), figure(chart(at, curve_key(multi)))
    assert {t["name"] for t in fig_reg["data"]} == {a, c} and {t["name"] for t in fig_multi["data"]} == {b}
    assert fig_reg["layout"]["yaxis"]["title"]["text"] == "MSE (standardised target)"
    assert fig_multi["layout"]["yaxis"]["title"]["text"].startswith("log loss")


def test_run_and_task_names_are_plain_text(tmp_path, monkeypatch):
    home = tmp_path / "runs"
    store = RunStore(home)
    for name in ("<b>bold</b>", "*star*"):      # a name is shown as typed: not bold, not italic
        dc = DataConfig(tasks=(TaskSpec("<i>q</i>", "regression"),))
        rid = store.create_run(name, dataset="d.csv", data_config=dc.to_dict(), model_config=ModelConfig().to_dict(),
                               train_config=TrainConfig().to_dict())
        store.set_status(rid, "running")
        store.log_epoch(rid, 1, {"val": {"<i>q</i>": {"loss": 0.5}}})
        store.finish(rid, "finished", final_metrics={"<i>q</i>": {"rmse": 1.0 + rid}}, epochs=1, train_seconds=1.0,
                     samples_per_second=1.0)
    store.close()
    monkeypatch.setenv("MMOE_HOME", str(home))
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.run()
    at = select_rows(at, list(table(at)["id"]))
    fig = figure(chart(at, curve_key("<i>q</i> (regression)")))
    assert "&lt;i&gt;q&lt;/i&gt;" in fig["layout"]["title"]["text"]
    assert {t["name"] for t in fig["data"]} == {"#1 &lt;b&gt;bold&lt;/b&gt;", "#2 *star*"}
    swatches = " ".join(m.value for m in at.markdown if "■" in m.value)
    # the swatch is an HTML block (so its height can be fixed), where Markdown is not read: names are HTML-escaped
    assert "<b>#1 &lt;b&gt;bold&lt;/b&gt;</b>" in swatches and "<b>bold" not in swatches
    assert "<b>#2 *star*</b>" in swatches and "\\*" not in swatches      # no italics, and no stray backslashes


# ----------------------------------------------------------------------------- experiments

def test_an_experiments_runs_are_picked_and_shown_together(tmp_path, monkeypatch):
    home = tmp_path / "runs"
    store = RunStore(home)
    if not hasattr(store, "create_experiment"):
        pytest.skip("this run store keeps no experiments")
    exp = store.create_experiment("lr-sweep", kind="grid", dataset="d.csv", spec={})
    dc = DataConfig(tasks=(TaskSpec("q", "regression"),)).to_dict()
    ids = []
    for i, e in enumerate((exp, None, exp)):
        rid = store.create_run(f"r{i}", dataset="d.csv", data_config=dc, model_config=ModelConfig().to_dict(),
                               train_config=TrainConfig().to_dict(), experiment_id=e)
        store.set_status(rid, "running")
        store.finish(rid, "finished", final_metrics={"q": {"rmse": 1.0 + i}}, epochs=1, train_seconds=1.0,
                     samples_per_second=1.0)
        ids.append(rid)
    store.close()
    monkeypatch.setenv("MMOE_HOME", str(home))
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    t = table(at).set_index("id")
    label = f"#{exp} lr-sweep"
    assert t.at[ids[0], "experiment"] == label == t.at[ids[2], "experiment"] and pd.isna(t.at[ids[1], "experiment"])
    box = at.selectbox(key="compare.add_experiment")
    assert box.options == [f"{label} (2 runs)"]
    box.set_value(exp).run()
    assert not at.exception, at.exception
    assert sorted(at.session_state["mmoe.compare_runs"]) == [ids[0], ids[2]]
    assert at.selectbox(key="compare.add_experiment").value is None             # ready for the next one
    at.run()                                       # the table ticked them too: they stay selected
    assert sorted(at.session_state["mmoe.compare_runs"]) == [ids[0], ids[2]]
    at.multiselect(key=w(at, "compare.pick")).set_value(ids).run()
    m = at.dataframe[1].value
    # the experiment's runs are labelled and next to each other, the other run after them
    assert list(m.index) == [f"#{ids[2]} r2", f"#{ids[0]} r0", f"#{ids[1]} r1"]
    assert m["experiment"].tolist()[:2] == [label, label] and pd.isna(m["experiment"].iloc[2])
    at.run()                                       # the table's ticks agree: the selection holds
    assert sorted(at.session_state["mmoe.compare_runs"]) == sorted(ids)
