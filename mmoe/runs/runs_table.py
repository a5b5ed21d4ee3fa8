"""The runs table: one row per run with flat columns (``RunStore.runs_frame``), what the dashboard's
run lists and pickers show."""
from __future__ import annotations

import pandas as pd


class RunsTableIO:
    """The runs-table method of ``RunStore`` (which provides ``list_runs``)."""

    def runs_frame(self) -> pd.DataFrame:
        """One row per run (newest first) with flat columns for the runs table.

        Columns: id, name, status, arch, dataset, tasks, created_at, started_at, finished_at,
        epochs, best_epoch, train_seconds, samples_per_second, error, experts, top_k,
        expert_hidden, lr, batch_size, stop_reason, experiment_id, then ``metric:<task>:<name>`` for every final metric.
        """
        base = ["id", "name", "status", "arch", "dataset", "tasks", "created_at", "started_at",
                "finished_at", "epochs", "best_epoch", "train_seconds", "samples_per_second", "error",
                "experts", "top_k", "expert_hidden", "lr", "batch_size", "stop_reason", "experiment_id"]
        rows = []
        metric_cols: set[str] = set()
        for r in self.list_runs():
            mc, tc = r.model_config, r.train_config
            eh = mc.get("expert_hidden")
            row = {"id": r.id, "name": r.name, "status": r.status, "arch": r.arch, "dataset": r.dataset,
                   "tasks": ", ".join(r.tasks), "created_at": r.created_at, "started_at": r.started_at,
                   "finished_at": r.finished_at, "epochs": r.epochs, "best_epoch": r.best_epoch,
                   "train_seconds": r.train_seconds, "samples_per_second": r.samples_per_second,
                   "error": r.error, "experts": mc.get("num_experts"), "top_k": mc.get("top_k"),
                   "expert_hidden": ",".join(map(str, eh)) if isinstance(eh, (list, tuple)) else eh,
                   "lr": tc.get("lr"), "batch_size": tc.get("batch_size"), "stop_reason": r.stop_reason,
                   "experiment_id": r.experiment_id}
            for task, named in (r.final_metrics or {}).items():
                for metric, value in named.items():
                    col = f"metric:{task}:{metric}"
                    metric_cols.add(col)
                    row[col] = value
            rows.append(row)
        cols = base + sorted(metric_cols)
        df = pd.DataFrame(rows, columns=cols)
        for col in sorted(metric_cols) + ["train_seconds", "samples_per_second", "lr"]:
            df[col] = pd.to_numeric(df[col], errors="coerce").astype("float64")
        for col in ("epochs", "best_epoch", "experts", "top_k", "batch_size", "experiment_id"):
            df[col] = pd.to_numeric(df[col], errors="coerce").astype("Int64")
        df["id"] = df["id"].astype("int64")
        return df
