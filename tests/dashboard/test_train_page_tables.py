"""Model & training page (AppTest): what a browser review found cut or oddly formatted: the stored runs table
(names and reasons in full, one number format per metric), the start button's label, rates shown plainly."""
from __future__ import annotations

import json

from mmoe.runs.store import RunStore

from helpers import open_train_page


def store_run(store: RunStore, name: str, metrics: dict, reason: str) -> int:
    rid = store.create_run(name, dataset="customers.csv",
                           data_config={"tasks": [{"column": "churned", "kind": "binary"},
                                                  {"column": "plan", "kind": "multiclass"}]},
                           model_config={"arch": "mmoe"}, train_config={})
    store.set_status(rid, "running")
    store.finish(rid, "finished", final_metrics=metrics, epochs=30, train_seconds=3.6, samples_per_second=1.0,
                 stop_reason=reason)
    return rid


def test_stored_runs_show_names_and_reasons_in_full_and_metrics_alike(mmoe_home, process_manager, tiny_frame):
    store = RunStore(mmoe_home)
    long_name, reason = "exp 1 · base settings · seed 2", "all 30 epochs done (no early stopping)"
    store_run(store, "mmoe-4x", {"churned": {"auc": 0.8597}, "plan": {"accuracy": 0.5962}}, "all 5 epochs done")
    store_run(store, long_name, {"churned": {"auc": 0.8683}, "plan": {"accuracy": 0.62}}, reason)
    store.close()
    at = open_train_page(tiny_frame)
    [table] = [d for d in at.dataframe if "why it stopped" in d.value.columns]
    assert long_name in table.value["name"].tolist()
    config = json.loads(table.proto.columns)
    for column, text in (("name", long_name), ("why it stopped", reason)):
        width = config[column]["width"]       # wide enough for the longest value (a cell does not wrap)
        assert isinstance(width, int) and width >= 7 * len(text), (column, config[column])
    for column in ("churned:auc", "plan:accuracy"):       # 0.6200 under 0.5962, not 0.62
        assert config[column]["type_config"]["format"] == "%.4f", config[column]


def test_the_start_button_says_how_many_runs_start(mmoe_home, process_manager, tiny_frame):
    at = open_train_page(tiny_frame)
    assert at.button(key="train.go").label == "Train"
    at.number_input(key="train.seeds").set_value(3).run()
    assert not at.exception
    assert at.button(key="train.go").label == "Train 3 runs (1 setting × 3 seeds)"


def test_learning_rate_and_weight_decay_are_shown_plainly(mmoe_home, process_manager, tiny_frame):
    at = open_train_page(tiny_frame)
    for key in ("train.lr", "train.weight_decay"):
        fmt = at.number_input(key=key).proto.format       # printf-style, drawn by sprintf.js in the browser
        assert (fmt % 0.0, fmt % 1e-4, fmt % 0.001, fmt % 0.003) == ("0", "0.0001", "0.001", "0.003"), (key, fmt)


def test_the_run_to_open_follows_new_runs_unless_one_was_chosen(mmoe_home, process_manager, tiny_frame):
    store = RunStore(mmoe_home)
    first = store_run(store, "a", {"churned": {"auc": 0.8}}, "done")
    second = store_run(store, "b", {"churned": {"auc": 0.8}}, "done")
    at = open_train_page(tiny_frame)
    assert at.selectbox(key="train.pick_run").value == second
    third = store_run(store, "c", {"churned": {"auc": 0.8}}, "done")            # a run finishes meanwhile
    at.run()
    assert at.selectbox(key="train.pick_run").value == third                   # not the stale #2
    at.selectbox(key="train.pick_run").set_value(first).run()                   # the user's choice ...
    store_run(store, "d", {"churned": {"auc": 0.8}}, "done")
    at.run()
    assert at.selectbox(key="train.pick_run").value == first                   # ... stays
    store.close()
