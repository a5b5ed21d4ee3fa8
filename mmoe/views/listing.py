"""What ``python -m mmoe runs`` prints: the runs and experiments of a store as JSON records or text lines."""
from __future__ import annotations

import math

from mmoe.runs.naming import printable
from mmoe.tasks import PRIMARY_METRIC


def fmt_metric(v) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4f}"


def run_records(runs) -> list[dict]:
    """One JSON-ready record per stored run (``runs --json``)."""
    return [{"run_id": r.id, "name": r.name, "dataset": r.dataset, "arch": r.arch,
             "status": r.status, "created_at": r.created_at, "epochs": r.epochs,
             "train_seconds": r.train_seconds, "metrics": r.final_metrics, "error": r.error,
             "stop_reason": r.stop_reason, "experiment_id": r.experiment_id}
            for r in runs]


def run_lines(runs) -> list[str]:
    """The text table of ``runs``: a header, one line per run, and its stop reason under it."""
    if not runs:
        return ["no runs yet; train one with: python -m mmoe train --data FILE.csv --task COL"]
    lines = [f"{'id':>4}  {'status':<11} {'arch':<13} {'epochs':>6} {'seconds':>8}  {'name':<24} metrics"]
    for r in runs:
        metrics = printable("; ".join(f"{t}: " + " ".join(f"{k}={fmt_metric(v)}" for k, v in m.items()
                                                if k in PRIMARY_METRIC.values())
                            for t, m in (r.final_metrics or {}).items()))
        secs = f"{r.train_seconds:.1f}" if r.train_seconds else "-"
        lines.append(f"{r.id:>4}  {r.status:<11} {r.arch:<13} {r.epochs or 0:>6} {secs:>8}  "
                     f"{printable(r.name)[:24]:<24} {metrics}")
        if r.stop_reason:
            lines.append(f"{'':>6}{printable(r.stop_reason)}")
    return lines


def experiment_lines(store, exps) -> list[str]:
    """The text table of ``runs --experiments``."""
    if not exps:
        return ["no experiments yet; start one with: python -m mmoe experiment ... --grid KEY=V1,V2 --seeds N"]
    lines = []
    for e in exps:
        grid = " x ".join(f"{k} ({len(v)})" for k, v in e.spec.get("grid", [])) or "one setting"
        lines.append(f"{e.id:>4}  {e.status:<11} {len(store.experiment_runs(e.id)):>4} runs  {grid} x "
                     f"{len(e.seeds)} seeds  {printable(e.name)[:40]}")
    return lines
