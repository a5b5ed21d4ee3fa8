"""``python -m mmoe train | runs | predict | export | synth | dashboard``: the dashboard's headless twin, and
``mmoe dashboard`` to start the packaged dashboard from any folder.

Exit status: 0 finished, 2 bad input (one clear line on stderr, no traceback; also a damaged or
read-only run store, a damaged artifact), 3 training failed or diverged, 130 cancelled with Ctrl-C
or SIGTERM (``mmoe.runs.signals``). With ``--json`` the last line on stdout is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import threading
import time
from pathlib import Path

from mmoe.runs.naming import optional_run_name
from mmoe.runs.signals import call_forwarding_signals, cancel_on_signals, exit_now

EXIT_OK, EXIT_BAD_INPUT, EXIT_FAILED, EXIT_CANCELLED = 0, 2, 3, 130


class BadInput(Exception):
    """Anything the user can fix: reported as one line on stderr with exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2 (argparse's default prints usage too)
        raise BadInput(f"{self.prog}: {message} (see --help)")


def _csv_list(text: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in text.split(",") if p.strip())


def _train_options(t: argparse.ArgumentParser) -> None:
    """The options of ``train`` (``experiment`` takes the same); --help shows every default."""
    t.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    t.add_argument("--data", required=True, help="CSV file (.csv or .csv.gz; , ; or tab separated)")
    t.add_argument("--task", action="append", required=True, metavar="COL[:KIND]",
                   help="target column and kind: binary | regression | multiclass | binary=VALUE (repeat per task)")
    t.add_argument("--arch", default="mmoe", help="mmoe | omoe | shared-bottom | cgc | ple")
    t.add_argument("--experts", type=int, default=8, help="number of experts (mmoe, omoe)")
    t.add_argument("--shared-experts", type=int, default=4, help="cgc, ple: shared experts per level")
    t.add_argument("--task-experts", type=int, default=2, help="cgc, ple: experts of each task per level")
    t.add_argument("--levels", type=int, default=None, help="ple: extraction levels (None: 2; cgc is 1)")
    t.add_argument("--expert-hidden", default="64,32", help="expert layer widths (shared-bottom: the bottom MLP)")
    t.add_argument("--gate-hidden", default="", help="gate MLP widths ('' : a linear gate, as in the paper)")
    t.add_argument("--tower-hidden", default="16", help="tower layer widths")
    t.add_argument("--top-k", type=int, default=None, help="route each row to its K best experts (None: dense)")
    t.add_argument("--dropout", type=float, default=0.0, help="dropout in experts and towers")
    t.add_argument("--aux-weight", type=float, default=0.01, help="weight of the load-balancing loss (top-k)")
    t.add_argument("--epochs", type=int, default=None,
                   help="epochs (None: from the training rows, for about 1,000 optimiser steps, 10 to 200 epochs)")
    t.add_argument("--batch-size", type=int, default=None,
                   help="rows per step (None: from the training rows, at least 20 steps per epoch, 16 to 1024)")
    t.add_argument("--lr", type=float, default=1e-3, help="learning rate")
    t.add_argument("--weight-decay", type=float, default=0.0, help="weight decay")
    t.add_argument("--optimizer", default="adam", help="adam | adamw")
    t.add_argument("--task-weighting", default="fixed",
                   help="fixed | uncertainty (learned, Kendall et al.) | gradnorm (learned, Chen et al.)")
    t.add_argument("--gradnorm-alpha", type=float, default=1.5,
                   help="GradNorm's asymmetry: 0 evens the tasks' gradient norms, more lifts slow tasks harder "
                        "(the paper: 1.5 on tasks of different complexity, 0.12 on tasks alike)")
    t.add_argument("--pos-weight", action="append", default=[], metavar="COL=W",
                   help="weight of a binary task's positive rows in its loss: a number, or balanced (negatives / "
                        "positives of the training split); without COL= for every binary task (repeatable)")
    t.add_argument("--task-weight", action="append", default=[], metavar="COL=W", help="fixed loss weight of a task")
    t.add_argument("--patience", type=int, default=None, help="early stopping patience in epochs (None: off)")
    t.add_argument("--seed", type=int, default=0, help="seeds the split, the initial weights and the batch order")
    t.add_argument("--split-seed", type=int, default=None, help="seeds the split alone (None: --seed)")
    t.add_argument("--device", default="auto", help="auto | cpu | cuda")
    t.add_argument("--threads", type=int, default=None, help="CPU threads (None: the idle cores, or $MMOE_THREADS)")
    t.add_argument("--precision", default="auto",
                   help="auto (bf16 autocast on CUDA and on CPUs with native bf16) | fp32 | bf16")
    t.add_argument("--val-fraction", type=float, default=0.2, help="share of rows for validation")
    t.add_argument("--test-fraction", type=float, default=0.0, help="share of rows held out as a test split")
    t.add_argument("--drop", type=_csv_list, default=(), help="columns not to use, comma separated")
    t.add_argument("--features", type=_csv_list, default=None, help="use only these feature columns (None: all usable)")
    t.add_argument("--kind", action="append", default=[], metavar="COL=KIND",
                   help="override a column's kind: numeric | categorical | identifier | constant")
    t.add_argument("--store", default=None, help="run store folder (None: $MMOE_HOME or ./runs)")
    t.add_argument("--name", default=None, help="run name (None: run-<id>)")
    t.add_argument("--stream", action="store_true",
                   help="a table larger than memory: read in blocks, prepared once into a cache in the store "
                        "(a Parquet file or folder is always streamed)")
    t.add_argument("--json", action="store_true", help="print a JSON summary as the last line")
    t.add_argument("--quiet", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m mmoe", description="Multi-task mixture-of-experts on tabular data.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    t = sub.add_parser("train", help="train a model on a CSV and store the run")
    _train_options(t)

    e = sub.add_parser("experiment", help="train a grid of settings x seeds as one experiment",
                       description="Every train option, plus --grid KEY=V1,V2 (repeatable; KEY is a train option "
                                   "without its dashes; separate values with '/' when they contain commas, e.g. "
                                   "expert-hidden=64,32/128) and --seeds N. Every setting gets the same seeds "
                                   "(--seed, --seed+1, ...), so differences are paired.")
    _train_options(e)
    e.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2", help="a setting to sweep")
    e.add_argument("--seeds", type=int, default=3, help="seeds per setting (default 3)")

    pp = sub.add_parser("paper", help="the MMoE paper's experiments: synthetic correlations, or census-income",
                        description="Ma et al. (KDD 2018): MMoE vs OMoE vs Shared-Bottom (and CGC, PLE) at comparable "
                                    "parameter counts, on two regression tasks of controlled correlation (default) "
                                    "or on census-income (--census).")
    pp.add_argument("--correlations", default="0.5,0.9,1.0", help="task correlations, comma separated")
    pp.add_argument("--archs", default="mmoe,omoe,shared-bottom,cgc,ple", help="architectures, comma separated")
    pp.add_argument("--seeds", type=int, default=None, help="seeds per setting")
    pp.add_argument("--rows", type=int, default=None, help="rows of synthetic data per run")
    pp.add_argument("--epochs", type=int, default=None)
    pp.add_argument("--census", nargs="?", const="", default=None, metavar="FILE",
                    help="the census-income experiment instead (default file: the packaged 15,000-row sample)")
    pp.add_argument("--device", default="auto")
    pp.add_argument("--threads", type=int, default=None)
    pp.add_argument("--store", default=None)
    pp.add_argument("--name", default=None)
    pp.add_argument("--json", action="store_true")
    pp.add_argument("--quiet", action="store_true", help="no per-run progress lines")

    r = sub.add_parser("runs", help="list stored runs")
    r.add_argument("--store", default=None)
    r.add_argument("--json", action="store_true")
    r.add_argument("--experiments", action="store_true", help="list experiments instead of runs")
    r.add_argument("--repair", action="store_true", help="rebuild a damaged or lost index from the run folders")

    pr = sub.add_parser("predict", help="score a CSV with a stored run")
    pr.add_argument("--run", required=True, type=int)
    pr.add_argument("--data", required=True)
    pr.add_argument("--out", required=True)
    pr.add_argument("--store", default=None)
    pr.add_argument("--device", default="cpu")
    pr.add_argument("--backend", default="torch", choices=("torch", "onnx"),
                    help="what computes the model: torch, or onnxruntime on its ONNX graph (CPU; needs mmoe[onnx])")
    pr.add_argument("--json", action="store_true")

    x = sub.add_parser("export", help="a run's model as ONNX, or runs into MLflow / TensorBoard",
                       description="--format onnx --out FILE [--gates] | --to mlflow [--tracking-uri URI] "
                                   "[--experiment NAME] | --to tensorboard [--logdir DIR] (see mmoe.runs.exports)")
    x.add_argument("--run", required=True, type=int, action="append", help="run id (repeat for --to)")
    x.add_argument("--format", default=None, help="onnx: the model as an ONNX graph, its preprocessing beside it")
    x.add_argument("--out", default=None, help="the .onnx file (an existing one is replaced atomically)")
    x.add_argument("--gates", action="store_true", help="each task's gate weights as outputs too")
    x.add_argument("--to", default=None, help="mlflow | tensorboard")
    x.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (default sqlite:///<store>/mlflow.db)")
    x.add_argument("--experiment", default=None, help="MLflow experiment (default: MMoE Lab)")
    x.add_argument("--logdir", default=None, help="TensorBoard folder (default <store>/tensorboard)")
    x.add_argument("--store", default=None)
    x.add_argument("--json", action="store_true")

    d = sub.add_parser("dashboard", help="start the dashboard (the packaged Streamlit app) from any folder",
                       description="Start the MMoE Lab dashboard. Options not listed here go to streamlit run "
                                   "(e.g. --server.address 0.0.0.0).")
    d.add_argument("--store", default=None, help="run store folder (default $MMOE_HOME or ./runs)")
    d.add_argument("--port", type=int, default=8501)

    s = sub.add_parser("synth", help="write the paper's synthetic two-task data")
    s.add_argument("--correlation", type=float, default=0.5)
    s.add_argument("--rows", type=int, default=10_000)
    s.add_argument("--features", type=int, default=100)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", required=True)
    return p


def _json_line(obj) -> str:
    """``obj`` as one line of standard JSON, what every ``--json`` prints: NaN and infinities (an AUC
    of a one-class split, a diverged loss) become null, which json.dumps would write as bare NaN."""
    def clean(x):
        if hasattr(x, "item") and type(x).__module__ == "numpy":   # numpy scalars
            x = x.item()
        if isinstance(x, float) and not math.isfinite(x):
            return None
        if isinstance(x, dict):
            return {str(k): clean(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [clean(v) for v in x]
        return x
    return json.dumps(clean(obj), default=str, allow_nan=False)


def _pairs(items: list[str], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        if "=" not in item:
            raise BadInput(f"{what} {item!r}: write COL=VALUE")
        k, v = item.rsplit("=", 1)
        out[k.strip()] = v.strip()
    return out


def _configs(a):
    """The train options -> (DataConfig, ModelConfig, TrainConfig); ``--seed`` seeds the split and the run."""
    from mmoe.config import DataConfig, ModelConfig, TaskSpec, TrainConfig

    weights = {k: float(v) for k, v in _pairs(a.task_weight, "--task-weight").items()} if a.task_weight else {}
    tasks = []
    for text in a.task:
        spec = TaskSpec.parse(text)
        if spec.column in weights:
            spec = TaskSpec(spec.column, spec.kind, spec.positive, weights.pop(spec.column))
        tasks.append(spec)
    if weights:
        raise BadInput(f"--task-weight names {sorted(weights)}, which are not tasks")
    dc = DataConfig(tasks=tuple(tasks), features=a.features, drop=a.drop, kind_overrides=_pairs(a.kind, "--kind"),
                    val_fraction=a.val_fraction, test_fraction=a.test_fraction,
                    seed=a.seed if a.split_seed is None else a.split_seed)
    mc = ModelConfig(arch=a.arch, num_experts=a.experts, expert_hidden=a.expert_hidden, gate_hidden=a.gate_hidden,
                     tower_hidden=a.tower_hidden, top_k=a.top_k, dropout=a.dropout, aux_loss_weight=a.aux_weight,
                     shared_experts=a.shared_experts, task_experts=a.task_experts, levels=a.levels)
    tc = TrainConfig(epochs=a.epochs, batch_size=a.batch_size, lr=a.lr, weight_decay=a.weight_decay,
                     optimizer=a.optimizer, task_weighting=a.task_weighting, early_stopping_patience=a.patience,
                     device=a.device, seed=a.seed, threads=a.threads, gradnorm_alpha=a.gradnorm_alpha,
                     pos_weight=TrainConfig.parse_pos_weight(a.pos_weight, tasks),
                     precision=a.precision)
    tc.check_tasks(tasks)     # a pos_weight names binary tasks only
    return dc, mc, tc


def _check_device(device: str) -> None:
    if device == "cuda":
        from mmoe.training import resolve_device
        try:
            resolve_device("cuda")
        except ValueError as e:
            raise BadInput(str(e)) from None


def _starts_with(path: Path, magic: bytes) -> bool:
    with open(path, "rb") as f:
        return f.read(len(magic)) == magic


def _data_path(text: str) -> Path:
    path = Path(text)
    if not path.exists():
        raise BadInput(f"--data {text}: no such file; give the path of a CSV file")
    return path


def cmd_train(a) -> int:
    from mmoe.runs.progress import ProgressBar
    from mmoe.runs.runner import DataSource, run_training
    from mmoe.runs.store import RunStore

    a.name = optional_run_name(a.name)
    path = _data_path(a.data)
    dc, mc, tc = _configs(a)
    _check_device(tc.device)
    from mmoe.training.distributed import join_from_env, leave

    stream = a.stream or path.is_dir() or _starts_with(path, b"PAR1")     # Parquet: always streamed
    world = join_from_env(tc.device)      # under torchrun: one of several processes training one model
    try:
        store = RunStore(a.store) if world is None or world.leader else None
        with cancel_on_signals(threading.Event()) as cancel:
            summary = run_training(DataSource(path, dc, stream=stream, store=a.store), mc, tc, store=store,
                                   name=a.name, dataset=path.name,
                                   callbacks=[ProgressBar(not a.quiet and sys.stderr.isatty() and store is not None)],
                                   cancel_event=cancel)
    except BaseException:
        leave(together=False)
        raise
    leave()
    if store is None:                     # not rank 0: rank 0 reports and stores the run
        return EXIT_CANCELLED if summary.status == "cancelled" else EXIT_OK if summary.status == "finished" \
            else EXIT_FAILED
    for w in summary.warnings:
        print(f"warning: {w}", file=sys.stderr)
    if summary.run_id is not None and summary.status == "finished":
        from mmoe.runs.verdicts import no_better_than_baseline

        for flag in no_better_than_baseline(store.get_run(summary.run_id)):
            print(f"warning: no better than a constant prediction: {flag}", file=sys.stderr)
    if not a.json:
        on = f" on {summary.world_size} processes" if summary.world_size > 1 else ""
        print(f"{summary.status}: {summary.stop_reason}" if summary.run_id is None else
              f"run {summary.run_id} {summary.status}{on} after {summary.epochs} epochs "
              f"({summary.train_seconds:.1f} s, {summary.samples_per_second:,.0f} samples/s on {summary.device}, "
              f"{summary.step} step): {summary.stop_reason}")
        for task, m in summary.metrics.items():
            print(f"  {task}: " + "  ".join(f"{k}={v:.4f}" for k, v in m.items()))
    else:
        print(_json_line({k: getattr(summary, k) for k in (
            "run_id", "status", "epochs", "train_seconds", "samples_per_second", "metrics", "message",
            "stop_reason", "schedule", "warnings", "world_size", "device", "step")}))
    from mmoe.runs.status import ENDED_BADLY

    if summary.status in ENDED_BADLY:
        print(f"error: run {summary.run_id} {summary.status}: {summary.message}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_CANCELLED if summary.status == "cancelled" else EXIT_OK


def _run_experiment(exp, a, store) -> int:
    """Run an experiment in this process (Ctrl-C or SIGTERM cancels it) and print its summary."""
    from mmoe.runs.experiments import run_experiment, summarize
    from mmoe.tasks import headline_metric
    from mmoe.views.experiments import experiment_report
    from mmoe.views.listing import fmt_metric

    def progress(p) -> None:
        if p.last is not None and not a.quiet:
            m = "  ".join(f"{t}: {k}={fmt_metric(ms[k])}" for t, ms in p.last.metrics.items()
                          if (k := headline_metric(ms)))
            print(f"run {p.runs_done}/{p.runs_total} (#{p.run_id}) {p.last.status}: {m}", file=sys.stderr)

    started = time.perf_counter()
    with cancel_on_signals(threading.Event()) as cancel:
        exp_id = run_experiment(exp, store, cancel_event=cancel, on_progress=progress)
    summary = summarize(store, exp_id)
    summary["seconds"] = round(time.perf_counter() - started, 2)
    if a.json:
        print(_json_line(summary))
    else:
        print("\n".join(experiment_report(summary)))
    if summary["status"] == "cancelled":
        return EXIT_CANCELLED
    statuses = [st for c in summary["configs"] for st in c["statuses"]]
    return EXIT_FAILED if any(st in ("failed", "diverged") for st in statuses) else EXIT_OK


def cmd_experiment(a) -> int:
    from mmoe.runs.experiments import grid_experiment, parse_grid
    from mmoe.runs.runner import DataSource
    from mmoe.runs.store import RunStore

    a.name = optional_run_name(a.name)
    path = _data_path(a.data)
    if not 1 <= a.seeds <= 1000:
        raise BadInput(f"--seeds {a.seeds}: give between 1 and 1000 seeds")
    if a.stream or path.is_dir() or _starts_with(path, b"PAR1"):
        raise BadInput("experiment: --stream (and Parquet data) is not supported yet; run each setting with "
                       "train --stream, or experiment on a CSV sample that fits in memory")
    dc, mc, tc = _configs(a)
    _check_device(tc.device)
    exp = grid_experiment(DataSource(path, dc), mc, tc, parse_grid(a.grid), range(a.seed, a.seed + a.seeds),
                          name=a.name, dataset=path.name, split_follows_seed=a.split_seed is None)
    return _run_experiment(exp, a, RunStore(a.store))


def cmd_paper(a) -> int:
    import dataclasses

    from mmoe.runs.paper import (CENSUS_DEFAULTS, CENSUS_TRAIN, PAPER_DEFAULTS, PAPER_TRAIN, census_experiment,
                                 paper_experiment)
    from mmoe.runs.store import RunStore

    a.name = optional_run_name(a.name)
    _check_device(a.device)
    try:
        if a.census is not None:
            if a.rows is not None:
                raise BadInput("--rows is for the synthetic experiment; the census experiment uses the whole file")
            from mmoe.views.datasets import DATA_DIR
            path = _data_path(a.census) if a.census else DATA_DIR / "census_sample.csv.gz"
            tc = dataclasses.replace(CENSUS_TRAIN, device=a.device, threads=a.threads)
            exp = census_experiment(path, seeds=a.seeds or CENSUS_DEFAULTS["seeds"],
                                    epochs=a.epochs or CENSUS_DEFAULTS["epochs"], train=tc, name=a.name,
                                    archs=_csv_list(a.archs))
        else:
            corrs = _csv_list(a.correlations)
            try:
                corrs = [float(c) for c in corrs]
            except ValueError:
                raise BadInput(f"--correlations {a.correlations!r}: give numbers, e.g. 0.5,0.9,1.0") from None
            tc = dataclasses.replace(PAPER_TRAIN, device=a.device, threads=a.threads)
            exp = paper_experiment(corrs, seeds=a.seeds or PAPER_DEFAULTS["seeds"],
                                   rows=a.rows or PAPER_DEFAULTS["rows"], epochs=a.epochs or PAPER_DEFAULTS["epochs"],
                                   train=tc, name=a.name, archs=_csv_list(a.archs))
    except ValueError as e:
        raise BadInput(f"paper: {e}") from None
    return _run_experiment(exp, a, RunStore(a.store))


def cmd_runs(a) -> int:
    from mmoe.runs.housekeeping import store_notes
    from mmoe.runs.store import RunStore
    from mmoe.views.listing import experiment_lines, run_lines, run_records

    if a.repair:   # rebuild the index from the run folders
        from mmoe.runs.repair import repair_store
        report = repair_store(a.store)
        print(_json_line(report.to_dict()) if a.json else "\n".join(report.lines()))
        return EXIT_OK
    store = RunStore(a.store)
    for note in store_notes(store):   # read-only, stale temporary files removed
        print(note, file=sys.stderr)
    if a.experiments:
        exps = store.list_experiments()
        if a.json:
            from mmoe.runs.experiments import summarize
            print(_json_line([summarize(store, e.id) for e in exps]))
        else:
            print("\n".join(experiment_lines(store, exps)))
        return EXIT_OK
    runs = store.list_runs()
    print(_json_line(run_records(runs)) if a.json else "\n".join(run_lines(runs)))
    return EXIT_OK


def cmd_predict(a) -> int:
    from mmoe.data import read_csv
    from mmoe.runs.runner import predict_frame
    from mmoe.runs.store import RunStore

    store = RunStore(a.store)
    if not store.exists(a.run):
        raise BadInput(f"--run {a.run}: no such run in {store.home}; list runs with: python -m mmoe runs")
    path = Path(a.data)
    if not path.exists():
        raise BadInput(f"--data {a.data}: no such file")
    df = read_csv(path, min_rows=1)
    from mmoe.views.downloads import people_csv, readable_predictions

    out = readable_predictions(predict_frame(store, a.run, df, device=a.device, backend=a.backend))
    people_csv(out, a.out)
    msg = {"run_id": a.run, "rows": len(out), "out": str(a.out), "status": "finished"}
    print(_json_line(msg) if a.json else f"wrote {len(out)} rows with predictions of run {a.run} to {a.out}")
    return EXIT_OK


def cmd_export(a) -> int:
    from mmoe.runs.exports import ExportRequest, run_export
    from mmoe.runs.store import RunStore

    req = ExportRequest(a.run, a.format, a.to, a.out, a.gates, a.tracking_uri, a.experiment, a.logdir)
    report = run_export(RunStore(a.store), req)   # MissingExtra and ExportError are StoreErrors: exit 2
    print(_json_line(report.to_dict()) if a.json else "\n".join(report.lines()))
    return EXIT_OK


def cmd_synth(a) -> int:
    from mmoe.synthetic import paper_synthetic

    try:
        df = paper_synthetic(a.rows, a.correlation, n_features=a.features, seed=a.seed)
    except ValueError as e:
        raise BadInput(f"synth: {e}") from None
    df.to_csv(a.out, index=False)
    print(f"wrote {len(df)} rows (task correlation {a.correlation}) to {a.out}")
    return EXIT_OK


def cmd_dashboard(a, extra: list[str]) -> int:
    from mmoe.views.serve import dashboard_command, launch_message

    if not 0 < a.port < 65536:
        raise BadInput(f"--port {a.port}: give a port between 1 and 65535")
    env = dict(os.environ)
    if a.store is not None:
        env["MMOE_HOME"] = str(Path(a.store).expanduser().resolve())
    cmd = dashboard_command(a.port, extra, env)     # bound to 127.0.0.1 unless told otherwise
    if cmd is None:
        raise BadInput("the dashboard is not installed with this mmoe; pip install mmoe (or -e . in a checkout)")
    print(launch_message(cmd, a.port, env), file=sys.stderr)
    code = call_forwarding_signals(cmd, env=env)   # SIGTERM / Ctrl-C reach Streamlit, which stops cleanly
    return EXIT_OK if code in (-2, -15, 130, 143) else code


def run(argv: list[str] | None = None) -> None:
    """``python -m mmoe`` and the ``mmoe`` command: ``main``, then ``exit_now`` (no interpreter teardown)."""
    exit_now(main(argv))


def main(argv: list[str] | None = None) -> int:
    from mmoe.config import ConfigError
    from mmoe.data import DataError
    from mmoe.runs.store import StoreError

    try:
        a, extra = build_parser().parse_known_args(argv)
        if a.command == "dashboard":
            return cmd_dashboard(a, extra)
        if extra:
            raise BadInput(f"python -m mmoe {a.command}: unrecognized arguments: {' '.join(extra)} (see --help)")
        return {"train": cmd_train, "runs": cmd_runs, "predict": cmd_predict, "synth": cmd_synth,
                "experiment": cmd_experiment, "paper": cmd_paper, "export": cmd_export}[a.command](a)
    except (BadInput, ConfigError, DataError, StoreError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("cancelled", file=sys.stderr)
        return EXIT_CANCELLED
    except BrokenPipeError:
        return EXIT_OK
    except OSError as e:
        print(f"error: {e.strerror or e}: {getattr(e, 'filename', '') or ''}", file=sys.stderr)
        return EXIT_BAD_INPUT
