"""Inspect's Training tab draws the learned task weights per epoch from the stored history: GradNorm's
weights (summing to the number of tasks) and uncertainty weighting's exp(-log variance); a run with
fixed weights has no such chart. The settings show GradNorm's alpha, the pos_weight used, and where and by which
training step the run trained."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from mmoe.config import DataConfig, ModelConfig, TrainConfig
from mmoe.runs.runner import DataSource, run_training
from mmoe.runs.store import RunStore

from helpers import TASKS, chart, figure, make_frame

PAGE = str(Path(__file__).resolve().parents[2] / "dashboard" / "app_pages" / "inspect.py")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    home = tmp_path_factory.mktemp("weights") / "runs"
    store = RunStore(home)
    mc = ModelConfig(num_experts=3, expert_hidden=(8,), tower_hidden=(4,))
    ids = {}
    for how, extra in (("gradnorm", {"gradnorm_alpha": 0.5, "pos_weight": {"click": "balanced"}}),
                       ("uncertainty", {}), ("fixed", {})):
        tc = TrainConfig(epochs=3, batch_size=32, lr=1e-2, device="cpu", task_weighting=how, **extra)
        s = run_training(DataSource(make_frame(), DataConfig(tasks=TASKS)), mc, tc, store=store, name=f"{how} run",
                         dataset="tiny.csv")
        assert s.status == "finished", s.message
        ids[how] = s.run_id
    store.close()
    return home, ids


def _open(runs, monkeypatch, how) -> AppTest:
    home, ids = runs
    monkeypatch.setenv("MMOE_HOME", str(home))
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.query_params["run"] = str(ids[how])
    at.session_state["inspect.tab"] = "Training"
    at.run()
    assert not at.exception, at.exception
    return at


def _stored(runs, how, metric):
    home, ids = runs
    store = RunStore(home)
    h = store.history(ids[how])
    store.close()
    return h[(h.metric == metric) & (h.split == "train")]


def _traces(at):
    fig = figure(chart(at, "inspect.task_weights"))
    assert "learned task weights per epoch" in fig["layout"]["title"]["text"]
    return fig, {t["name"]: t for t in fig["data"] if t.get("name") in {t.column for t in TASKS}}


def test_gradnorm_weights_are_drawn_as_stored(runs, monkeypatch):
    at = _open(runs, monkeypatch, "gradnorm")
    fig, traces = _traces(at)
    assert "GradNorm" in fig["layout"]["title"]["text"]
    stored = _stored(runs, "gradnorm", "task_weight")
    assert set(traces) == {t.column for t in TASKS}
    for task, t in traces.items():
        want = stored[stored.task == task].sort_values("epoch")
        assert list(t["x"]) == want["epoch"].tolist() == [1, 2, 3]
        np.testing.assert_allclose(np.asarray(t["y"], float), want["value"].to_numpy(), rtol=1e-9)
    by_epoch = np.sum([np.asarray(t["y"], float) for t in traces.values()], axis=0)
    np.testing.assert_allclose(by_epoch, len(TASKS), atol=1e-5)
    text = "\n".join(m.value for m in at.markdown)
    assert "gradnorm (alpha 0.5)" in text
    assert "pos_weight click: " in text and "(balanced: negatives / positives of the training split)" in text


def test_uncertainty_weights_are_exp_of_minus_the_log_variance(runs, monkeypatch):
    at = _open(runs, monkeypatch, "uncertainty")
    fig, traces = _traces(at)
    assert "uncertainty weighting" in fig["layout"]["title"]["text"]
    stored = _stored(runs, "uncertainty", "uncertainty_log_var")
    for task, t in traces.items():
        want = stored[stored.task == task].sort_values("epoch")["value"].to_numpy()
        np.testing.assert_allclose(np.asarray(t["y"], float), [math.exp(-v) for v in want], rtol=1e-9)


def test_fixed_weights_draw_no_weight_chart(runs, monkeypatch):
    at = _open(runs, monkeypatch, "fixed")
    assert not [c for c in at.get("plotly_chart") if c.proto.id.endswith("inspect.task_weights")]
    assert [c for c in at.get("plotly_chart") if c.proto.id.endswith("inspect.curves")]


@pytest.mark.parametrize("how,step", [("fixed", "fused training step"),
                                      ("gradnorm", "autograd training step (the fused step does not cover gradnorm "
                                                   "task weighting (per-task gradient norms")])
def test_settings_say_where_and_by_which_step_the_run_trained(runs, monkeypatch, how, step):
    at = _open(runs, monkeypatch, how)
    text = "\n".join(m.value for m in at.markdown).replace("\\", "")     # (markdown escapes dropped)
    assert f"device cpu · {step}" in text
