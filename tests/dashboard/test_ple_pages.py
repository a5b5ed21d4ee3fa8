"""CGC / PLE in the dashboard (AppTest): the Model & training page offers them with their three numbers
(only where they apply) and the command panel carries the flags; Inspect's Gates tab labels the shared
and each task's experts and draws, per task, the stored weights of the experts its gate sees."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from mmoe.config import DataConfig, ModelConfig, TrainConfig
from mmoe.runs.runner import DataSource, run_training
from mmoe.runs.store import RunStore

from helpers import APP, TASKS, as_typed, chart, figure, make_frame, open_train_page

INSPECT = str(Path(__file__).resolve().parents[2] / "dashboard" / "app_pages" / "inspect.py")


@pytest.fixture
def at(mmoe_home, tiny_frame, process_manager):
    return open_train_page(tiny_frame)


def _keys(at) -> set[str]:
    return {w.key for w in at.number_input}


def _commands(at) -> str:
    return " ".join(c.value for c in at.code)


def test_the_model_page_offers_cgc_and_ple_with_their_numbers(at):
    assert {"train.shared_experts", "train.task_experts", "train.levels"}.isdisjoint(_keys(at))
    at.radio(key="train.arch").set_value("ple").run()
    assert not at.exception
    keys = _keys(at)
    assert {"train.shared_experts", "train.task_experts", "train.levels"} <= keys and "train.experts" not in keys
    assert at.checkbox(key="train.sparse").disabled                       # dense gates only
    at.number_input(key="train.shared_experts").set_value(3).run()
    at.number_input(key="train.task_experts").set_value(1).run()
    at.number_input(key="train.levels").set_value(3).run()
    assert not at.exception and not at.error
    cmd = _commands(at)
    assert all(f in cmd for f in ("--arch ple", "--shared-experts 3", "--task-experts 1", "--levels 3"))
    assert "--experts " not in cmd                                       # not used by PLE
    at.radio(key="train.arch").set_value("cgc").run()
    keys = _keys(at)
    assert {"train.shared_experts", "train.task_experts"} <= keys and "train.levels" not in keys
    cmd = _commands(at)
    assert all(f in cmd for f in ("--arch cgc", "--shared-experts 3", "--task-experts 1")) and "--levels" not in cmd
    at.radio(key="train.arch").set_value("mmoe").run()
    assert "train.experts" in _keys(at) and "train.shared_experts" not in _keys(at)
    assert "--shared-experts" not in _commands(at)


def test_a_ple_run_trained_from_the_page_is_stored_with_its_settings(at, mmoe_home, process_manager):
    at.checkbox(key="train.auto_schedule").uncheck().run()
    at.number_input(key="train.epochs").set_value(2).run()
    at.radio(key="train.arch").set_value("ple").run()
    at.number_input(key="train.shared_experts").set_value(2).run()
    at.button(key="train.go").click().run()
    assert not at.exception
    job = process_manager.jobs()[0]
    assert job.wait(60)
    snap = job.snapshot()
    assert snap.status == "finished", (snap.error, snap.message)
    run = RunStore(mmoe_home).get_run(snap.run_id)
    assert run.arch == "ple" and run.model_config["shared_experts"] == 2
    assert run.model_config["levels"] is None and run.model_config["num_experts"] == 8   # the CLI's defaults


@pytest.fixture(scope="module")
def ple_run(tmp_path_factory):
    home = tmp_path_factory.mktemp("inspect_ple") / "runs"
    store = RunStore(home)
    mc = ModelConfig(arch="ple", shared_experts=2, task_experts=1, expert_hidden=(8,), tower_hidden=(4,))
    summary = run_training(DataSource(make_frame(), DataConfig(tasks=TASKS)), mc,
                           TrainConfig(epochs=2, batch_size=64, device="cpu", seed=0), store=store, name="ple-run",
                           dataset="tiny.csv")
    assert summary.status == "finished", summary.message
    frame = store.load_frame(summary.run_id, "predictions.parquet")
    store.close()
    return home, summary.run_id, frame[frame["_split"] == "val"].reset_index(drop=True)


def test_inspect_gates_mark_shared_and_task_experts(ple_run, monkeypatch):
    home, rid, frame = ple_run
    monkeypatch.setenv("MMOE_HOME", str(home))
    at = AppTest.from_file(INSPECT, default_timeout=60)
    at.query_params["run"] = str(rid)
    at.session_state["inspect.tab"] = "Gates"
    at.run()
    assert not at.exception, at.exception
    shown = [as_typed(c.value) for c in at.caption if c.value.startswith("s0")]   # plain text (task names)
    assert "s0–s1: shared experts, seen by every task's gate; click:t0: click's own experts; score:t0: " \
           "score's own experts; kind:t0: kind's own experts. A task's gate gives the other tasks' experts " \
           "weight 0, so its panel shows only the experts it sees." in shown
    owners = {"click": 2, "score": 3, "kind": 4}                    # 2 shared, then one own expert per task
    for task, own in owners.items():
        c = chart(at, f"inspect.heat.{rid}.{task}")
        fig = figure(c)
        heat, targets = fig["data"][:2]
        assert list(heat["x"]) == ["s0", "s1", f"{task}:t0"]
        pos = np.asarray(targets["customdata"]).reshape(-1, 3)[:, 0]
        stored = frame[[f"gate:{task}:e{j}" for j in (0, 1, own)]].to_numpy(float)
        np.testing.assert_allclose(np.asarray(heat["z"], float), stored[pos], rtol=1e-6)
        others = [j for j in (2, 3, 4) if j != own]
        assert (frame[[f"gate:{task}:e{j}" for j in others]].to_numpy() == 0).all()
        assert [a["text"] for a in fig["layout"]["annotations"]] == ["shared", f"{task}'s own"]
    bars = [t for t in figure(chart(at, "inspect.util"))["data"] if t["type"] == "bar"]
    assert [list(b["x"]) for b in bars] == [["s0", "s1", f"{t}:t0"] for t in owners]
    ent = figure(chart(at, "inspect.entropy"))
    assert any("ln(3)" in (t.get("name") or "") for t in ent["data"])   # 3 experts per gate, not 5


def test_compare_draws_a_ple_runs_gates_with_its_layout(ple_run, monkeypatch):
    """Compare labels a PLE run's experts as Inspect does and draws, per task, only the experts its gate sees;
    its Architecture line in Inspect names levels, shared and per-task experts (not the unused --experts)."""
    home, rid, frame = ple_run
    monkeypatch.setenv("MMOE_HOME", str(home))
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.session_state["mmoe.compare_runs"] = [rid]
    at.switch_page("app_pages/compare.py").run()
    assert not at.exception, at.exception
    heat = figure(chart(at, f"compare.heat.{rid}"))["data"][0]
    assert list(heat["x"]) == ["s0", "s1", "click:t0"]                 # the first task's view
    z = np.asarray(heat["z"], float)
    np.testing.assert_allclose(z.sum(1), 1.0, rtol=1e-5)              # the experts it sees carry all weight
    bars = [t for t in figure(chart(at, f"compare.util.{rid}"))["data"] if t["type"] == "bar"]
    assert [list(b["x"]) for b in bars][0] == ["s0", "s1", "click:t0"]
    ins = AppTest.from_file(INSPECT, default_timeout=60)
    ins.query_params["run"] = str(rid)
    ins.run()
    assert any("PLE · 2 levels of 2 shared + 1 experts per task" in m.value for m in ins.markdown)
