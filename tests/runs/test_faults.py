"""Faults end cleanly: a damaged, emptied, missing or read-only index, leftover run folders, damaged
artifacts, stale temporary files and runs whose process died. Each refusal is one StoreError that says
what, where and how to fix it, and changes nothing on disk."""
from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mmoe.config import DataConfig, ModelConfig, TaskSpec, TrainConfig
from mmoe.runs.errors import ArtifactError, IndexFault
from mmoe.runs.runner import DataSource, load_run, run_training
from mmoe.runs.store import RunStore, StoreError

TASKS = (TaskSpec("click", "binary", positive="yes"), TaskSpec("score", "regression"))
MC = ModelConfig(num_experts=2, expert_hidden=(8,), tower_hidden=(4,))


SQLITE_SIDE_FILES = ("runs.sqlite-wal", "runs.sqlite-shm")


def snapshot(root: Path, ignore: tuple[str, ...] = ()) -> dict[str, str]:
    """Every file under ``root`` (relative path -> sha256) and every folder: what 'unchanged' means."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if rel in ignore:
            continue
        out[rel] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "<dir>"
    return out


def _train(store: RunStore, tiny_frame, epochs: int = 2, name: str | None = None) -> int:
    s = run_training(DataSource(tiny_frame, DataConfig(tasks=TASKS)), MC, TrainConfig(epochs=epochs, batch_size=32),
                     store=store, name=name)
    assert s.status == "finished"
    return s.run_id


@pytest.fixture
def trained(tmp_path, tiny_frame) -> tuple[Path, list[int]]:
    """A store with two finished runs, its connections closed."""
    home = tmp_path / "store"
    store = RunStore(home)
    ids = [_train(store, tiny_frame, name="first"), _train(store, tiny_frame, epochs=1)]
    store.close()
    return home, ids


def _drop_index(home: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        (home / f"runs.sqlite{suffix}").unlink(missing_ok=True)


def test_a_damaged_index_is_refused_and_left_as_it_is(trained):
    home, _ = trained
    _drop_index(home)
    (home / "runs.sqlite").write_bytes(os.urandom(8192))
    before = snapshot(home)
    with pytest.raises(StoreError) as err:
        RunStore(home)
    assert isinstance(err.value, IndexFault) and err.value.kind == "corrupt"
    msg = str(err.value)
    assert "damaged" in msg and "file is not a database" in msg and str(home / "runs.sqlite") in msg
    assert f"python -m mmoe runs --repair --store {home}" in msg and "\n" not in msg
    assert snapshot(home) == before


def test_damaged_pages_are_refused_too(trained):
    """A valid header but garbage inside (a torn disk write): 'malformed', also a StoreError."""
    home, _ = trained
    con = sqlite3.connect(home / "runs.sqlite")
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.execute("PRAGMA journal_mode = DELETE")
    con.close()
    data = bytearray((home / "runs.sqlite").read_bytes())
    page = 4096
    data[page:] = os.urandom(len(data) - page)
    (home / "runs.sqlite").write_bytes(bytes(data))
    before = snapshot(home)
    with pytest.raises(StoreError, match="damaged|malformed|not a database"):
        RunStore(home).list_runs()
    assert snapshot(home) == before


@pytest.mark.parametrize("state", ["emptied", "missing"])
def test_a_lost_index_beside_run_folders_is_not_replaced_silently(trained, state):
    home, ids = trained
    _drop_index(home)
    if state == "emptied":
        (home / "runs.sqlite").write_bytes(b"")
    before = snapshot(home)
    with pytest.raises(StoreError) as err:
        RunStore(home)
    msg = str(err.value)
    assert err.value.kind == "missing" and f"{len(ids)} run folders exist" in msg
    assert ("empty (0 bytes)" if state == "emptied" else "is missing") in msg
    assert "runs --repair" in msg
    assert snapshot(home) == before                     # no new index, no folder moved


def test_an_empty_index_without_run_folders_starts_a_store(tmp_path):
    home = tmp_path / "fresh"
    home.mkdir()
    (home / "runs.sqlite").write_bytes(b"")
    store = RunStore(home)
    assert store.list_runs() == []
    store.create_run(None, dataset="d", data_config={}, model_config={}, train_config={})


def test_a_leftover_run_folder_is_never_moved(tmp_path):
    """A folder the index does not list (an older store, a copied-in run) keeps its place and its files;
    new runs get ids above every folder."""
    home = tmp_path / "store"
    store = RunStore(home)
    first = store.create_run(None, dataset="d", data_config={}, model_config={}, train_config={})
    (home / "7").mkdir()
    (home / "7" / "model.json").write_text('{"mine": true}')
    before = snapshot(home / "7")
    second = store.create_run(None, dataset="d", data_config={}, model_config={}, train_config={})
    assert (first, second) == (1, 8)
    assert snapshot(home / "7") == before and not (home / "_orphaned").exists()
    assert RunStore(home).create_run(None, dataset="d", data_config={}, model_config={}, train_config={}) == 9


def test_a_read_only_store_reads_and_refuses_writes(trained, tiny_frame):
    """Forced read-only on a folder it could write: reads work, writes are refused before any work, and
    nothing is written (SQLite's shared-memory side files of a WAL reader aside)."""
    home, ids = trained
    before = snapshot(home, SQLITE_SIDE_FILES)
    store = RunStore(home, read_only=True)
    assert store.read_only and [r.id for r in store.list_runs()] == ids[::-1]
    assert len(store.history(ids[0])) and store.load_model_state(ids[0])[0]
    model, pre = load_run(store, ids[0])
    for write in (lambda: store.create_run(None, dataset="d", data_config={}, model_config={}, train_config={}),
                  lambda: store.rename(ids[0], "new"), lambda: store.delete(ids[0]),
                  lambda: store.save_text(ids[0], "note.txt", "x"),
                  lambda: run_training(DataSource(tiny_frame, DataConfig(tasks=TASKS)), MC, TrainConfig(epochs=1),
                                       store=store)):
        with pytest.raises(StoreError, match="is read-only") as err:
            write()
        assert err.value.kind == "readonly" and "chmod u+w" in str(err.value)
    store.close()
    assert snapshot(home, SQLITE_SIDE_FILES) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes read-only files anyway (the CLI test uses a "
                                              "read-only mount for root)")
def test_a_store_this_process_may_not_write_opens_read_only(trained):
    home, ids = trained
    store = RunStore(home)
    store.close()
    mode = home.stat().st_mode
    try:
        for p in [home, *home.iterdir()]:
            p.chmod(p.stat().st_mode & ~0o222)
        before = snapshot(home)
        ro = RunStore(home)
        assert ro.read_only and [r.id for r in ro.list_runs()] == ids[::-1]
        ro.close()
        assert snapshot(home) == before
    finally:
        for p in [home, *home.iterdir()]:
            p.chmod(p.stat().st_mode | 0o200)
        home.chmod(mode)


def test_stale_temporary_files_are_removed_when_the_store_opens(trained):
    home, ids = trained
    old, fresh = home / str(ids[0]) / ".model.pt.0123abcd.tmp", home / str(ids[0]) / ".run.json.89abcdef.tmp"
    half_deleted = home / ".deleted-9-0a1b2c3d"
    half_deleted.mkdir()
    shelf = home / "datasets" / "0123456789abcdef" / ".data.0a0b0c0d.tmp"     # an upload killed half-way
    shelf.parent.mkdir(parents=True)
    shelf.write_bytes(b"half an upload")
    (half_deleted / "model.pt").write_bytes(b"x")
    for p in (old, fresh):
        p.write_bytes(b"half a save")
    an_hour_ago = time.time() - 3700
    for p in (old, half_deleted / "model.pt", half_deleted, shelf):
        os.utime(p, (an_hour_ago, an_hour_ago))
    mine = home / str(ids[0]) / "notes.tmp"        # not a name a save uses: kept whatever its age
    mine.write_text("mine")
    os.utime(mine, (an_hour_ago, an_hour_ago))
    store = RunStore(home)
    assert sorted(store.removed_leftovers) == sorted([old, half_deleted, shelf])
    assert not old.exists() and not half_deleted.exists() and not shelf.exists()
    assert fresh.exists() and mine.exists()          # a save may still be writing a fresh one
    assert store.load_model_state(ids[0])[0]


def test_an_interrupted_run_has_the_epochs_its_history_holds(tmp_path):
    """A process logs three epochs and dies: the next opener marks the run interrupted with 3 epochs."""
    home = tmp_path / "store"
    code = ("import sys; from mmoe.runs.store import RunStore\n"
            "s = RunStore(sys.argv[1]); r = s.create_run(None, dataset='d', data_config={}, model_config={},"
            " train_config={}, status='running')\n"
            "for e in (1, 2, 3): s.log_epoch(r, e, {'val': {'t': {'loss': 1.0 / e}}})\n"
            "import os; os._exit(0)\n")
    subprocess.run([sys.executable, "-c", code, str(home)], check=True, timeout=120)
    rec = RunStore(home).get_run(1)
    assert rec.status == "interrupted" and rec.epochs == 3 and "ended" in rec.stop_reason
    saved = json.loads((home / "1" / "run.json").read_text())
    assert saved["run"]["status"] == "interrupted" and saved["run"]["epochs"] == 3


def _corrupt(path: Path, how: str) -> None:
    if how == "garbage":
        path.write_bytes(os.urandom(300))
    elif how == "truncated":
        path.write_bytes(path.read_bytes()[: max(1, path.stat().st_size // 2)])
    else:
        path.write_bytes(b"")


@pytest.mark.parametrize("name", ["model.pt", "model.json", "preprocessor.json"])
@pytest.mark.parametrize("how", ["garbage", "truncated", "emptied"])
def test_a_damaged_model_file_fails_only_loading_with_one_line_naming_it(trained, name, how):
    home, ids = trained
    store = RunStore(home)
    _corrupt(store.artifact_dir(ids[0]) / name, how)
    with pytest.raises(ArtifactError) as err:
        load_run(store, ids[0])
    msg = str(err.value)
    assert name in msg and str(store.artifact_dir(ids[0])) in msg and "\n" not in msg and len(msg) < 500
    assert load_run(store, ids[1])               # the other run is untouched
    assert store.get_run(ids[0]).status == "finished" and len(store.history(ids[0]))


def test_model_json_of_another_model_is_named(trained):
    home, ids = trained
    store = RunStore(home)
    (store.artifact_dir(ids[0]) / "model.json").write_text(json.dumps({"model_config": {"arch": "mmoe"}}))
    with pytest.raises(ArtifactError, match="model.json"):
        load_run(store, ids[0])
    (store.artifact_dir(ids[0]) / "model.json").write_text((store.artifact_dir(ids[1]) / "model.json").read_text())
    other = dict(torch_state(store, ids[0]))
    other.pop(next(iter(other)))
    import torch
    torch.save(other, store.artifact_dir(ids[0]) / "model.pt")
    with pytest.raises(ArtifactError, match="model.pt"):
        load_run(store, ids[0])


def torch_state(store: RunStore, run_id: int) -> dict:
    return store.load_model_state(run_id)[0]


@pytest.mark.parametrize("how", ["garbage", "truncated", "emptied"])
def test_damaged_predictions_raise_one_line(trained, how):
    home, ids = trained
    store = RunStore(home)
    _corrupt(store.artifact_dir(ids[0]) / "predictions.parquet", how)
    with pytest.raises(ArtifactError, match="predictions.parquet") as err:
        store.load_frame(ids[0], "predictions.parquet")
    assert "\n" not in str(err.value)
    assert len(store.load_frame(ids[1], "predictions.parquet"))


def test_every_run_folder_describes_its_run(trained):
    """run.json: the record and the history, rewritten when the run ends and when it is renamed."""
    home, ids = trained
    store = RunStore(home)
    saved = json.loads((home / str(ids[0]) / "run.json").read_text())
    rec = store.get_run(ids[0])
    assert saved["format"] == 1 and saved["run"]["id"] == ids[0] and saved["run"]["status"] == "finished"
    assert saved["run"]["final_metrics"] == rec.final_metrics and saved["run"]["epochs"] == rec.epochs == 2
    assert saved["run"]["model_config"] == rec.model_config and saved["run"]["name"] == "first"
    h = store.history(ids[0])
    assert len(saved["history"]) == len(h) and {e for e, *_ in saved["history"]} == {1, 2}
    store.rename(ids[0], "renamed")
    assert json.loads((home / str(ids[0]) / "run.json").read_text())["run"]["name"] == "renamed"
