"""``python -m mmoe runs --repair``: rebuild the run index (runs.sqlite) from the run folders.

    index healthy      the runs it lists are kept as they are; run folders it does not list are added
    index damaged,     a new index is built from every folder (beside it, then renamed into place);
    missing or empty   the damaged file (and its -wal / -shm) is moved aside to
                       ``runs.sqlite.corrupt-<UTC time>``, never deleted, and the report says where

A folder's record comes from its ``run.json`` (``mmoe.runs.runfile``: record, configs, metrics and
history); a folder without one (runs older than run.json) is recovered from ``model.json`` /
``preprocessor.json`` as far as they go (architecture, tasks; status finished when it has weights,
else interrupted), or listed as not recoverable. No folder is moved, changed or deleted. Experiments
come back from ``_experiments/<id>.json``. A run that was running when its process died comes back
interrupted, with the epochs its history holds.
"""
from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote

from mmoe.runs.artifacts import MODEL, MODEL_META, PREPROCESSOR, RUN_FILE, temp_path
from mmoe.runs.connection import check_index, run_folder_ids, translate
from mmoe.runs.errors import IndexFault, StoreError, dumps
from mmoe.runs.runfile import EXPERIMENT_JSON_COLUMNS, EXPERIMENTS_DIR, RUN_JSON_COLUMNS, history_rows, read_json

FROM_FILES_ONLY = ("recovered by runs --repair from its folder, which has no run.json: its name, dataset, "
                   "settings, metrics and history are not known")


@dataclass
class RepairReport:
    home: Path
    rebuilt: bool = False                  # a new index was written (else the healthy one was completed)
    why: str = ""                          # what was wrong with the index
    moved_aside: list[Path] = field(default_factory=list)   # the damaged index files, kept
    restored: list[int] = field(default_factory=list)       # runs back from their run.json
    from_files: list[int] = field(default_factory=list)     # runs back from model.json / preprocessor.json only
    unrecoverable: list[tuple[int, str]] = field(default_factory=list)   # (folder, why), left in place
    experiments: list[int] = field(default_factory=list)
    listed: int = 0                        # runs the healthy index listed already

    @property
    def changed(self) -> bool:
        return self.rebuilt or bool(self.restored or self.from_files or self.experiments)

    def lines(self) -> list[str]:
        db = self.home / "runs.sqlite"
        if not self.changed and not self.unrecoverable:
            return [f"nothing to repair: the index {db} lists every run folder ({self.listed} runs)"]
        out = [f"{'rebuilt' if self.rebuilt else 'completed'} the run index {db}"
               + (f" ({self.why})" if self.why else "") + ":"]
        if self.listed:
            out.append(f"  {self.listed} runs it listed are kept as they were")
        if self.restored:
            out.append(f"  {len(self.restored)} runs restored from their run.json: {_ids(self.restored)}")
        if self.from_files:
            out.append(f"  {len(self.from_files)} runs recovered from their model files only (name, settings, "
                       f"metrics and history unknown): {_ids(self.from_files)}")
        if self.experiments:
            out.append(f"  {len(self.experiments)} experiments restored: {_ids(self.experiments)}")
        for path in self.moved_aside:
            out.append(f"  the damaged index file was moved aside to {path} (delete it when you no longer need it)")
        for folder, why in self.unrecoverable:
            out.append(f"  not recoverable, left in place: folder {self.home / str(folder)} ({why})")
        return out

    def to_dict(self) -> dict:
        return {"home": str(self.home), "rebuilt": self.rebuilt, "why": self.why,
                "moved_aside": [str(p) for p in self.moved_aside], "restored": self.restored,
                "from_files": self.from_files, "experiments": self.experiments, "listed": self.listed,
                "unrecoverable": [{"folder": str(self.home / str(f)), "why": w} for f, w in self.unrecoverable]}


def _ids(ids: list[int]) -> str:
    return ", ".join(map(str, ids))


def index_problem(db_path: Path) -> str | None:
    """None when the index opens and checks out; else what is wrong with it, in words."""
    from mmoe.runs.store import SCHEMA_VERSION

    if not db_path.exists():
        return "it was missing"
    if db_path.stat().st_size == 0:
        return "it was empty"
    try:
        con = sqlite3.connect(f"file:{quote(str(db_path))}?mode=ro", uri=True)
        try:
            check = con.execute("PRAGMA quick_check").fetchone()[0]
            version = con.execute("PRAGMA user_version").fetchone()[0]
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            con.close()
    except sqlite3.Error as e:
        return f"it was damaged: {e}"
    if check != "ok":
        return f"it was damaged: {check}"
    if version > SCHEMA_VERSION:
        raise StoreError(f"{db_path} was written by a newer MMoE Lab (schema {version}); upgrade mmoe to repair it")
    if "runs" not in tables:
        return "it held no runs table"
    return None


def _table_columns(con: sqlite3.Connection, table: str) -> list[str]:
    return [r[1] for r in con.execute(f"PRAGMA table_info({table})")]


def _insert(con: sqlite3.Connection, table: str, record: dict, json_columns) -> None:
    cols = [c for c in _table_columns(con, table) if c in record]
    values = [dumps(record[c]) if c in json_columns else record[c] for c in cols]
    con.execute(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})", values)


def _read_dict(path: Path) -> dict | None:
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return obj if isinstance(obj, dict) else None


def _from_files(folder: Path, run_id: int) -> dict | None:
    """A run's record from what older run folders hold (model.json, preprocessor.json), or None."""
    meta, pre = _read_dict(folder / MODEL_META), _read_dict(folder / PREPROCESSOR)
    if meta is None and pre is None:
        return None
    mc = meta.get("model_config", {}) if meta else {}
    tasks = (pre or {}).get("tasks") or [{"column": t} for t in (meta or {}).get("task_dims", {})]
    created = datetime.fromtimestamp(folder.stat().st_mtime, timezone.utc).isoformat(timespec="milliseconds")
    has_model = (folder / MODEL).is_file()
    return {"id": run_id, "name": f"run-{run_id} (recovered)", "dataset": "unknown", "arch": mc.get("arch"),
            "status": "finished" if has_model else "interrupted", "created_at": created, "finished_at": created,
            "data_config": {"tasks": tasks}, "model_config": mc, "train_config": {}, "final_metrics": {},
            "stop_reason": FROM_FILES_ONLY, "error": None if has_model else FROM_FILES_ONLY}


def _add_folders(con: sqlite3.Connection, home: Path, known: set[int], report: RepairReport) -> None:
    for run_id in run_folder_ids(home):
        if run_id in known:
            continue
        folder = home / str(run_id)
        saved = read_json(folder / RUN_FILE)
        if saved is not None and isinstance(saved.get("run"), dict):
            record = dict(saved["run"], id=run_id)
            _insert(con, "runs", record, RUN_JSON_COLUMNS)
            con.executemany("INSERT OR REPLACE INTO metrics (run_id, epoch, split, task, metric, value)"
                            " VALUES (?,?,?,?,?,?)", history_rows(run_id, saved.get("history") or []))
            report.restored.append(run_id)
            continue
        record = _from_files(folder, run_id)
        if record is None:
            why = "its run.json cannot be read" if (folder / RUN_FILE).exists() else \
                "no run.json, model.json or preprocessor.json"
            report.unrecoverable.append((run_id, why))
            continue
        _insert(con, "runs", record, RUN_JSON_COLUMNS)
        report.from_files.append(run_id)


def _add_experiments(con: sqlite3.Connection, home: Path, report: RepairReport) -> None:
    known = {r[0] for r in con.execute("SELECT id FROM experiments")}
    folder = home / EXPERIMENTS_DIR
    files = sorted(folder.glob("*.json"), key=lambda p: p.stem) if folder.is_dir() else []
    for path in files:
        if not path.stem.isdigit() or int(path.stem) in known:
            continue
        saved = read_json(path)
        if saved is None or not isinstance(saved.get("experiment"), dict):
            continue
        _insert(con, "experiments", dict(saved["experiment"], id=int(path.stem)), EXPERIMENT_JSON_COLUMNS)
        report.experiments.append(int(path.stem))


def _new_index(path: Path) -> sqlite3.Connection:
    from mmoe.runs.store import _SCHEMA, SCHEMA_VERSION

    con = sqlite3.connect(path, isolation_level=None)
    con.execute("BEGIN")
    for stmt in _SCHEMA.split(";"):
        if stmt.strip():
            con.execute(stmt)
    con.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    return con


def _move_aside(db_path: Path, report: RepairReport) -> None:
    """The damaged index and its journal files -> runs.sqlite.corrupt-<time>[-wal|-shm|-journal]; an
    empty main file is simply replaced. (A -wal left beside the new index would be replayed into it.)"""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    for suffix in ("", "-wal", "-shm", "-journal"):
        path = db_path.with_name(db_path.name + suffix)
        if not path.exists() or (suffix == "" and path.stat().st_size == 0):
            continue
        aside = db_path.with_name(f"{db_path.name}.corrupt-{stamp}{suffix}")
        os.replace(path, aside)
        report.moved_aside.append(aside)


def repair_store(home: str | os.PathLike | None = None) -> RepairReport:
    """Rebuild or complete the index of the store ``home`` from its run folders (see the module)."""
    from mmoe.runs.store import DB_NAME, RunStore

    home = Path(home if home is not None else (os.environ.get("MMOE_HOME") or "runs")).expanduser().resolve()
    if not home.is_dir():
        raise StoreError(f"there is no run store at {home}; give the folder with --store")
    if not os.access(home, os.W_OK):
        raise StoreError(f"cannot repair the run store {home}: this process may not write it; make it writable")
    db_path = home / DB_NAME
    report = RepairReport(home)
    problem = index_problem(db_path)
    if problem is None:
        store = RunStore(home)
        con = store._con()
        con.execute("BEGIN IMMEDIATE")
        try:
            known = {r[0] for r in con.execute("SELECT id FROM runs").fetchall()}
            report.listed = len(known)
            _add_folders(con, home, known, report)
            _add_experiments(con, home, report)
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")
        for run_id in report.restored + report.from_files:
            store.write_run_file(run_id)
        store.mark_interrupted_runs()
        store.close()
        return report
    report.rebuilt, report.why = True, problem
    tmp = temp_path(db_path)
    try:
        con = _new_index(tmp)
        try:
            _add_folders(con, home, set(), report)
            _add_experiments(con, home, report)
            con.execute("COMMIT")
        finally:
            con.close()
        _move_aside(db_path, report)
        os.replace(tmp, db_path)
    except sqlite3.Error as e:   # e.g. the disk filled up while the new index was written
        raise translate(e, db_path) from None
    finally:
        tmp.unlink(missing_ok=True)
    try:
        check_index(home, db_path)
        store = RunStore(home)   # marks the runs whose process died interrupted (epochs from their history)
    except IndexFault as e:
        raise StoreError(f"the rebuilt index does not open: {e}") from None
    for run_id in report.from_files:
        store.write_run_file(run_id)
    store.close()
    return report
