"""Model & training page, loss weighting: GradNorm with its alpha and a class weight per binary task
reach the stored run and the shell commands the page shows."""
from __future__ import annotations

import pytest

from mmoe.runs.store import RunStore

from helpers import open_train_page, poll


@pytest.fixture
def at(mmoe_home, tiny_frame, process_manager):
    app = open_train_page(tiny_frame)
    app.checkbox(key="train.auto_schedule").uncheck().run()
    app.number_input(key="train.epochs").set_value(2).run()
    return app


def _codes(at) -> str:
    return "\n".join(c.value for c in at.code)


def test_gradnorm_and_a_balanced_class_weight_are_trained_and_stored(at, mmoe_home, process_manager):
    assert [s.label for s in at.selectbox if s.key == "train.pw.click"] == ["class weight of click"]
    assert not [s for s in at.selectbox if s.key == "train.pw.score"]     # regression: no class weight
    assert "few positives" in at.selectbox(key="train.pw.click").help
    at.radio(key="train.weighting").set_value("gradnorm").run()
    assert at.number_input(key="train.gradnorm_alpha").value == 1.5
    at.number_input(key="train.gradnorm_alpha").set_value(0.5).run()
    at.selectbox(key="train.pw.click").set_value("balanced").run()
    assert not at.exception, at.exception
    assert "--task-weighting gradnorm --gradnorm-alpha 0.5" in _codes(at)
    assert "--pos-weight click=balanced" in _codes(at)
    at.button(key="train.go").click().run()
    jobs = process_manager.jobs()
    poll(at, lambda: all(j.done for j in jobs), 60, jobs=jobs)
    p = jobs[0].snapshot()
    assert p.status == "finished", (p.error, p.message)
    store = RunStore(mmoe_home)
    run = store.get_run(p.run_id)
    assert run.train_config["task_weighting"] == "gradnorm" and run.train_config["gradnorm_alpha"] == 0.5
    assert run.train_config["pos_weight"] == {"click": "balanced"}
    assert run.data_summary["pos_weight"]["click"] > 0
    h = store.history(p.run_id)
    assert set(h[h.metric == "task_weight"]["task"]) == {"click", "score"}
    store.close()


def test_a_number_class_weight_and_back_to_none(at):
    at.selectbox(key="train.pw.click").set_value("number").run()
    at.number_input(key="train.pw.click.value").set_value(4.0).run()
    assert not at.exception and "--pos-weight click=4" in _codes(at)
    at.selectbox(key="train.pw.click").set_value("none").run()
    assert "--pos-weight" not in _codes(at)
    at.radio(key="train.weighting").set_value("uncertainty").run()
    assert "--task-weighting uncertainty" in _codes(at) and "--gradnorm-alpha" not in _codes(at)
