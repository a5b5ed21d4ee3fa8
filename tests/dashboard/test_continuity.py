"""Nothing lost on a refresh (AppTest): an upload is kept in the run store, content-addressed; a new
session with the page's address comes back to the same dataset, targets, features and settings; a
dataset can be deleted, saying which runs used it; "train again" refills both pages from a run."""
from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from mmoe.runs.datasets import DatasetShelf, dataset_id, runs_using
from mmoe.runs.store import RunStore
from mmoe.views.presets import run_data_choices, run_widget_values

from helpers import poll

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")
DATA_KEY = "mmoe.dataset"


def fresh(query: dict | None = None) -> AppTest:
    """A new browser session (a refresh or a new tab), opened at ``query``."""
    at = AppTest.from_file(APP, default_timeout=60)
    for k, v in (query or {}).items():
        at.query_params[k] = v
    at.run()
    assert not at.exception, at.exception
    return at


def upload(at: AppTest, name: str, data: bytes) -> None:
    n = at.session_state["data.upload_n"] if "data.upload_n" in at.session_state else 0
    at.file_uploader(key=f"data.upload.{n}").set_value((name, data, "text/csv")).run()
    assert not at.exception, at.exception



def on_the_train_page(frame, targets: list[str]) -> tuple[AppTest, str, bytes]:
    """A session that uploaded ``frame``, chose ``targets`` and went to the Model & training page."""
    data = frame.to_csv(index=False).encode()
    at = fresh()
    upload(at, "tiny.csv", data)
    key = f"dataset:{dataset_id(data)}"
    at.multiselect(key=f"data.targets.{key}").set_value(targets).run()
    at.switch_page("app_pages/train.py").run()
    return at, key, data

def test_an_upload_is_kept_once_and_a_refresh_comes_back_to_it(mmoe_home, process_manager, tiny_frame):
    data = tiny_frame.to_csv(index=False).encode()
    at = fresh()
    upload(at, "tiny.csv", data)
    ds = dataset_id(data)
    key = f"dataset:{ds}"
    assert at.radio(key="data.source").value == "Recent dataset" and at.selectbox(key="data.recent").value == ds
    assert (mmoe_home / "datasets" / ds / "data").read_bytes() == data
    upload_again = fresh()
    upload(upload_again, "same-bytes.csv", data)
    assert len(DatasetShelf(mmoe_home).list()) == 1                      # deduplicated by content
    at.multiselect(key=f"data.targets.{key}").set_value(["click", "kind"]).run()
    at.selectbox(key=f"data.kind.{key}.kind").set_value("is VALUE").run()
    at.selectbox(key=f"data.value.{key}.kind").set_value("hi").run()
    at.multiselect(key=f"data.features.{key}").set_value(["a", "color"]).run()
    at.slider(key="data.val").set_value(0.3).run()
    assert at.session_state[DATA_KEY] is not None
    assert at.query_params["dataset"] in (key, [key])
    # the Train page's settings are kept too
    at.switch_page("app_pages/train.py").run()
    at.number_input(key="train.experts").set_value(6).run()
    at.number_input(key="train.seed").set_value(42).run()

    again = fresh({"dataset": key})                                     # the refresh
    assert again.selectbox(key="data.recent").value == ds
    assert again.multiselect(key=f"data.targets.{key}").value == ["click", "kind"]
    assert again.selectbox(key=f"data.value.{key}.kind").value == "hi"
    assert again.multiselect(key=f"data.features.{key}").value == ["a", "color"]
    assert again.slider(key="data.val").value == 0.3
    cfg = again.session_state[DATA_KEY]["data_config"]
    assert [t.label() for t in cfg.tasks] == ["click:binary", "kind:binary=hi"] and cfg.val_fraction == 0.3
    again.switch_page("app_pages/train.py").run()
    assert again.number_input(key="train.experts").value == 6 and again.number_input(key="train.seed").value == 42



def test_a_refresh_of_the_train_page_comes_back_to_it(mmoe_home, process_manager, tiny_frame):
    """The Train page keeps the dataset in its address; a new session there (a refresh, a new tab) has the
    Data page prepare it with its kept choices and comes back to the Train page with its settings."""
    at, key, _ = on_the_train_page(tiny_frame, ["click", "score"])
    at.number_input(key="train.seed").set_value(42).run()
    assert at.query_params["dataset"] in (key, [key])

    again = AppTest.from_file(APP, default_timeout=60)                   # the refresh, on the Train page
    again.query_params["dataset"] = key
    again.switch_page("app_pages/train.py").run()
    assert not again.exception, again.exception
    assert again.session_state[DATA_KEY]["key"] == key
    assert [t.label() for t in again.session_state[DATA_KEY]["data_config"].tasks] == ["click:binary", "score:regression"]
    assert again.number_input(key="train.seed").value == 42                # the Train page, with its settings
    assert "then" not in again.query_params and again.query_params["dataset"] in (key, [key])
    assert not [i for i in again.info if "No dataset is ready yet" in i.value]

    for missing in ("builtin:no-such-file.csv", "dataset:0123456789abcdef"):   # gone: it stays on the Data page
        gone = AppTest.from_file(APP, default_timeout=60)
        gone.query_params["dataset"] = missing
        gone.switch_page("app_pages/train.py").run()
        assert not gone.exception, gone.exception
        assert "then" not in gone.query_params
        shown = [w.value.replace("\\", "").replace("\u2060", "") for w in gone.warning]     # (Markdown escapes)
        assert any(missing in w and "not in the run store" in w for w in shown), (missing, shown)
        assert gone.radio(key="data.source").value != "Recent dataset"     # not silently another table


def default_value_warnings(monkeypatch) -> list[str]:
    """Streamlit's 'created with a default value but also had its value set via the Session State API' (a
    widget given value= and a restored value) as they are logged; Streamlit logs it once a process."""
    from streamlit.elements.lib import policies

    warned: list[str] = []
    monkeypatch.setattr(policies, "_shown_default_value_warning", False)
    monkeypatch.setattr(policies._LOGGER, "warning", lambda msg, *a, **kw: warned.append(msg % a))
    return warned


def test_a_restored_task_weight_logs_no_warning(mmoe_home, process_manager, tiny_frame, monkeypatch):
    warned = default_value_warnings(monkeypatch)
    at, key, _ = on_the_train_page(tiny_frame, ["click", "score"])
    assert at.number_input(key="train.w.click").value == 1.0          # the task's weight by default
    at.number_input(key="train.w.click").set_value(2.5).run()
    assert not warned

    again = AppTest.from_file(APP, default_timeout=60)                   # a browser reload of the Train page
    again.query_params["dataset"] = key
    again.switch_page("app_pages/train.py").run()
    assert not again.exception, again.exception
    assert again.number_input(key="train.w.click").value == 2.5          # restored
    assert again.number_input(key="train.w.score").value == 1.0
    assert not warned, warned


def test_deleting_a_dataset_says_which_runs_used_it(mmoe_home, process_manager, tiny_frame):
    data = tiny_frame.to_csv(index=False).encode()
    at = fresh()
    upload(at, "tiny.csv", data)
    key = f"dataset:{dataset_id(data)}"
    at.multiselect(key=f"data.targets.{key}").set_value(["click"]).run()
    at.switch_page("app_pages/train.py").run()
    at.checkbox(key="train.auto_schedule").uncheck().run()
    at.number_input(key="train.epochs").set_value(1).run()
    at.button(key="train.go").click().run()
    poll(at, lambda: all(j.done for j in process_manager.jobs()), 60, jobs=process_manager.jobs())
    store = RunStore(mmoe_home)
    [run] = runs_using(store, dataset_id(data))
    at.switch_page("app_pages/data.py").run()
    assert any(f"1 stored run(s) trained on it: #{run.id}" in t.value for t in at.text)
    at.button(key=f"data.delete.{dataset_id(data)}").click().run()
    assert not at.exception
    assert DatasetShelf(mmoe_home).list() == [] and store.exists(run.id)     # the run stays


def test_train_again_refills_the_pages_with_the_run(mmoe_home, process_manager, tiny_frame, monkeypatch):
    warned = default_value_warnings(monkeypatch)
    at, key, data = on_the_train_page(tiny_frame, ["click", "score"])
    at.checkbox(key="train.auto_schedule").uncheck().run()
    at.number_input(key="train.epochs").set_value(2).run()
    at.number_input(key="train.seed").set_value(9).run()
    at.button(key="train.go").click().run()
    poll(at, lambda: all(j.done for j in process_manager.jobs()), 60, jobs=process_manager.jobs())
    store = RunStore(mmoe_home)
    [first] = store.list_runs()

    other = fresh()                    # another session, anywhere: Inspect's "train again"
    other.session_state["mmoe.inspect_run"] = first.id
    other.switch_page("app_pages/inspect.py").run()
    other.button(key="inspect.again").click().run()
    assert not other.exception, other.exception
    assert other.multiselect(key=f"data.targets.{key}").value == ["click", "score"]
    other.switch_page("app_pages/train.py").run()
    assert other.number_input(key="train.seed").value == 9 and other.number_input(key="train.epochs").value == 2
    other.button(key="train.go").click().run()
    poll(other, lambda: all(j.done for j in process_manager.jobs()), 60, jobs=process_manager.jobs())
    second = store.list_runs()[0]
    assert second.id != first.id
    assert second.final_metrics == first.final_metrics                  # the same run again
    assert second.train_config == first.train_config and second.model_config == first.model_config
    assert not warned


def test_run_choices_and_widget_values_from_a_record(mmoe_home, tiny_frame):
    from mmoe.config import DataConfig, ModelConfig, TaskSpec, TrainConfig
    from mmoe.runs.runner import DataSource, run_training

    store = RunStore(mmoe_home)
    dc = DataConfig(tasks=(TaskSpec("click", "binary", positive="yes", weight=2.0), TaskSpec("score", "regression")),
                    features=("a", "color"), val_fraction=0.25, seed=3)
    s = run_training(DataSource(tiny_frame, dc), ModelConfig(num_experts=3, top_k=2, gate_hidden=(8,)),
                     TrainConfig(epochs=1, lr=0.01, seed=5), store=store)
    rec = store.get_run(s.run_id)
    c = run_data_choices(rec)
    assert c["targets"] == ["click", "score"] and c["kinds"] == {"click": "is VALUE", "score": "regression"}
    assert c["values"] == {"click": "yes"} and c["features"] == ["a", "color"] and (c["val"], c["seed"]) == (0.25, 3)
    v = run_widget_values(rec)
    assert (v["experts"], v["sparse"], v["top_k"], v["gate"], v["gate_hidden"]) == (3, True, 2, "MLP", "8")
    assert (v["auto_schedule"], v["epochs"], v["batch_size"], v["seed"], v["w.click"]) == (False, 1, 16, 5, 2.0)
