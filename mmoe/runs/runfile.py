"""Self-describing run folders: ``<run>/run.json`` and ``_experiments/<id>.json``, so a lost or damaged
index can be rebuilt from the folders (``mmoe.runs.repair``).

The index (runs.sqlite) stays the one home of a run's record; ``run.json`` is its copy beside the
artifacts, rewritten (atomically) when the run is created, starts, ends, is renamed or is marked
interrupted, and at most every ``EPOCH_WRITE_SECONDS`` while it logs epochs:

    {"format": 1, "run": {<every column of the runs table; configs, summary and metrics as JSON>},
     "history": [[epoch, split, task, metric, value | null (NaN)], ...]}

An experiment's record is copied the same way to ``home/_experiments/<id>.json`` (``{"format": 1,
"experiment": {...}}``) when it is created and when it ends.
"""
from __future__ import annotations

import json
import math
import threading
import time
from pathlib import Path
from typing import Any

from mmoe.runs.artifacts import RUN_FILE, temp_path
from mmoe.runs.errors import plain_json

FORMAT = 1
EXPERIMENTS_DIR = "_experiments"
EPOCH_WRITE_SECONDS = 10.0
# columns of the runs / experiments tables stored as JSON text
RUN_JSON_COLUMNS = ("data_config", "model_config", "train_config", "data_summary", "final_metrics")
EXPERIMENT_JSON_COLUMNS = ("spec",)


def _decoded(row, json_columns) -> dict:
    out = {}
    for key in row.keys():
        value = row[key]
        out[key] = json.loads(value) if key in json_columns and value is not None else value
    return out


def write_json_atomic(path: Path, obj: Any) -> None:
    """``obj`` as JSON at ``path``, via a temporary file renamed into place (non-finite floats allowed:
    this is the store's own file, read back by Python)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        tmp.write_text(json.dumps(obj, default=plain_json, indent=1), encoding="utf-8")
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def read_json(path: Path) -> dict | None:
    """A run.json / experiment file, or None when it is missing, unreadable or not ours."""
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return obj if isinstance(obj, dict) and obj.get("format") == FORMAT else None


class RunFileIO:
    """The run.json methods of ``RunStore`` (which provides ``home``, ``_con``, ``artifact_dir``)."""

    def _init_run_files(self) -> None:
        self._run_file_lock = threading.Lock()
        self._run_file_written: dict[int, float] = {}

    def write_run_file(self, run_id: int) -> None:
        """Rewrite ``<run>/run.json`` from the index (the record and every logged epoch)."""
        with self._run_file_lock:   # a snapshot and its write together: a later state is never overwritten
            con = self._con()
            row = con.execute("SELECT * FROM runs WHERE id = ?", (int(run_id),)).fetchone()
            if row is None:
                return
            history = [[r["epoch"], r["split"], r["task"], r["metric"], r["value"]] for r in con.execute(
                "SELECT epoch, split, task, metric, value FROM metrics WHERE run_id = ? "
                "ORDER BY epoch, split, task, metric", (int(run_id),)).fetchall()]
            write_json_atomic(self.artifact_dir(run_id) / RUN_FILE,
                              {"format": FORMAT, "run": _decoded(row, RUN_JSON_COLUMNS), "history": history})
            self._run_file_written[int(run_id)] = time.monotonic()

    def _run_file_after_epoch(self, run_id: int) -> None:
        """Rewrite run.json after an epoch, at most every EPOCH_WRITE_SECONDS (it holds the whole history)."""
        last = self._run_file_written.get(int(run_id))
        if last is None or time.monotonic() - last >= EPOCH_WRITE_SECONDS:
            try:
                self.write_run_file(run_id)
            except OSError:
                pass   # the copy waits for the next write; the epoch itself is in the index

    def write_experiment_file(self, exp_id: int) -> None:
        row = self._con().execute("SELECT * FROM experiments WHERE id = ?", (int(exp_id),)).fetchone()
        if row is not None:
            write_json_atomic(self.home / EXPERIMENTS_DIR / f"{int(exp_id)}.json",
                              {"format": FORMAT, "experiment": _decoded(row, EXPERIMENT_JSON_COLUMNS)})


def history_rows(run_id: int, history: list) -> list[tuple]:
    """run.json's history as rows of the metrics table (NaN stays NULL)."""
    rows = []
    for item in history:
        epoch, split, task, metric, value = item
        if isinstance(value, float) and math.isnan(value):
            value = None
        rows.append((int(run_id), int(epoch), str(split), str(task), str(metric), value))
    return rows
