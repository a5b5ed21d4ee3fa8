"""RunStore: where runs live. One SQLite database plus one artifact folder per run.

    home/runs.sqlite     runs (config, status, final metrics) and per-epoch metrics
    home/<run_id>/       model.pt + model.json, preprocessor.json, predictions.parquet, run.json (see artifacts)

``home`` is ``$MMOE_HOME`` (default ``./runs``); the dashboard and the CLI share it,
possibly at the same time from different processes. SQLite runs in WAL mode with a
busy timeout, and every thread gets its own connection, so a training thread can log
epochs while the UI thread lists runs.

Status lifecycle: ``mmoe.runs.status`` (``RunStatus``); artifacts: ``mmoe.runs.artifacts``.

Each run records the pid + hostname (+ process start time) of the process that
created / started it. Opening a store marks ``queued``/``running`` runs whose owner
on this host is dead as ``interrupted``; runs owned by a live process (a CLI
training while the dashboard opens the store) or by the current process are left alone.

Metric values may be NaN or +-inf (a diverged run): NaN is stored as NULL and read
back as ``float('nan')``.

Faults (``mmoe.runs.connection``): a damaged index, or a missing / emptied one beside run folders,
is refused with one StoreError that says to run ``python -m mmoe runs --repair`` (``mmoe.runs.repair``
rebuilds it from the folders' ``run.json``); nothing is changed on disk then, and no run folder is
ever moved (a new run's id is above every folder). A store this process may not write opens
read-only. Opening a writable store removes stale temporary files (``mmoe.runs.housekeeping``).
"""
from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Mapping

import pandas as pd

from mmoe.runs.artifacts import ArtifactIO
from mmoe.runs.connection import BUSY_TIMEOUT_MS, ConnectionIO, check_index, readonly_fault, run_folder_ids, writable
from mmoe.runs.errors import ArtifactError, IndexFault, StoreError, dumps, final_value, loads, metric_value
from mmoe.runs.experiment_store import EXPERIMENTS_SCHEMA, ExperimentIO
from mmoe.runs.housekeeping import remove_stale_leftovers
from mmoe.runs.liveness import HOST, pid_alive, proc_start
from mmoe.runs.naming import check_run_name
from mmoe.runs.runfile import RunFileIO
from mmoe.runs.runs_table import RunsTableIO
from mmoe.runs.status import ACTIVE, STATUSES, TERMINAL, TRANSITIONS

__all__ = ["ArtifactError", "BUSY_TIMEOUT_MS", "DB_NAME", "IndexFault", "RunRecord", "RunStore", "SCHEMA_VERSION",
           "StoreError", "pid_alive"]

SCHEMA_VERSION = 2
DB_NAME = "runs.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    name               TEXT NOT NULL,
    dataset            TEXT NOT NULL,
    arch               TEXT,
    status             TEXT NOT NULL,
    error              TEXT,
    created_at         TEXT NOT NULL,
    started_at         TEXT,
    finished_at        TEXT,
    epochs             INTEGER,
    train_seconds      REAL,
    samples_per_second REAL,
    best_epoch         INTEGER,
    data_config        TEXT NOT NULL,
    model_config       TEXT NOT NULL,
    train_config       TEXT NOT NULL,
    data_summary       TEXT,
    final_metrics      TEXT,
    owner_pid          INTEGER,
    owner_host         TEXT,
    owner_start        TEXT,
    stop_reason        TEXT,
    experiment_id      INTEGER,
    experiment_point   INTEGER
);
CREATE TABLE IF NOT EXISTS metrics (
    run_id  INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    epoch   INTEGER NOT NULL,
    split   TEXT NOT NULL,
    task    TEXT NOT NULL,
    metric  TEXT NOT NULL,
    value   REAL,                       -- NULL means NaN
    PRIMARY KEY (run_id, epoch, split, task, metric)
);
CREATE INDEX IF NOT EXISTS runs_status ON runs(status);
""" + EXPERIMENTS_SCHEMA
# {from_version: sql}; applied in order by _migrate() (then the schema above, IF NOT EXISTS, adds new tables)
_MIGRATIONS: dict[int, str] = {
    1: "ALTER TABLE runs ADD COLUMN stop_reason TEXT; ALTER TABLE runs ADD COLUMN experiment_id INTEGER;"
       " ALTER TABLE runs ADD COLUMN experiment_point INTEGER",
}


@dataclass(frozen=True)
class RunRecord:
    """One row of the runs table, configs and final metrics decoded from JSON."""

    id: int
    name: str
    dataset: str
    arch: str | None
    status: str
    error: str | None
    created_at: str
    started_at: str | None
    finished_at: str | None
    epochs: int | None
    train_seconds: float | None
    samples_per_second: float | None
    best_epoch: int | None
    data_config: dict
    model_config: dict
    train_config: dict
    data_summary: dict | None
    final_metrics: dict
    artifact_dir: Path
    owner_pid: int | None = None
    owner_host: str | None = None
    stop_reason: str | None = None         # why it ended, in words (all epochs, early stopping, ...)
    experiment_id: int | None = None       # the experiment it belongs to (see ``experiment_store``)
    experiment_point: int | None = None    # which of the experiment's settings (its index)

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    @property
    def tasks(self) -> list[str]:
        return [t.get("column", "") for t in self.data_config.get("tasks", []) if isinstance(t, Mapping)]


# ----------------------------------------------------------------------------- helpers

def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


# ----------------------------------------------------------------------------- store

def store_home(home: str | os.PathLike | None = None) -> Path:
    """The run store's folder: ``home``, else ``$MMOE_HOME``, else ./runs (resolved; nothing is opened)."""
    return Path(home if home is not None else (os.environ.get("MMOE_HOME") or "runs")).expanduser().resolve()


class RunStore(ConnectionIO, ArtifactIO, ExperimentIO, RunFileIO, RunsTableIO):
    """SQLite-backed run registry with one artifact folder per run. Thread-safe.

    ``read_only``: None (default) opens read-only when this process may not write the store (see
    ``mmoe.runs.connection``); True forces it. Opening refuses, with a StoreError that says how to fix
    it, a damaged index and a missing or emptied one beside run folders, and changes nothing then."""

    def __init__(self, home: str | os.PathLike | None = None, *, read_only: bool | None = None):
        self.home = store_home(home)
        if not self.home.is_dir():
            try:
                self.home.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise StoreError(f"cannot create the run store folder {self.home}: {e.strerror or e}") from None
        self.db_path = self.home / DB_NAME
        self.read_only = bool(read_only) if read_only is not None else not writable(self.home, self.db_path)
        self.removed_leftovers: list[Path] = []    # stale temporary files removed at open
        self._init_connections()
        self._init_run_files()
        check_index(self.home, self.db_path)
        try:
            self._init_db()
        except IndexFault as e:
            if e.kind != "readonly" or self.read_only or read_only is not None:
                self.close()
                raise
            self.close()     # writing turned out impossible (a read-only volume): open for reading
            self.read_only = True
            self._init_db()
        if not self.read_only:
            self.removed_leftovers = remove_stale_leftovers(self.home)
            self.mark_interrupted_runs()

    def __repr__(self) -> str:
        return f"RunStore({str(self.home)!r}{', read-only' if self.read_only else ''})"

    def _init_db(self) -> None:
        if self.read_only:
            self._check_readable()
            return
        con = self._con()
        # read before anything is written: a damaged file fails here and is left exactly as it was
        version = con.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise self._newer(version)
        if version:
            con.execute("SELECT count(*), max(id) FROM runs").fetchone()     # every page of the runs table
        try:
            con.execute("PRAGMA journal_mode = WAL")
        except IndexFault as e:
            if e.kind not in ("other", "io"):
                raise   # else e.g. a file system without shared memory: the rollback journal still works
        with self._tx() as c:
            version = c.execute("PRAGMA user_version").fetchone()[0]
            if version:
                self._migrate(c, version)
            # statement by statement: executescript() would COMMIT the open transaction
            for stmt in _SCHEMA.split(";"):
                if stmt.strip():
                    c.execute(stmt)
            if version == 0:
                c.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _newer(self, version: int) -> StoreError:
        return StoreError(f"{self.db_path} was written by a newer MMoE Lab (schema {version}, "
                          f"this one knows {SCHEMA_VERSION}); upgrade mmoe or use another --store")

    def _check_readable(self) -> None:
        """Read-only: the index must exist with this schema (it cannot be created or upgraded)."""
        if not self.db_path.is_file():
            raise readonly_fault(self.db_path, f"and it holds no {DB_NAME} to read")
        try:
            version = self._con().execute("PRAGMA user_version").fetchone()[0]
            self._con().execute("SELECT id FROM runs LIMIT 1").fetchall()
        except IndexFault as e:
            if e.kind not in ("readonly", "cantopen") or self.immutable:
                raise
            # a WAL index in a folder nobody may write has no -shm file to share: read the file as it is
            self.close()
            self.immutable = True
            version = self._con().execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise self._newer(version)
        if version < SCHEMA_VERSION:
            raise readonly_fault(self.db_path, f"and its index is of an older MMoE Lab (schema {version}): open it "
                                               "once with write permission so it can be upgraded")

    @staticmethod
    def _migrate(c: sqlite3.Connection, version: int) -> None:
        while version < SCHEMA_VERSION:
            for stmt in _MIGRATIONS.get(version, "").split(";"):
                if stmt.strip():
                    c.execute(stmt)
            version += 1
            c.execute(f"PRAGMA user_version = {version}")

    # -- runs ------------------------------------------------------------------------

    def create_run(self, name: str | None, *, dataset: str, data_config: dict, model_config: dict,
                   train_config: dict, data_summary: dict | None = None, status: str = "queued",
                   experiment_id: int | None = None, experiment_point: int | None = None) -> int:
        """Register a new run (status queued or running) and return its id; ``experiment_id`` /
        ``experiment_point``: the experiment and the point of its grid the run belongs to."""
        status = str(status)
        if status not in ACTIVE:
            raise StoreError(f"a new run starts as queued or running, not {status!r}")
        if name is not None and not str(name).strip():
            name = None
        name = None if name is None else check_run_name(name)   # one line, <= 200 characters, no control chars
        now = _now()
        with self._tx() as c:
            self._ids_above_folders(c)
            cur = c.execute(
                "INSERT INTO runs (name, dataset, arch, status, created_at, started_at, data_config,"
                " model_config, train_config, data_summary, final_metrics, owner_pid, owner_host, owner_start,"
                " experiment_id, experiment_point) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (name.strip() if name else "", str(dataset), (model_config or {}).get("arch"), status, now,
                 now if status == "running" else None, dumps(dict(data_config)), dumps(dict(model_config)),
                 dumps(dict(train_config)), dumps(data_summary), dumps({}), os.getpid(), HOST,
                 proc_start(os.getpid()), experiment_id, experiment_point))
            run_id = int(cur.lastrowid)
            if not name:
                c.execute("UPDATE runs SET name = ? WHERE id = ?", (f"run-{run_id}", run_id))
        self.write_run_file(run_id)
        return run_id

    def _ids_above_folders(self, c: sqlite3.Connection) -> None:
        """The next run id is above every run folder in the store, also one the index does not list (a
        folder is never reused or moved: ``runs --repair`` brings such folders back)."""
        folders = run_folder_ids(self.home)
        if not folders:
            return
        row = c.execute("SELECT seq FROM sqlite_sequence WHERE name = 'runs'").fetchone()
        if row is None:
            c.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('runs', ?)", (folders[-1],))
        elif row["seq"] < folders[-1]:
            c.execute("UPDATE sqlite_sequence SET seq = ? WHERE name = 'runs'", (folders[-1],))

    def _status_of(self, c: sqlite3.Connection, run_id: int) -> str:
        row = c.execute("SELECT status FROM runs WHERE id = ?", (int(run_id),)).fetchone()
        if row is None:
            raise StoreError(f"run {run_id} does not exist")
        return row["status"]

    @staticmethod
    def _check_transition(run_id: int, old: str, new: str) -> None:
        if new not in STATUSES:
            raise StoreError(f"run {run_id}: unknown status {new!r}; use one of {', '.join(STATUSES)}")
        if new not in TRANSITIONS.get(old, ()):
            allowed = TRANSITIONS.get(old, ())
            hint = f"allowed from {old}: {', '.join(allowed)}" if allowed else f"{old} is final"
            raise StoreError(f"run {run_id}: cannot go from {old} to {new} ({hint})")

    def set_status(self, run_id: int, status: str, error: str | None = None) -> None:
        """Move a run along its lifecycle; invalid transitions raise StoreError.

        -> running records started_at and makes the calling process the run's owner;
        a terminal status records finished_at.
        """
        status, now = str(status), _now()
        with self._tx() as c:
            old = self._status_of(c, run_id)
            self._check_transition(run_id, old, status)
            if status == "running":
                c.execute("UPDATE runs SET status=?, error=?, started_at=?, owner_pid=?, owner_host=?,"
                          " owner_start=? WHERE id=?",
                          (status, error, now, os.getpid(), HOST, proc_start(os.getpid()), int(run_id)))
            else:
                c.execute("UPDATE runs SET status=?, error=COALESCE(?, error), finished_at=? WHERE id=?",
                          (status, error, now, int(run_id)))
        self.write_run_file(run_id)

    def log_epoch(self, run_id: int, epoch: int, metrics: Mapping[str, Mapping[str, Mapping[str, float]]]) -> None:
        """Record one epoch: metrics[split][task][metric] = value (committed at once).

        Logging the same (epoch, split, task, metric) again overwrites the value.
        """
        rows = [(int(run_id), int(epoch), str(split), str(task), str(metric),
                 metric_value(value, f"run {run_id} epoch {epoch} {split}/{task}/{metric}"))
                for split, tasks in metrics.items()
                for task, named in tasks.items()
                for metric, value in named.items()]
        with self._tx() as c:
            self._status_of(c, run_id)
            c.executemany("INSERT OR REPLACE INTO metrics (run_id, epoch, split, task, metric, value)"
                          " VALUES (?,?,?,?,?,?)", rows)
        self._run_file_after_epoch(run_id)

    def finish(self, run_id: int, status: str, *, final_metrics: Mapping[str, Mapping[str, float]],
               epochs: int, train_seconds: float, samples_per_second: float, error: str | None = None,
               best_epoch: int | None = None, stop_reason: str | None = None,
               summary_update: Mapping | None = None) -> None:
        """End a run: terminal status plus summary (final_metrics[task][metric] = value) and, in
        words, why it stopped. ``summary_update``: keys merged into the run's data summary (what is
        known only after training, such as which training step ran)."""
        status = str(status)
        if status not in TERMINAL:
            raise StoreError(f"run {run_id}: finish() needs a final status "
                             f"({', '.join(TERMINAL)}), not {status!r}")
        fm = {str(t): {str(k): final_value(v) for k, v in m.items()}
              for t, m in (final_metrics or {}).items()}
        now = _now()
        with self._tx() as c:
            old = self._status_of(c, run_id)
            self._check_transition(run_id, old, status)
            if summary_update:
                row = c.execute("SELECT data_summary FROM runs WHERE id=?", (int(run_id),)).fetchone()
                merged = {**(loads(row["data_summary"]) or {}), **dict(summary_update)}
                c.execute("UPDATE runs SET data_summary=? WHERE id=?", (dumps(merged), int(run_id)))
            c.execute("UPDATE runs SET status=?, error=?, finished_at=?, final_metrics=?, epochs=?,"
                      " train_seconds=?, samples_per_second=?, best_epoch=?, stop_reason=? WHERE id=?",
                      (status, error, now, dumps(fm), int(epochs or 0), metric_value(train_seconds, "train_seconds"),
                       metric_value(samples_per_second, "samples_per_second"),
                       None if best_epoch is None else int(best_epoch), stop_reason, int(run_id)))
        self.write_run_file(run_id)

    def _record(self, row: sqlite3.Row) -> RunRecord:
        return RunRecord(
            id=row["id"], name=row["name"], dataset=row["dataset"], arch=row["arch"], status=row["status"],
            error=row["error"], created_at=row["created_at"], started_at=row["started_at"],
            finished_at=row["finished_at"], epochs=row["epochs"], train_seconds=row["train_seconds"],
            samples_per_second=row["samples_per_second"], best_epoch=row["best_epoch"],
            data_config=loads(row["data_config"], {}), model_config=loads(row["model_config"], {}),
            train_config=loads(row["train_config"], {}), data_summary=loads(row["data_summary"]),
            final_metrics=loads(row["final_metrics"], {}), artifact_dir=self.artifact_dir(row["id"]),
            owner_pid=row["owner_pid"], owner_host=row["owner_host"], stop_reason=row["stop_reason"],
            experiment_id=row["experiment_id"], experiment_point=row["experiment_point"])

    def get_run(self, run_id: int) -> RunRecord:
        try:
            rid = int(run_id)
        except (TypeError, ValueError):
            raise StoreError(f"run {run_id!r} does not exist (run ids are whole numbers)") from None
        row = self._con().execute("SELECT * FROM runs WHERE id = ?", (rid,)).fetchone()
        if row is None:
            raise StoreError(f"run {run_id} does not exist")
        return self._record(row)

    def exists(self, run_id: int) -> bool:
        try:
            self.get_run(run_id)
            return True
        except StoreError:
            return False

    def list_runs(self, status: str | None = None) -> list[RunRecord]:
        """All runs, newest first; optionally only those with the given status."""
        if status is None:
            rows = self._con().execute("SELECT * FROM runs ORDER BY id DESC").fetchall()
        else:
            rows = self._con().execute("SELECT * FROM runs WHERE status = ? ORDER BY id DESC",
                                       (status,)).fetchall()
        return [self._record(r) for r in rows]

    def history(self, run_id: int) -> pd.DataFrame:
        """Per-epoch metrics as a long frame: epoch, split, task, metric, value (sorted)."""
        con = self._con()
        self._status_of(con, run_id)
        rows = con.execute("SELECT epoch, split, task, metric, value FROM metrics WHERE run_id = ?"
                           " ORDER BY epoch, split, task, metric", (int(run_id),)).fetchall()
        df = pd.DataFrame([tuple(r) for r in rows], columns=["epoch", "split", "task", "metric", "value"])
        df["epoch"] = df["epoch"].astype("int64")
        df["value"] = pd.to_numeric(df["value"], errors="coerce").astype("float64")  # NULL -> NaN
        return df.reset_index(drop=True)

    def rename(self, run_id: int, name: str) -> None:
        name = (name or "").strip()
        if not name:
            raise StoreError(f"run {run_id}: the new name is empty; type a name")
        name = check_run_name(name)
        with self._tx() as c:
            self._status_of(c, run_id)
            c.execute("UPDATE runs SET name = ? WHERE id = ?", (name, int(run_id)))
        self.write_run_file(run_id)

    def _owner_alive(self, row: sqlite3.Row) -> bool:
        """Is the process that owns this run alive? (unknowable on another host: assume yes)"""
        if row["owner_host"] not in (None, HOST):
            return True
        if row["owner_pid"] == os.getpid():
            return True
        return pid_alive(row["owner_pid"], row["owner_start"])

    def delete(self, run_id: int) -> None:
        """Remove a run: its row, its metrics and its artifact folder.

        A queued/running run whose process is alive (this one included) is refused:
        cancel it first.
        """
        with self._tx() as c:
            row = c.execute("SELECT * FROM runs WHERE id = ?", (int(run_id),)).fetchone()
            if row is None:
                raise StoreError(f"run {run_id} does not exist")
            if row["status"] in ACTIVE and self._owner_alive(row):
                where = "this process" if row["owner_pid"] == os.getpid() and row["owner_host"] == HOST \
                    else f"process {row['owner_pid']} on {row['owner_host']}"
                raise StoreError(f"run {run_id} is {row['status']} in {where}; cancel it (or wait for it "
                                 "to end) before deleting it")
            c.execute("DELETE FROM metrics WHERE run_id = ?", (int(run_id),))
            c.execute("DELETE FROM runs WHERE id = ?", (int(run_id),))
        folder = self.artifact_dir(run_id)
        if folder.exists():
            trash = self.home / f".deleted-{int(run_id)}-{uuid.uuid4().hex[:8]}"
            os.replace(folder, trash)
            shutil.rmtree(trash, ignore_errors=True)

    def mark_interrupted_runs(self) -> list[int]:
        """Mark queued/running runs whose owning process (on this host) is dead as interrupted; their
        epochs are the epochs their history holds (the last one logged).

        Called when the store opens; safe to call again (e.g. on a dashboard refresh); nothing to do
        on a read-only store. Returns the ids marked.
        """
        if self.read_only:
            return []
        rows = self._con().execute("SELECT * FROM runs WHERE status IN ('queued', 'running')").fetchall()
        dead = [r for r in rows if not self._owner_alive(r)]
        marked = []
        if dead:
            now = _now()
            with self._tx() as c:
                for r in dead:
                    cur = c.execute(
                        "UPDATE runs SET status='interrupted', finished_at=?, error=COALESCE(error, ?),"
                        " stop_reason=COALESCE(stop_reason, ?), epochs=COALESCE(NULLIF(epochs, 0),"
                        " (SELECT MAX(epoch) FROM metrics WHERE run_id = runs.id), epochs)"
                        " WHERE id=? AND status=? AND owner_pid IS ?",
                        (now, f"the process that ran it (pid {r['owner_pid']}) ended before the run finished",
                         "interrupted: the process that ran it ended", r["id"], r["status"], r["owner_pid"]))
                    if cur.rowcount:
                        marked.append(int(r["id"]))
            for run_id in marked:
                with contextlib.suppress(OSError):   # the copy beside the artifacts must not stop an open
                    self.write_run_file(run_id)
        self.mark_interrupted_experiments()
        return marked
