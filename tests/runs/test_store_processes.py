"""RunStore across processes: ownership, interrupted runs, concurrency.

Tested with real processes: CLI trainings (``python -m mmoe train``) and small helper processes that use
the public RunStore API, killed with SIGKILL where a test needs an owner that died. A fresh
``RunStore(home)`` is what a new CLI or dashboard process sees.
"""
from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import threading

import pandas as pd
import pytest

from mmoe.cli import main as cli_main
from mmoe.runs.store import RunStore, StoreError, pid_alive

from store_helpers import PROC_TIMEOUT, _kill, _new, _owned_ids, _owner, _train_cmd, _wait_until


def test_interrupted_dead_owner_only(tmp_path):
    """Runs of a process that died are interrupted; runs of a live process, of this process and
    finished runs are left alone. Owners are real processes, the dead one killed with SIGKILL."""
    home = tmp_path / "store"
    dead = _owner(home, tmp_path / "dead.ids", "running", "queued", "finished")
    live = _owner(home, tmp_path / "live.ids", "running")
    try:
        r_dead_running, r_dead_queued, r_done = _owned_ids(tmp_path / "dead.ids", dead)
        (r_live,) = _owned_ids(tmp_path / "live.ids", live)
        store = RunStore(home)
        r_mine = _new(store, status="running")
        assert {r.id: r.status for r in store.list_runs()} == {
            r_dead_running: "running", r_dead_queued: "queued", r_done: "finished", r_live: "running",
            r_mine: "running"}

        dead.kill()
        # wait until it has exited but leave it unreaped: a zombie is a dead owner too
        _wait_until(lambda: os.waitid(os.P_PID, dead.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT),
                    f"killed process {dead.pid} to exit", timeout=30)
        reopened = RunStore(home)
        status = {r.id: r.status for r in reopened.list_runs()}
        assert status == {r_dead_running: "interrupted", r_dead_queued: "interrupted",
                          r_live: "running", r_mine: "running", r_done: "finished"}
        assert str(dead.pid) in reopened.get_run(r_dead_running).error
        assert reopened.get_run(r_dead_running).finished_at is not None
        assert reopened.get_run(r_done).error is None
        with pytest.raises(StoreError, match=f"running in process {live.pid}"):
            reopened.delete(r_live)
        with pytest.raises(StoreError, match="running in this process"):
            reopened.delete(r_mine)
        reopened.delete(r_dead_running)  # a dead run can go
        assert not reopened.exists(r_dead_running)
    finally:
        _kill(dead)
        _kill(live)
    assert RunStore(home).get_run(r_live).status == "interrupted"



def test_killed_cli_training_is_interrupted_and_keeps_its_epochs(tmp_path, tiny_frame, capsys):
    """kill -9 a real CLI training mid-run: while it lives every other process sees it running; once
    it is dead a new process (CLI or dashboard) sees it interrupted, with the epochs it logged."""
    csv = tmp_path / "big.csv"
    tiny_frame.sample(3000, replace=True, random_state=0).to_csv(csv, index=False)
    home = tmp_path / "store"
    with open(tmp_path / "stderr.txt", "w") as err:
        # ~40 ms an epoch: it would train for many minutes; killed once it has logged two epochs
        proc = subprocess.Popen(_train_cmd(csv, home, epochs=20_000, batch_size=64),
                                stdout=subprocess.DEVNULL, stderr=err)
    try:
        def two_epochs_logged():
            store = RunStore(home)   # a new observer each time, like a dashboard refresh
            try:
                runs = store.list_runs()
                if not runs:
                    return None
                (rec,) = runs
                assert rec.status in ("queued", "running"), f"live training reported {rec.status}: {rec.error}"
                h = store.history(rec.id)
                return (rec, h) if rec.status == "running" and h["epoch"].nunique() >= 2 else None
            finally:
                store.close()

        rec, before = _wait_until(two_epochs_logged, "the training to log two epochs", proc=proc)
        assert rec.owner_pid == proc.pid
        # a live owner keeps its run: not interrupted, not deletable
        live = RunStore(home)
        assert live.mark_interrupted_runs() == [] and live.get_run(rec.id).status == "running"
        with pytest.raises(StoreError, match=f"running in process {proc.pid}"):
            live.delete(rec.id)
        live.close()
        assert cli_main(["runs", "--json", "--store", str(home)]) == 0
        assert [r["status"] for r in json.loads(capsys.readouterr().out.splitlines()[-1])] == ["running"]

        proc.kill()
        proc.wait(timeout=PROC_TIMEOUT)
    finally:
        _kill(proc)
    assert proc.returncode == -9

    # the first process to look after the death: a new CLI
    out = subprocess.run([sys.executable, "-m", "mmoe", "runs", "--json", "--store", str(home)],
                         capture_output=True, text=True, timeout=PROC_TIMEOUT, check=False)
    assert out.returncode == 0, out.stderr
    listed = json.loads(out.stdout.splitlines()[-1])
    assert [(r["run_id"], r["status"]) for r in listed] == [(rec.id, "interrupted")]
    assert str(proc.pid) in listed[0]["error"]

    fresh = RunStore(home)
    got = fresh.get_run(rec.id)
    assert got.status == "interrupted" and got.finished_at is not None and str(proc.pid) in got.error
    h = fresh.history(rec.id)
    epochs = sorted(h["epoch"].unique())
    assert epochs == list(range(1, len(epochs) + 1)) and len(epochs) >= before["epoch"].nunique()
    assert h.groupby("epoch").size().nunique() == 1          # every logged epoch is whole
    kept = h[h["epoch"] <= before["epoch"].max()].reset_index(drop=True)
    pd.testing.assert_frame_equal(kept, before)              # what was seen before the kill is kept
    assert fresh.has_artifact(rec.id, "preprocessor.json")
    with pytest.raises(StoreError, match="ended as interrupted before saving it"):
        fresh.load_model_state(rec.id)
    fresh.delete(rec.id)   # a dead run can be removed
    with pytest.raises(StoreError, match="does not exist"):
        fresh.history(rec.id)
    assert not fresh.artifact_dir(rec.id).exists()



def test_three_cli_trainings_at_once_lose_nothing(tmp_path, tiny_frame):
    """Three processes train into one store at the same time: every run, epoch and artifact is kept."""
    epochs = 40
    csv = tmp_path / "small.csv"
    tiny_frame.sample(300, replace=True, random_state=1).to_csv(csv, index=False)
    home = tmp_path / "store"
    procs = [subprocess.Popen(_train_cmd(csv, home, epochs=epochs, batch_size=256, name=f"writer-{i}"),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(3)]
    try:
        outs = [p.communicate(timeout=PROC_TIMEOUT) for p in procs]
    finally:
        for p in procs:
            _kill(p)
    for p, (stdout, stderr) in zip(procs, outs):
        assert p.returncode == 0, stderr
    summaries = [json.loads(stdout.splitlines()[-1]) for stdout, _ in outs]
    ids = [s["run_id"] for s in summaries]
    assert len(set(ids)) == 3 and all(s["status"] == "finished" for s in summaries)

    store = RunStore(home)
    runs = {r.id: r for r in store.list_runs()}
    assert sorted(runs) == sorted(ids)
    assert sorted(r.name for r in runs.values()) == ["writer-0", "writer-1", "writer-2"]
    for rid in ids:
        rec = runs[rid]
        assert (rec.status, rec.epochs) == ("finished", epochs)
        h = store.history(rid)
        assert sorted(h["epoch"].unique()) == list(range(1, epochs + 1))
        cells = h.groupby(["split", "task"])["epoch"].nunique()
        assert set(cells.index) == {(s, t) for s in ("train", "val") for t in ("click", "score")}
        assert (cells == epochs).all()
        per_epoch = h.groupby(["split", "task", "metric"]).size()
        assert (per_epoch == epochs).all()                         # no row of any epoch lost
        last = h[(h["epoch"] == epochs) & (h["split"] == "val") & (h["task"] == "click")]
        assert rec.final_metrics["click"]["auc"] == pytest.approx(
            last.loc[last["metric"] == "auc", "value"].item())     # runs' rows are not mixed up
        assert all(store.has_artifact(rid, n) for n in ("model.pt", "model.json", "preprocessor.json",
                                                        "predictions.parquet"))
        stored = store.load_frame(rid, "predictions.parquet")["_split"].value_counts().to_dict()
        assert stored == rec.data_summary["splits"] and stored["val"] > 0
        store.load_model_state(rid)



def test_concurrent_writers_on_separate_connections(tmp_path):
    """Writers on their own store objects (own SQLite connections, as in separate processes) log
    epochs and rename runs at the same moment: every write lands, none fails on a busy database."""
    base = RunStore(tmp_path)
    rids = [_new(base, status="running") for _ in range(4)]
    n_epochs = 100
    metrics = {"val": {"click": {f"metric_{k}": 0.5 + k / 100 for k in range(20)}}}
    start = threading.Barrier(len(rids) + 1, timeout=30)
    errors: list[BaseException] = []

    def writer(i: int) -> None:
        try:
            store = RunStore(tmp_path)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)
            start.abort()
            return
        try:
            start.wait()
            for epoch in range(1, n_epochs + 1):
                store.log_epoch(rids[i], epoch, metrics)
                store.rename(rids[(i + 1) % len(rids)], f"renamed-by-{i}-{epoch}")
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)
        finally:
            store.close()

    threads = [threading.Thread(target=writer, args=(i,), name=f"test-writer-{i}") for i in range(len(rids))]
    for t in threads:
        t.start()
    with contextlib.suppress(threading.BrokenBarrierError):
        start.wait()
    for t in threads:
        t.join(PROC_TIMEOUT)
    assert not errors, errors
    for i, rid in enumerate(rids):
        h = base.history(rid)
        assert len(h) == 20 * n_epochs and sorted(h["epoch"].unique()) == list(range(1, n_epochs + 1))
        assert base.get_run(rid).name == f"renamed-by-{(i - 1) % len(rids)}-{n_epochs}"
    base.close()



def test_concurrent_logging_while_listing(tmp_path):
    store = RunStore(tmp_path)
    rid = _new(store, status="running")
    errors: list[BaseException] = []
    n_epochs = 60

    def train():
        try:
            for epoch in range(1, n_epochs + 1):
                if epoch == n_epochs // 2:
                    reading.wait(5)  # make sure the reader runs while epochs are still coming
                store.log_epoch(rid, epoch, {"train": {"click": {"loss": 1.0 / epoch}},
                                             "val": {"click": {"auc": 0.5 + epoch / 1000}}})
            store.finish(rid, "finished", final_metrics={"click": {"auc": 0.56}}, epochs=n_epochs,
                         train_seconds=1.0, samples_per_second=10.0)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    reading = threading.Event()
    other = RunStore(tmp_path)  # a second store (the dashboard) on the same files
    t = threading.Thread(target=train, name="test-trainer", daemon=True)
    t.start()
    while t.is_alive():
        assert [r.id for r in store.list_runs()] == [rid]
        store.runs_frame()
        h = other.history(rid)
        assert len(h) % 2 == 0  # an epoch is committed whole or not at all
        reading.set()
    t.join()
    assert reading.is_set()
    assert not errors, errors
    h = store.history(rid)
    assert len(h) == 2 * n_epochs and h["epoch"].max() == n_epochs
    assert other.get_run(rid).status == "finished"
    store.close()
    other.close()



def test_pid_alive(tmp_path):
    assert pid_alive(os.getpid()) and not pid_alive(None) and not pid_alive(0) and not pid_alive(-1)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait(timeout=PROC_TIMEOUT)
    assert not pid_alive(gone.pid)



def test_reused_pid_counts_as_dead(tmp_path):
    """A live pid whose process start time differs from the recorded one is another process."""
    if not os.path.exists(f"/proc/{os.getpid()}/stat"):
        pytest.skip("no /proc: process start times are unknown here")
    home = tmp_path / "store"
    owner = _owner(home, tmp_path / "ids", "running")
    try:
        (rid,) = _owned_ids(tmp_path / "ids", owner)
        store = RunStore(home)
        assert store.get_run(rid).status == "running" and pid_alive(owner.pid)
        assert not pid_alive(owner.pid, "1")
        # A pid reused by a new process cannot be produced on demand: the recorded start time is
        # rewritten instead (a storage-level change), as if the owner had died and its pid been reused.
        con = sqlite3.connect(store.db_path)
        con.execute("UPDATE runs SET owner_start = '1' WHERE id = ?", (rid,))
        con.commit()
        con.close()
        assert store.mark_interrupted_runs() == [rid]
        assert store.get_run(rid).status == "interrupted"
    finally:
        _kill(owner)
