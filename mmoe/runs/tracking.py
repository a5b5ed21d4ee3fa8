"""Stored runs into an experiment tracker: MLflow (``export_mlflow``) or TensorBoard event files
(``export_tensorboard``). What a run becomes there:

    parameters   the run's data, model and train settings flattened: data.val_fraction, model.num_experts,
                 train.lr, data.tasks.0.column, ... (MLflow params; a TensorBoard text entry ``settings``)
    metrics      every per-epoch metric of the store's history as a series with step = epoch, keyed
                 ``<task>/<split>/<metric>`` (e.g. income_50k/val/auc); MLflow metric histories,
                 TensorBoard scalars
    artifacts    (MLflow) the model files (model/model.pt, model.json, preprocessor.json) when the run saved
                 a model, and gate_summary.csv: each task's mean gate weight per expert and how often each
                 expert is the task's largest, on the run's evaluation split
    tags         mmoe.run_id, mmoe.store, mmoe.status, mmoe.arch, mmoe.dataset (MLflow)

Exporting a run again replaces what an earlier export of it wrote (MLflow: the earlier run of the same
store and run id is deleted; TensorBoard: the run's folder's earlier event files are removed), so a
tracker holds each run once. Defaults: MLflow ``sqlite:///<store>/mlflow.db`` with artifacts in
``<store>/mlflow-artifacts``, TensorBoard ``<store>/tensorboard/run<id>-<name>``.
"""
from __future__ import annotations

import contextlib
import json
import logging
import re
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Iterable, Sequence

import pandas as pd

from mmoe.runs.artifacts import MODEL_FILES, PREDICTIONS
from mmoe.runs.errors import StoreError, one_line
from mmoe.runs.extras import require
from mmoe.runs.predictions import evaluation_split, gate_columns, gate_tasks, rows_of_split
from mmoe.runs.store import RunRecord, RunStore

DEFAULT_EXPERIMENT = "MMoE Lab"
MLFLOW_DB = "mlflow.db"
MLFLOW_ARTIFACTS = "mlflow-artifacts"
TENSORBOARD_DIR = "tensorboard"
GATE_SUMMARY = "gate_summary.csv"
MLFLOW_STATUS = {"finished": "FINISHED", "cancelled": "KILLED", "failed": "FAILED", "diverged": "FAILED"}
_MAX_PARAM = 6000           # MLflow's longest parameter value
_BATCH = 100                # params (and tags) per MLflow log_batch; metrics go 1000 at a time
_BAD_KEY = re.compile(r"[^\w.\- :]")   # what MLflow allows in a key: letters, digits, _ . - space : and /


class TrackingError(StoreError):
    """The tracker refused the export (bad URI, unreachable server, unwritable folder); one line."""


@dataclass
class Tracked:
    """One run as exported: where it went and what was left out."""

    run_id: int
    where: str                       # the MLflow run id, or the TensorBoard run folder
    metrics: int                     # metric values written
    replaced: bool = False           # an earlier export of this run was replaced
    notes: list[str] = field(default_factory=list)


@dataclass
class TrackingReport:
    """What an export to a tracker did, as lines (CLI, dashboard) or a dict (--json)."""

    to: str                          # mlflow | tensorboard
    location: str                    # the tracking URI, or the log folder
    runs: list[Tracked]
    experiment: str | None = None    # MLflow experiment name

    def lines(self) -> list[str]:
        if self.to == "mlflow":
            head = (f"exported {len(self.runs)} run(s) to MLflow at {self.location}, experiment "
                    f"{self.experiment!r}; see them in the MLflow UI (it comes with pip install mlflow): "
                    f"mlflow ui --backend-store-uri {self.location}")
        else:
            head = (f"wrote TensorBoard event files for {len(self.runs)} run(s) under {self.location}; "
                    f"see them with: tensorboard --logdir {self.location}")
        out = [head]
        for r in self.runs:
            out.append(f"  run {r.run_id} -> {r.where} ({r.metrics} metric values"
                       + (", replacing an earlier export" if r.replaced else "") + ")")
            out.extend(f"    note: {n}" for n in r.notes)
        return out

    def to_dict(self) -> dict:
        return {"to": self.to, "location": self.location, "experiment": self.experiment, "status": "finished",
                "runs": [{"run_id": r.run_id, "where": r.where, "metrics": r.metrics, "replaced": r.replaced,
                          "notes": r.notes} for r in self.runs]}


# ----------------------------------------------------------------------------- what a run becomes

def key_part(text: str) -> str:
    """``text`` usable inside an MLflow key: characters MLflow refuses (and the / that separates the
    parts) become _, and a part of dots only is spelt with _."""
    part = _BAD_KEY.sub("_", str(text))
    return part.replace(".", "_") if set(part) <= {"."} else part


def metric_key(task: str, split: str, metric: str) -> str:
    return "/".join(key_part(p) for p in (task, split, metric))


def flat_params(rec: RunRecord) -> dict[str, str]:
    """The run's settings as flat text parameters: data.*, model.*, train.* (lists of scalars as JSON)."""
    out: dict[str, str] = {}

    def put(key: str, v) -> None:
        if isinstance(v, dict):
            for k, x in v.items():
                put(f"{key}.{key_part(k)}", x)
        elif isinstance(v, (list, tuple)) and any(isinstance(x, (dict, list, tuple)) for x in v):
            for i, x in enumerate(v):
                put(f"{key}.{i}", x)
        else:
            text = v if isinstance(v, str) else json.dumps(v, default=str)
            out[key] = text[:_MAX_PARAM]

    for prefix, cfg in (("data", rec.data_config), ("model", rec.model_config), ("train", rec.train_config)):
        put(prefix, cfg or {})
    return out


def metric_series(store: RunStore, run_id: int) -> list[tuple[str, int, float]]:
    """(key, epoch, value) for every per-epoch metric of the run's history."""
    h = store.history(run_id)
    return [(metric_key(t, s, m), int(e), float(v))
            for e, s, t, m, v in h[["epoch", "split", "task", "metric", "value"]].itertuples(index=False)]


def gate_summary(store: RunStore, run_id: int) -> pd.DataFrame | None:
    """Per task and expert, on the evaluation split: the mean gate weight and the share of rows whose
    largest weight is that expert's. None when the run stored no gates."""
    if not store.has_artifact(run_id, PREDICTIONS):
        return None
    frame = store.load_frame(run_id, PREDICTIONS)
    split = evaluation_split(frame)
    rows = rows_of_split(frame, split)
    parts = []
    for task in gate_tasks(rows):
        cols = gate_columns(rows, task)
        g = rows[cols].to_numpy(float)                                    # [n, e]
        top = g.argmax(1) if len(g) else g.sum(1).astype(int)
        for e, col in enumerate(cols):
            parts.append({"task": task, "expert": col.rsplit(":", 1)[1], "split": split or "",
                          "mean_weight": float(g[:, e].mean()) if len(g) else float("nan"),
                          "dominant_share": float((top == e).mean()) if len(g) else float("nan"), "rows": len(g)})
    return pd.DataFrame(parts) if parts else None


def _records(store: RunStore, run_ids: Iterable[int]) -> list[RunRecord]:
    recs = []
    for rid in dict.fromkeys(int(r) for r in run_ids):
        if not store.exists(rid):
            raise TrackingError(f"run {rid}: no such run in {store.home}; list runs with: python -m mmoe runs")
        rec = store.get_run(rid)
        if rec.active:
            raise TrackingError(f"run {rid} is still {rec.status}; export it when it has ended")
        recs.append(rec)
    if not recs:
        raise TrackingError("no runs to export; name at least one")
    return recs


def _ms(stamp: str | None) -> int | None:
    try:
        return int(datetime.fromisoformat(stamp).timestamp() * 1000) if stamp else None
    except ValueError:
        return None


def _model_note(store: RunStore, rec: RunRecord) -> list[str]:
    if store.has_artifact(rec.id, MODEL_FILES[0]):
        return []
    return [f"no model files: the run {'saved no model' if rec.status == 'finished' else 'ended as ' + rec.status}"
            " (its settings and metrics are exported)"]


@contextlib.contextmanager
def _quiet(*names: str):
    """The tracker's INFO lines (database migrations, ...) are not the user's business."""
    levels = {n: logging.getLogger(n).level for n in names}
    try:
        for n in names:
            logging.getLogger(n).setLevel(logging.WARNING)
        yield
    finally:
        for n, level in levels.items():
            logging.getLogger(n).setLevel(level)


# ----------------------------------------------------------------------------- MLflow

def default_tracking_uri(store: RunStore) -> str:
    return f"sqlite:///{(Path(store.home) / MLFLOW_DB).resolve()}"


def _artifact_root(uri: str) -> str | None:
    """Artifacts of an experiment this module creates on a SQLite URI: beside the database (MLflow's own
    default is ./mlruns under whatever folder the command ran in)."""
    if not uri.startswith("sqlite:///"):
        return None
    return (Path(uri[len("sqlite:///"):]).expanduser().resolve().parent / MLFLOW_ARTIFACTS).as_uri()


def _experiment_id(client, name: str, uri: str) -> str:
    exp = client.get_experiment_by_name(name)
    if exp is None:
        return client.create_experiment(name, artifact_location=_artifact_root(uri))
    if exp.lifecycle_stage == "deleted":
        client.restore_experiment(exp.experiment_id)
    return exp.experiment_id


def _drop_earlier(client, experiment_id: str, store: RunStore, run_id: int) -> bool:
    found = client.search_runs([experiment_id], filter_string=f"tags.`mmoe.run_id` = '{int(run_id)}'")
    earlier = [r for r in found if r.data.tags.get("mmoe.store") == str(store.home)]
    for r in earlier:
        client.delete_run(r.info.run_id)
    return bool(earlier)


def _chunks(items: Sequence, n: int):
    for i in range(0, len(items), n):
        yield items[i:i + n]


def _log_mlflow(client, experiment_id: str, store: RunStore, rec: RunRecord) -> Tracked:
    from mlflow.entities import Metric, Param

    replaced = _drop_earlier(client, experiment_id, store, rec.id)
    start = _ms(rec.started_at) or _ms(rec.created_at) or int(time.time() * 1000)
    tags = {"mmoe.run_id": str(rec.id), "mmoe.store": str(store.home), "mmoe.status": rec.status,
            "mmoe.arch": str(rec.arch or ""), "mmoe.dataset": str(rec.dataset or "")}
    if rec.experiment_id is not None:
        tags["mmoe.experiment_id"] = str(rec.experiment_id)
    run = client.create_run(experiment_id, start_time=start, tags=tags, run_name=rec.name)
    rid = run.info.run_id
    params = [Param(k, v) for k, v in flat_params(rec).items()]
    for chunk in _chunks(params, _BATCH):
        client.log_batch(rid, params=chunk)
    series = metric_series(store, rec.id)
    for chunk in _chunks([Metric(k, v, start, step) for k, step, v in series], 1000):
        client.log_batch(rid, metrics=chunk)
    notes = _model_note(store, rec)
    with tempfile.TemporaryDirectory(prefix="mmoe-mlflow-") as tmp:
        for name in MODEL_FILES:
            if store.has_artifact(rec.id, name):
                client.log_artifact(rid, str(store.artifact_dir(rec.id) / name), "model")
        summary = gate_summary(store, rec.id)
        if summary is not None:
            path = Path(tmp) / GATE_SUMMARY
            summary.to_csv(path, index=False)
            client.log_artifact(rid, str(path))
        else:
            notes.append("no gate summary: the run stored no gate weights")
    client.set_terminated(rid, MLFLOW_STATUS.get(rec.status, "FINISHED"), end_time=_ms(rec.finished_at))
    return Tracked(rec.id, rid, len(series), replaced, notes)


def export_mlflow(store: RunStore, run_ids: Iterable[int], tracking_uri: str | None = None,
                  experiment: str | None = None) -> TrackingReport:
    """Each run into MLflow (see the module docstring). Raises ``MissingExtra`` when MLflow is not installed,
    ``TrackingError`` / ``StoreError`` with one line otherwise."""
    require("mlflow", "Exporting to MLflow")
    recs = _records(store, run_ids)
    uri = tracking_uri or default_tracking_uri(store)
    name = experiment or DEFAULT_EXPERIMENT
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        with _quiet("mlflow", "alembic", "sqlalchemy"):
            client = MlflowClient(tracking_uri=uri)
            exp_id = _experiment_id(client, name, uri)
            done = [_log_mlflow(client, exp_id, store, rec) for rec in recs]
    except (MlflowException, OSError) as e:
        raise TrackingError(f"MLflow at {uri} refused the export ({type(e).__name__}: {one_line(e)})") from None
    except Exception as e:   # SQLAlchemy's errors (an unwritable database folder), the URI's scheme, ...
        raise TrackingError(f"MLflow at {uri} could not be used ({type(e).__name__}: {one_line(e)})") from None
    return TrackingReport("mlflow", uri, done, name)


# ----------------------------------------------------------------------------- TensorBoard

def default_logdir(store: RunStore) -> Path:
    return Path(store.home) / TENSORBOARD_DIR


def run_folder(rec: RunRecord) -> str:
    slug = "".join(c if c.isalnum() or c in "-_." else "-" for c in rec.name)[:40].strip(".") or "run"
    return f"run{rec.id}-{slug}"


def _log_tensorboard(logdir: Path, store: RunStore, rec: RunRecord) -> Tracked:
    from torch.utils.tensorboard import SummaryWriter

    folder = logdir / run_folder(rec)
    earlier = list(folder.glob("events.out.tfevents.*")) if folder.is_dir() else []
    for f in earlier:
        f.unlink()
    series = metric_series(store, rec.id)
    start = (_ms(rec.started_at) or _ms(rec.created_at) or int(time.time() * 1000)) / 1000
    writer = SummaryWriter(log_dir=str(folder))
    try:
        for key, step, value in series:
            writer.add_scalar(key, value, global_step=step, walltime=start)
        settings = "\n".join(f"    {k} = {v}" for k, v in flat_params(rec).items())
        writer.add_text("settings", f"run {rec.id} ({rec.status}, {rec.arch}, on {rec.dataset})\n\n{settings}",
                        global_step=0, walltime=start)
    finally:
        writer.close()
    return Tracked(rec.id, str(folder), len(series), bool(earlier))


def export_tensorboard(store: RunStore, run_ids: Iterable[int], logdir=None) -> TrackingReport:
    """Each run's metrics as TensorBoard scalars in ``logdir/run<id>-<name>`` (see the module docstring)."""
    require("tensorboard", "Exporting to TensorBoard")
    recs = _records(store, run_ids)
    root = Path(logdir).expanduser() if logdir else default_logdir(store)
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=root):
            pass
        done = [_log_tensorboard(root, store, rec) for rec in recs]
    except OSError as e:
        raise TrackingError(f"--logdir {root}: cannot write there ({e.strerror or one_line(e)}); "
                            "give a folder you may write") from None
    return TrackingReport("tensorboard", str(root), done)
