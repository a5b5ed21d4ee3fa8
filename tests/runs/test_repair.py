"""``runs --repair`` (mmoe.runs.repair): the index rebuilt from the run folders, losing no run, moving
no folder; a damaged index kept beside it; older folders recovered from their model files."""
from __future__ import annotations

import dataclasses
import json
import os
import sqlite3

import pandas as pd
import pytest
from test_faults import MC, TASKS, _drop_index, snapshot

from mmoe.config import DataConfig, TrainConfig
from mmoe.runs.experiments import grid_experiment, run_experiment
from mmoe.runs.repair import FROM_FILES_ONLY, repair_store
from mmoe.runs.runner import DataSource, load_run, run_training
from mmoe.runs.store import RunStore, StoreError


def _records(store: RunStore) -> dict[int, dict]:
    return {r.id: dataclasses.asdict(r) for r in store.list_runs()}


@pytest.fixture
def store_with_runs(tmp_path, tiny_frame):
    """Two plain runs (one renamed, one cancelled after an epoch) and an experiment of two runs."""
    home = tmp_path / "store"
    store = RunStore(home)
    data = DataSource(tiny_frame, DataConfig(tasks=TASKS))
    run_training(data, MC, TrainConfig(epochs=2, batch_size=32), store=store, name="plain")
    import threading

    from mmoe.training import Callback
    cancel = threading.Event()

    class CancelInEpoch2(Callback):
        def on_batch_end(self, state):
            if state.epoch == 2:
                cancel.set()

    s = run_training(data, MC, TrainConfig(epochs=5, batch_size=32), store=store, callbacks=[CancelInEpoch2()],
                     cancel_event=cancel)
    assert s.status == "cancelled" and s.epochs == 1
    store.rename(1, "plain, renamed")
    exp = grid_experiment(data, MC, TrainConfig(epochs=1, batch_size=32), [("arch", ["mmoe", "omoe"])], [0],
                          name="exp", dataset="tiny")
    run_experiment(exp, store)
    before = {"runs": _records(store), "history": {r.id: store.history(r.id) for r in store.list_runs()},
              "experiments": [dataclasses.asdict(e) for e in store.list_experiments()],
              "frame": store.runs_frame()}
    store.close()
    return home, before


def _same_as(home, before) -> RunStore:
    store = RunStore(home)
    assert _records(store) == before["runs"]
    for run_id, h in before["history"].items():
        pd.testing.assert_frame_equal(store.history(run_id), h, check_exact=True)
    assert [dataclasses.asdict(e) for e in store.list_experiments()] == before["experiments"]
    pd.testing.assert_frame_equal(store.runs_frame(), before["frame"])
    return store


def test_a_deleted_index_comes_back_with_every_run_metric_history_and_experiment(store_with_runs):
    home, before = store_with_runs
    folders = snapshot(home, ("runs.sqlite", "runs.sqlite-wal", "runs.sqlite-shm"))
    _drop_index(home)
    with pytest.raises(StoreError, match="runs --repair"):
        RunStore(home)
    report = repair_store(home)
    assert report.rebuilt and report.why == "it was missing" and report.moved_aside == []
    assert report.restored == sorted(before["runs"]) and report.from_files == [] and report.unrecoverable == []
    assert report.experiments == [1]
    store = _same_as(home, before)
    assert store.load_model_state(2)[0]                      # artifacts where they were
    after = snapshot(home, ("runs.sqlite", "runs.sqlite-wal", "runs.sqlite-shm"))
    assert {k for k in folders if not k.endswith("run.json")} <= set(after)   # nothing moved or removed
    assert store.create_run(None, dataset="d", data_config={}, model_config={}, train_config={}) == 5
    assert "restored from their run.json: 1, 2, 3, 4" in "\n".join(report.lines())


def test_a_damaged_index_is_moved_aside_only_by_repair(store_with_runs):
    home, before = store_with_runs
    _drop_index(home)
    garbage = os.urandom(5000)
    (home / "runs.sqlite").write_bytes(garbage)
    with pytest.raises(StoreError, match="damaged"):
        RunStore(home)
    assert (home / "runs.sqlite").read_bytes() == garbage      # refusing moved nothing
    report = repair_store(home)
    assert report.rebuilt and "damaged" in report.why
    [aside] = report.moved_aside
    assert aside.name.startswith("runs.sqlite.corrupt-") and aside.read_bytes() == garbage
    assert any(str(aside) in line for line in report.lines())
    _same_as(home, before)


def test_an_emptied_index_is_rebuilt(store_with_runs):
    home, before = store_with_runs
    _drop_index(home)
    (home / "runs.sqlite").write_bytes(b"")
    report = repair_store(home)
    assert report.why == "it was empty" and report.moved_aside == []
    _same_as(home, before)


def test_a_healthy_index_is_completed_not_rebuilt(store_with_runs):
    """A folder the index does not list (its row lost) is added; the listed runs are left as they are."""
    home, before = store_with_runs
    con = sqlite3.connect(home / "runs.sqlite")
    con.execute("DELETE FROM metrics WHERE run_id = 2")
    con.execute("DELETE FROM runs WHERE id = 2")
    con.commit()
    con.close()
    report = repair_store(home)
    assert not report.rebuilt and report.restored == [2] and report.listed == 3
    _same_as(home, before)
    again = repair_store(home)
    assert not again.changed and again.lines()[0].startswith("nothing to repair")


def test_older_folders_come_back_from_their_model_files_and_others_are_listed(tmp_path, tiny_frame):
    """Runs from before run.json: recovered from model.json / preprocessor.json (usable for predictions);
    a folder with nothing to go on is listed as not recoverable and left exactly as it is."""
    home = tmp_path / "store"
    store = RunStore(home)
    s = run_training(DataSource(tiny_frame, DataConfig(tasks=TASKS)), MC, TrainConfig(epochs=1, batch_size=32),
                     store=store)
    store.close()
    (home / str(s.run_id) / "run.json").unlink()
    (home / "5").mkdir()
    (home / "5" / "notes.txt").write_text("not a run")
    junk = snapshot(home / "5")
    _drop_index(home)
    report = repair_store(home)
    assert report.from_files == [s.run_id] and report.restored == []
    assert [f for f, _ in report.unrecoverable] == [5] and snapshot(home / "5") == junk
    rec = RunStore(home).get_run(s.run_id)
    assert rec.status == "finished" and rec.arch == "mmoe" and rec.tasks == ["click", "score"]
    assert rec.stop_reason == FROM_FILES_ONLY
    assert load_run(RunStore(home), s.run_id)                 # still scores new data
    assert RunStore(home).create_run(None, dataset="d", data_config={}, model_config={}, train_config={}) == 6


def test_a_run_that_was_running_comes_back_interrupted_with_its_epochs(tmp_path):
    """The index lost while a run's process was dying: run.json says running; repair brings it back,
    and as its process is gone it is interrupted, with the epochs of its history."""
    home = tmp_path / "store"
    store = RunStore(home)
    rid = store.create_run(None, dataset="d", data_config={}, model_config={}, train_config={}, status="running")
    for e in (1, 2):
        store.log_epoch(rid, e, {"val": {"t": {"loss": 1.0 / e}}})
    store.write_run_file(rid)
    saved = json.loads((home / str(rid) / "run.json").read_text())
    saved["run"]["owner_pid"] = 2 ** 22 + 7      # a process that does not exist
    (home / str(rid) / "run.json").write_text(json.dumps(saved))
    store.close()
    _drop_index(home)
    repair_store(home)
    rec = RunStore(home).get_run(rid)
    assert rec.status == "interrupted" and rec.epochs == 2 and len(RunStore(home).history(rid)) == 2
