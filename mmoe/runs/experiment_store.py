"""The experiments table of the run store: an experiment is a set of runs over a grid of settings x
seeds, stored as one record that its runs point to (``runs.experiment_id``, ``runs.experiment_point``).

    experiments(id, name, kind, status, dataset, spec, error, created_at, finished_at, owner_*)

``spec`` is JSON: ``{"grid": [[key, [values...]], ...], "seeds": [...], "points": [{"settings": {..}}],
"baseline": key | null, ...}`` (what ``mmoe.runs.experiments`` wrote). The status follows a run's:
running -> finished | cancelled | failed, or interrupted when its process died.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

from mmoe.runs.errors import StoreError, dumps, loads
from mmoe.runs.liveness import HOST, proc_start

EXPERIMENTS_SCHEMA = """
CREATE TABLE IF NOT EXISTS experiments (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    name         TEXT NOT NULL,
    kind         TEXT NOT NULL,
    status       TEXT NOT NULL,
    dataset      TEXT NOT NULL,
    spec         TEXT NOT NULL,
    error        TEXT,
    created_at   TEXT NOT NULL,
    finished_at  TEXT,
    owner_pid    INTEGER,
    owner_host   TEXT,
    owner_start  TEXT
);
CREATE INDEX IF NOT EXISTS runs_experiment ON runs(experiment_id);
"""
EXPERIMENT_STATUSES = ("running", "finished", "cancelled", "failed", "interrupted")


@dataclass(frozen=True)
class ExperimentRecord:
    id: int
    name: str
    kind: str               # "grid" (settings x seeds on one table) | "paper" | "census"
    status: str
    dataset: str
    spec: dict
    error: str | None
    created_at: str
    finished_at: str | None

    @property
    def active(self) -> bool:
        return self.status == "running"

    @property
    def seeds(self) -> list[int]:
        return [int(s) for s in self.spec.get("seeds", [])]

    @property
    def points(self) -> list[dict]:
        return list(self.spec.get("points", []))


class ExperimentIO:
    """The experiment methods of ``RunStore`` (which provides ``_tx``, ``_con``, ``_owner_alive``, ``list_runs``,
    ``read_only`` and ``write_experiment_file``)."""

    def create_experiment(self, name: str | None, *, kind: str, dataset: str, spec: dict) -> int:
        """Register a running experiment owned by this process; returns its id."""
        from mmoe.runs.naming import check_run_name
        from mmoe.runs.store import _now

        name = check_run_name(name) if (name or "").strip() else None
        with self._tx() as c:
            cur = c.execute(
                "INSERT INTO experiments (name, kind, status, dataset, spec, created_at, owner_pid, owner_host,"
                " owner_start) VALUES (?,?,?,?,?,?,?,?,?)",
                ((name or "").strip(), str(kind), "running", str(dataset), dumps(dict(spec)), _now(), os.getpid(),
                 HOST, proc_start(os.getpid())))
            exp_id = int(cur.lastrowid)
            if not (name or "").strip():
                c.execute("UPDATE experiments SET name = ? WHERE id = ?", (f"experiment-{exp_id}", exp_id))
        self.write_experiment_file(exp_id)   # its copy beside the run folders (see ``runfile``)
        return exp_id

    def finish_experiment(self, exp_id: int, status: str, error: str | None = None) -> None:
        from mmoe.runs.store import _now

        if status not in EXPERIMENT_STATUSES[1:]:
            raise StoreError(f"experiment {exp_id}: finish needs one of {', '.join(EXPERIMENT_STATUSES[1:])}, "
                             f"not {status!r}")
        with self._tx() as c:
            self._experiment_row(c, exp_id)
            c.execute("UPDATE experiments SET status=?, error=?, finished_at=? WHERE id=?",
                      (status, error, _now(), int(exp_id)))
        self.write_experiment_file(exp_id)

    def _experiment_row(self, c, exp_id):
        try:
            key = int(exp_id)
        except (TypeError, ValueError):
            raise StoreError(f"experiment {exp_id!r} does not exist (ids are whole numbers)") from None
        row = c.execute("SELECT * FROM experiments WHERE id = ?", (key,)).fetchone()
        if row is None:
            raise StoreError(f"experiment {exp_id} does not exist; list them with: python -m mmoe runs --experiments")
        return row

    @staticmethod
    def _experiment(row) -> ExperimentRecord:
        return ExperimentRecord(id=row["id"], name=row["name"], kind=row["kind"], status=row["status"],
                                dataset=row["dataset"], spec=loads(row["spec"], {}), error=row["error"],
                                created_at=row["created_at"], finished_at=row["finished_at"])

    def get_experiment(self, exp_id: int) -> ExperimentRecord:
        return self._experiment(self._experiment_row(self._con(), exp_id))

    def list_experiments(self) -> list[ExperimentRecord]:
        """All experiments, newest first."""
        rows = self._con().execute("SELECT * FROM experiments ORDER BY id DESC").fetchall()
        return [self._experiment(r) for r in rows]

    def experiment_runs(self, exp_id: int) -> list:
        """The experiment's runs (``RunRecord``), oldest first."""
        self.get_experiment(exp_id)
        rows = self._con().execute("SELECT * FROM runs WHERE experiment_id = ? ORDER BY id", (int(exp_id),)).fetchall()
        return [self._record(r) for r in rows]

    def delete_experiment(self, exp_id: int) -> list[int]:
        """Remove an experiment and its runs (refused while it runs); returns the run ids deleted."""
        if self.get_experiment(exp_id).active and self._owner_alive(
                self._experiment_row(self._con(), exp_id)):
            raise StoreError(f"experiment {exp_id} is running; cancel it before deleting it")
        ids = [r.id for r in self.experiment_runs(exp_id)]
        for rid in ids:
            self.delete(rid)
        with self._tx() as c:
            c.execute("DELETE FROM experiments WHERE id = ?", (int(exp_id),))
        from mmoe.runs.runfile import EXPERIMENTS_DIR

        (self.home / EXPERIMENTS_DIR / f"{int(exp_id)}.json").unlink(missing_ok=True)
        return ids

    def mark_interrupted_experiments(self) -> list[int]:
        """Mark running experiments whose owning process (on this host) is dead as interrupted."""
        from mmoe.runs.store import _now

        if self.read_only:
            return []
        rows = self._con().execute("SELECT * FROM experiments WHERE status = 'running'").fetchall()
        dead = [r for r in rows if not self._owner_alive(r)]
        if dead:
            with self._tx() as c:
                for r in dead:
                    c.execute("UPDATE experiments SET status='interrupted', finished_at=?, error=COALESCE(error, ?)"
                              " WHERE id=? AND status='running'",
                              (_now(), f"the process that ran it (pid {r['owner_pid']}) ended first", r["id"]))
            for r in dead:
                with contextlib.suppress(OSError):
                    self.write_experiment_file(r["id"])
        return [int(r["id"]) for r in dead]
