"""Model & training page: Train queues a background run that ends up in the store; Cancel; compare x3."""
from __future__ import annotations

import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from mmoe.config import DataConfig, TaskSpec
from mmoe.data import prepare
from mmoe.jobs import get_manager
from mmoe.store import RunStore

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")
DATA_KEY = "mmoe.dataset"
TRAIN = "app_pages/train.py"


@pytest.fixture
def dataset(tiny_frame):
    config = DataConfig(tasks=(TaskSpec("click", "binary"), TaskSpec("score", "regression")))
    return {"name": "tiny", "key": "test:tiny", "frame": tiny_frame, "data_config": config,
            "prepared": prepare(tiny_frame, config)}


@pytest.fixture
def at(mmoe_home, dataset):
    app = AppTest.from_file(APP, default_timeout=60)
    app.run()
    app.session_state[DATA_KEY] = dataset
    app.switch_page(TRAIN).run()
    assert not app.exception, app.exception
    yield app
    get_manager().shutdown(wait=True, cancel=True)


def poll(at: AppTest, until, timeout: float = 60.0) -> None:
    """run_every fragments do not fire in AppTest: rerun the page until ``until()`` holds."""
    deadline = time.monotonic() + timeout
    while not until():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.1)
        at.run()
        assert not at.exception, at.exception
    at.run()
    assert not at.exception, at.exception


def all_done() -> bool:
    return all(j.done for j in get_manager().jobs())


def test_without_a_dataset_the_page_points_to_the_data_page(mmoe_home):
    app = AppTest.from_file(APP, default_timeout=60)
    app.run()
    app.switch_page(TRAIN).run()
    assert not app.exception
    assert any("Data page" in i.value for i in app.info)
    get_manager().shutdown()


def test_settings_show_the_parameter_count_and_presets_fill_them(at):
    count = lambda: int(at.metric[0].value.replace(",", ""))  # noqa: E731
    quick = count()
    assert quick > 0
    at.selectbox(key="train.preset").set_value("Sparse top-2").run()
    assert not at.exception
    assert at.checkbox(key="train.sparse").value is True and at.number_input(key="train.top_k").value == 2
    assert at.number_input(key="train.experts").value == 8
    assert count() > quick
    at.text_input(key="train.expert_hidden").set_value("64,abc").run()
    assert not at.exception and any("expert layers" in e.value for e in at.error)
    assert at.button(key="train.go").disabled


def test_train_runs_in_the_background_and_is_stored(at, mmoe_home):
    at.number_input(key="train.epochs").set_value(3).run()
    at.text_input(key="train.name").set_value("my run").run()
    at.button(key="train.go").click().run()
    assert not at.exception
    jobs = get_manager().jobs()
    assert len(jobs) == 1
    poll(at, all_done)
    p = jobs[0].snapshot()
    assert p.status == "finished", (p.error, p.message)
    run = RunStore(mmoe_home).get_run(p.run_id)
    assert (run.status, run.name, run.epochs, run.dataset) == ("finished", "my run", 3, "tiny")
    assert at.get("plotly_chart"), "the loss curves are drawn"
    assert "finished" in at.markdown[-1].value or any("finished" in m.value for m in at.markdown)
    table = at.dataframe[-1].value   # stored runs
    assert table["id"].tolist() == [p.run_id]
    card = at.dataframe[0]           # "Metrics after epoch N": train rows hold only the loss
    rows = card.value
    assert set(rows["split"]) >= {"train", "val"} and rows.loc[rows["split"] == "train", "auc"].isna().all()
    assert all(d.proto.placeholder == "—" for d in at.dataframe)   # shown as "—", not "None"


def test_cancel_stops_a_running_job(at, mmoe_home):
    at.number_input(key="train.epochs").set_value(5000).run()
    at.number_input(key="train.batch_size").set_value(8).run()
    at.button(key="train.go").click().run()
    job = get_manager().jobs()[0]
    poll(at, lambda: job.snapshot().run_id is not None and job.snapshot().epoch >= 1)
    at.button(key=f"train.cancel.{job.id}").click().run()
    t0 = time.monotonic()
    assert job.wait(5)
    assert time.monotonic() - t0 < 2.0
    poll(at, all_done)
    assert job.snapshot().status == "cancelled"
    assert RunStore(mmoe_home).get_run(job.snapshot().run_id).status == "cancelled"
    assert any("cancel" in w.value for w in at.warning)


def test_one_button_queues_all_three_architectures(at, mmoe_home):
    at.number_input(key="train.epochs").set_value(1).run()
    at.button(key="train.go3").click().run()
    assert not at.exception
    assert len(get_manager().jobs()) == 3
    poll(at, all_done)
    runs = RunStore(mmoe_home).list_runs()
    assert sorted(r.arch for r in runs) == ["mmoe", "omoe", "shared-bottom"]
    assert {r.status for r in runs} == {"finished"}


def test_a_failed_job_shows_its_reason(at):
    def broken(ctx):
        raise RuntimeError("the GPU caught fire")
    get_manager().submit(broken, name="doomed")
    poll(at, all_done)
    assert any("the GPU caught fire" in e.value for e in at.error)


def test_inspect_button_switches_page_with_the_run_id(at):
    at.number_input(key="train.epochs").set_value(1).run()
    at.button(key="train.go").click().run()
    poll(at, all_done)
    run_id = get_manager().jobs()[0].snapshot().run_id
    at.button(key="train.open_run").click().run()
    assert not at.exception
    assert at.session_state["mmoe.inspect_run"] == run_id
    assert at.query_params.get("run") in (str(run_id), [str(run_id)])
