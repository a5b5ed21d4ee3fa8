"""Model & training page: Train queues a background run that ends up in the store; Cancel; compare x3."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from mmoe.config import DataConfig, TaskSpec
from mmoe.data import prepare
from mmoe.runs.store import RunStore

from helpers import chart, figure, poll

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")
DATA_KEY = "mmoe.dataset"
TRAIN = "app_pages/train.py"


@pytest.fixture
def dataset(tiny_frame):
    config = DataConfig(tasks=(TaskSpec("click", "binary"), TaskSpec("score", "regression")))
    return {"name": "tiny", "key": "test:tiny", "frame": tiny_frame, "data_config": config,
            "prepared": prepare(tiny_frame, config)}


@pytest.fixture
def at(mmoe_home, dataset, process_manager):
    app = AppTest.from_file(APP, default_timeout=60)
    app.run()
    app.session_state[DATA_KEY] = dataset
    app.switch_page(TRAIN).run()
    assert not app.exception, app.exception
    app.checkbox(key="train.auto_schedule").uncheck().run()   # the tests set epochs and batch themselves
    return app


def wait_all_done(at: AppTest, manager, timeout: float = 60.0) -> None:
    def all_jobs_done() -> bool:
        return all(j.done for j in manager.jobs())
    poll(at, all_jobs_done, timeout, jobs=manager.jobs())


def test_without_a_dataset_the_page_points_to_the_data_page(mmoe_home, process_manager):
    app = AppTest.from_file(APP, default_timeout=60)
    app.run()
    app.switch_page(TRAIN).run()
    assert not app.exception
    assert any("Data page" in i.value for i in app.info)


def test_settings_show_the_parameter_count_and_presets_fill_them(at):
    count = lambda: int(at.metric[0].value.replace(",", ""))  # noqa: E731
    quick = count()
    assert quick > 0
    at.selectbox(key="train.preset").set_value("Sparse top-2").run()
    assert not at.exception
    assert at.checkbox(key="train.sparse").value is True and at.number_input(key="train.top_k").value == 2
    assert at.number_input(key="train.experts").value == 8
    assert count() > quick
    # the preset's caption says when the settings no longer are that preset
    preset_caption = lambda: [c.value for c in at.caption if "changed since" in c.value]  # noqa: E731
    assert not preset_caption()
    at.number_input(key="train.experts").set_value(5).run()
    assert preset_caption() and preset_caption()[0].endswith("changed since: experts")
    at.text_input(key="train.expert_hidden").set_value("64,abc").run()
    assert not at.exception and any("expert layers" in e.value for e in at.error)
    assert at.button(key="train.go").disabled


def test_train_runs_in_the_background_and_is_stored(at, mmoe_home, process_manager):
    at.number_input(key="train.epochs").set_value(3).run()
    at.number_input(key="train.seed").set_value(7).run()
    at.text_input(key="train.name").set_value("my run").run()
    at.button(key="train.go").click().run()
    assert not at.exception
    jobs = process_manager.jobs()
    assert len(jobs) == 1
    wait_all_done(at, process_manager)
    p = jobs[0].snapshot()
    assert p.status == "finished", (p.error, p.message)
    store = RunStore(mmoe_home)
    run = store.get_run(p.run_id)
    assert (run.status, run.name, run.epochs, run.dataset) == ("finished", "my run", 3, "tiny")
    assert (run.train_config["epochs"], run.train_config["seed"]) == (3, 7)      # the settings on screen
    # the card's header is plain text (a run name is never Markdown) and says why the run stopped
    assert any(t.value.startswith(f"my run · job {p.job_id} · run {p.run_id} · finished") for t in at.text)
    assert any(c.value == "Why it stopped: all 3 epochs done" for c in at.caption)
    table = at.dataframe[-1].value   # stored runs
    assert table["id"].tolist() == [p.run_id]
    # the job card's curve and metrics are the run's stored history
    hist = store.history(p.run_id)
    store.close()
    traces = {t["name"]: t for t in figure(chart(at, f"train.curve.{p.job_id}"))["data"]}
    assert set(traces) == {"click · training", "click · validation", "score · training", "score · validation"}
    for task in ("click", "score"):
        for split, name in (("train", "training"), ("val", "validation")):
            want = hist[(hist.task == task) & (hist.split == split) & (hist.metric == "loss")].sort_values("epoch")
            t = traces[f"{task} · {name}"]
            assert list(t["x"]) == [1, 2, 3] == want["epoch"].tolist()
            np.testing.assert_allclose(np.asarray(t["y"], float), want["value"].to_numpy(), rtol=1e-6)
    assert any(m.value == "**Metrics after epoch 3**" for m in at.markdown)
    rows = at.dataframe[0].value     # "Metrics after epoch 3": a row per (task, metric), a column per split
    formats = json.loads(at.dataframe[0].proto.columns)
    assert all(formats[c]["type_config"]["format"] == "%.4f" for c in ("training", "validation"))  # one format
    assert list(rows.columns) == ["task", "metric", "training", "validation"]
    assert {("click", "auc"), ("score", "rmse"), ("score", "r2")} <= set(zip(rows["task"], rows["metric"]))
    assert not {("click", "rmse"), ("score", "auc")} & set(zip(rows["task"], rows["metric"]))   # its kind's only
    assert rows.loc[rows["metric"] != "loss", "training"].isna().all()          # training logs only its loss
    last = hist[hist.epoch == 3].set_index(["split", "task", "metric"])["value"]
    for r in rows.to_dict("records"):
        for split, column in (("train", "training"), ("val", "validation")):
            if not np.isnan(r[column]):
                assert r[column] == pytest.approx(last[(split, r["task"], r["metric"])], abs=5e-5), (r, split)
    assert all(d.proto.placeholder == "—" for d in at.dataframe)   # shown as "—", not "None"


def test_cancel_stops_a_running_job(at, mmoe_home, process_manager):
    at.number_input(key="train.epochs").set_value(5000).run()
    at.number_input(key="train.batch_size").set_value(8).run()
    at.button(key="train.go").click().run()
    job = process_manager.jobs()[0]

    def an_epoch_ended() -> bool:
        return job.snapshot().run_id is not None and job.snapshot().epoch >= 1
    poll(at, an_epoch_ended, jobs=[job])
    assert not job.done
    at.button(key=f"train.cancel.{job.id}").click().run()
    assert not at.exception
    assert job.snapshot().cancel_requested
    assert job.wait(30), "the job did not stop after Cancel"
    wait_all_done(at, process_manager)
    p = job.snapshot()
    assert p.status == "cancelled"
    store = RunStore(mmoe_home)
    run = store.get_run(p.run_id)
    logged = store.history(p.run_id)["epoch"].max()
    store.close()
    # it stopped where it was, long before its 5,000 epochs, and says so
    assert run.status == "cancelled" and run.epochs < 5000 and logged < 5000
    assert any("cancel" in w.value for w in at.warning)
    assert not [b for b in at.button if b.key == f"train.cancel.{job.id}"], "no Cancel button on an ended job"


def test_one_button_queues_all_three_architectures(at, mmoe_home, process_manager):
    at.number_input(key="train.epochs").set_value(1).run()
    at.button(key="train.go3").click().run()
    assert not at.exception
    assert len(process_manager.jobs()) == 3
    wait_all_done(at, process_manager)
    runs = RunStore(mmoe_home).list_runs()
    assert sorted(r.arch for r in runs) == ["mmoe", "omoe", "shared-bottom"]
    assert {r.status for r in runs} == {"finished"}
    # the same data and settings, once per architecture
    assert len({(r.train_config["epochs"], r.train_config["seed"], r.train_config["lr"]) for r in runs}) == 1
    assert {r.model_config["arch"] for r in runs} == {"mmoe", "omoe", "shared-bottom"}


def test_a_failed_job_shows_its_reason(at, process_manager):
    def broken(ctx):
        raise RuntimeError("the GPU caught fire")
    process_manager.submit(broken, name="doomed")
    wait_all_done(at, process_manager)
    assert any("the GPU caught fire" in e.value for e in at.error)


def test_inspect_button_switches_page_with_the_run_id(at, process_manager):
    at.number_input(key="train.epochs").set_value(1).run()
    at.button(key="train.go").click().run()
    wait_all_done(at, process_manager)
    run_id = process_manager.jobs()[0].snapshot().run_id
    at.button(key="train.open_run").click().run()
    assert not at.exception
    assert at.session_state["mmoe.inspect_run"] == run_id
    assert at.query_params.get("run") in (str(run_id), [str(run_id)])


def test_repeat_with_seeds_and_a_sweep_is_one_experiment(at, mmoe_home, process_manager):
    at.number_input(key="train.epochs").set_value(2).run()
    at.number_input(key="train.seed").set_value(5).run()
    at.number_input(key="train.seeds").set_value(2).run()
    at.multiselect(key="train.sweep").set_value(["arch"]).run()
    at.text_input(key="train.sweep.arch").set_value("mmoe, shared-bottom").run()
    assert not at.exception
    go = at.button(key="train.go")
    assert go.label == "Train 4 runs (2 settings × 2 seeds)"
    assert at.button(key="train.go3").disabled
    go.click().run()
    assert not at.exception
    [job] = process_manager.jobs()
    wait_all_done(at, process_manager)
    p = job.snapshot()
    assert p.status == "finished" and p.extra["runs_done"] == 4
    store = RunStore(mmoe_home)
    [exp] = store.list_experiments()
    runs = store.experiment_runs(exp.id)
    assert exp.status == "finished" and exp.seeds == [5, 6]
    assert [(r.arch, r.train_config["seed"]) for r in runs] == [("mmoe", 5), ("shared-bottom", 5), ("mmoe", 6),
                                                                ("shared-bottom", 6)]
    assert any(t.value.startswith(f"experiment on tiny · job {job.id} · experiment {exp.id} · finished")
               for t in at.text)
    assert [b for b in at.button if b.key == f"train.exp.{job.id}"]   # one click to the results


def test_a_bad_sweep_value_says_so(at, process_manager):
    at.multiselect(key="train.sweep").set_value(["lr"]).run()
    at.text_input(key="train.sweep.lr").set_value("0.001, fast").run()
    assert not at.exception and any("float" in e.value for e in at.error)
    assert at.button(key="train.go").disabled


def test_batch_size_and_epochs_from_the_data_by_default(mmoe_home, dataset, process_manager):
    app = AppTest.from_file(APP, default_timeout=60)
    app.run()
    app.session_state[DATA_KEY] = dataset
    app.switch_page(TRAIN).run()
    n_train = len(dataset["prepared"].splits["train"])       # 160 rows: batch 16 (10 steps), 100 epochs
    assert app.checkbox(key="train.auto_schedule").value is True
    assert (app.number_input(key="train.batch_size").value, app.number_input(key="train.epochs").value) == (16, 100)
    assert app.number_input(key="train.epochs").disabled
    assert any(c.value.startswith("Chosen from the data: batch 16 and 100 epochs") and f"{n_train} training rows"
               in c.value for c in app.caption)
    # a batch that does not fit the table is warned about
    app.checkbox(key="train.auto_schedule").uncheck().run()
    app.number_input(key="train.batch_size").set_value(1024).run()
    assert any("at least the 160 training rows" in w.value for w in app.warning)
    app.checkbox(key="train.auto_schedule").check().run()
    app.button(key="train.go").click().run()
    [job] = process_manager.jobs()
    assert job.wait(120)
    run = RunStore(mmoe_home).get_run(job.snapshot().run_id)
    assert (run.train_config["batch_size"], run.train_config["epochs"]) == (16, 100)   # stored as used
