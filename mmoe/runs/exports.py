"""``python -m mmoe export``: one request, checked, carried out by the module that owns it.

    --format onnx --out FILE [--gates]             one run's model as ONNX (``mmoe.runs.onnx_export``)
    --to mlflow [--tracking-uri URI] [--experiment NAME]   runs into MLflow (``mmoe.runs.tracking``)
    --to tensorboard [--logdir DIR]                runs as TensorBoard scalars (``mmoe.runs.tracking``)

A request that mixes these, names no run or a run that is not in the store raises ``ExportError`` (one
line); a missing optional package raises ``MissingExtra`` (``mmoe.runs.extras``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from mmoe.runs.onnx_export import ExportError, export_onnx
from mmoe.runs.store import RunStore

FORMATS = ("onnx",)
TRACKERS = ("mlflow", "tensorboard")


@dataclass(frozen=True)
class ExportRequest:
    runs: Sequence[int]
    format: str | None = None          # onnx
    to: str | None = None              # mlflow | tensorboard
    out: str | None = None             # --format onnx: the .onnx file
    gates: bool = False                # --format onnx: gate outputs too
    tracking_uri: str | None = None    # --to mlflow
    experiment: str | None = None      # --to mlflow
    logdir: str | None = None          # --to tensorboard

    def problems(self) -> list[str]:
        """What is wrong with the combination of options, in words (empty: fine)."""
        if (self.format is None) == (self.to is None):
            return ["give either --format onnx --out FILE or --to mlflow|tensorboard"]
        if self.format is not None and self.format not in FORMATS:
            return [f"--format {self.format}: choose {' or '.join(FORMATS)}"]
        if self.to is not None and self.to not in TRACKERS:
            return [f"--to {self.to}: choose {' or '.join(TRACKERS)}"]
        wrong = []
        if self.format:
            if not self.out:
                wrong.append("--format onnx needs --out FILE (e.g. --out model.onnx)")
            if len(set(self.runs)) != 1:
                wrong.append("--format onnx exports one run: give --run once")
            wrong += [f"{flag} is for --to {to}" for flag, to, v in (("--tracking-uri", "mlflow", self.tracking_uri),
                      ("--experiment", "mlflow", self.experiment), ("--logdir", "tensorboard", self.logdir)) if v]
        else:
            wrong += [f"{flag} is for --format onnx" for flag, v in (("--out", self.out), ("--gates", self.gates)) if v]
            if self.to == "mlflow" and self.logdir:
                wrong.append("--logdir is for --to tensorboard")
            if self.to == "tensorboard" and (self.tracking_uri or self.experiment):
                wrong.append("--tracking-uri and --experiment are for --to mlflow")
        return wrong


def run_export(store: RunStore, req: ExportRequest):
    """Carry out ``req``; returns the report (``lines()`` for people, ``to_dict()`` for --json)."""
    wrong = req.problems()
    if wrong:
        raise ExportError("export: " + "; ".join(wrong))
    for rid in dict.fromkeys(req.runs):
        if not store.exists(rid):
            raise ExportError(f"--run {rid}: no such run in {store.home}; list runs with: python -m mmoe runs")
    if req.format == "onnx":
        return export_onnx(store, req.runs[0], req.out, gates=req.gates)
    from mmoe.runs.tracking import export_mlflow, export_tensorboard

    if req.to == "mlflow":
        return export_mlflow(store, req.runs, req.tracking_uri, req.experiment)
    return export_tensorboard(store, req.runs, req.logdir)
