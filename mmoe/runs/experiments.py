"""Experiments: a grid of settings x seeds, trained as one unit and summarised with confidence intervals.

    exp = Experiment(name, kind="grid", dataset="wine.csv", grid=[("arch", ["mmoe", "shared-bottom"])],
                     seeds=(0, 1, 2), points=(Point({"arch": "mmoe"}, data, mc, tc), ...))
    exp_id = run_experiment(exp, store)               # every point with every seed, stored as runs
    summary = summarize(store, exp_id)                # means, 95% intervals, paired differences

Every point gets the same seeds, so two points differ only in their settings: the differences are
paired (seed s of point b minus seed s of point a). A run's seed sets its initial weights and batch
order (``TrainConfig.seed``) and, with ``split_follows_seed`` (the CLI's ``--seed``), its validation
split too, so any member run trained alone with its stored settings gives the same numbers.

Runs go seed by seed (all points of seed 0, then of seed 1, ...): a table is prepared once per seed
and reused by every point that reads it the same way, and an experiment stopped half-way still has
comparable points. A run that diverges or fails is recorded and the others go on; cancelling stops
the run in progress and starts no more.

Intervals are Student-t intervals over seeds (scipy): mean +- t(0.975, n-1) * sd / sqrt(n), clipped to
the range the metric can take (an AUC interval ends at 1); paired differences are not clipped.
The baseline of a paired difference is the point with the first value of the first grid key and the
same values of the other keys (for one grid key: the first point).
"""
from __future__ import annotations

import dataclasses
import math
import threading
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence, Union

import numpy as np

from mmoe.config import ConfigError, DataConfig, ModelConfig, TrainConfig
from mmoe.data import PreparedData, prepare
from mmoe.runs.naming import fit_run_name
from mmoe.runs.runner import DataSource, RunSummary, run_training
from mmoe.runs.store import RunStore
from mmoe.tasks import DIAGNOSTIC_METRICS, METRIC_BOUNDS, METRIC_DIRECTIONS, PRIMARY_METRIC
from mmoe.training import Callback, resolve_schedule
from mmoe.training.schedule import MAX_EPOCHS

# what a point reads: a prepared table, a table with its DataConfig, or seed -> table (the paper
# draws fresh data for every seed)
PointData = Union[PreparedData, DataSource, Callable[[int], DataSource]]
DIAGNOSTICS = tuple(sorted(DIAGNOSTIC_METRICS))   # described, never ranked or differenced


@dataclass(frozen=True)
class Point:
    """One setting of the grid: its values (``{"arch": "mmoe", "lr": 0.001}``) and what it trains."""

    settings: Mapping[str, Any]
    data: Any   # PointData
    model_config: ModelConfig
    train_config: TrainConfig


@dataclass(frozen=True)
class Experiment:
    name: str | None
    kind: str                                   # grid | paper | census
    dataset: str
    grid: Sequence[tuple[str, Sequence[Any]]]   # [(key, values)], in the order given
    seeds: Sequence[int]
    points: Sequence[Point]
    split_follows_seed: bool = False            # the seed also draws the validation split (as --seed does)

    def __post_init__(self):
        if not self.points:
            raise ValueError("an experiment needs at least one point")
        if not self.seeds:
            raise ValueError("an experiment needs at least one seed (--seeds N with N >= 1)")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"the seeds {list(self.seeds)} repeat; give distinct seeds")

    @property
    def total_runs(self) -> int:
        return len(self.points) * len(self.seeds)

    @property
    def total_epochs(self) -> int:
        """All epochs of all runs (an automatic number of epochs counts as the most it can be)."""
        return sum(p.train_config.epochs or MAX_EPOCHS for p in self.points) * len(self.seeds)

    def resolved(self, n_train: int) -> "Experiment":
        """The experiment with each point's automatic batch size / epochs chosen for ``n_train`` rows."""
        points = tuple(dataclasses.replace(p, train_config=resolve_schedule(p.train_config, n_train))
                       for p in self.points)
        return dataclasses.replace(self, points=points)

    def spec(self) -> dict:
        """What the store keeps of it (JSON): the grid, the seeds and each point's settings and configs."""
        return {"grid": [[k, list(v)] for k, v in self.grid], "seeds": list(self.seeds),
                "split_follows_seed": self.split_follows_seed,
                "points": [{"settings": dict(p.settings), "model_config": p.model_config.to_dict(),
                            "train_config": p.train_config.to_dict()} for p in self.points]}


@dataclass(frozen=True)
class ExperimentProgress:
    """Published after each run starts and ends (and per epoch through ``run_callbacks``)."""

    experiment_id: int
    runs_done: int
    runs_total: int
    current: str            # "arch=mmoe · seed 1" of the run in progress ("" when none)
    run_id: int | None
    last: RunSummary | None = None


def settings_text(settings: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in settings.items()) or "base settings"


def _data_for(point: Point, seed: int, split_follows_seed: bool) -> tuple[Any, PreparedData | DataSource]:
    """(cache key, the table) of a point for one seed."""
    data = point.data
    if callable(data) and not isinstance(data, (PreparedData, DataSource)):
        data = data(seed)
        key_src: Any = ("generated", id(point.data), seed)
    else:
        key_src = id(data)
    if isinstance(data, DataSource):
        cfg = data.config
        if split_follows_seed:
            cfg = dataclasses.replace(cfg, seed=seed)
        return (key_src, repr(cfg.to_dict())), DataSource(data.source, cfg)
    return (key_src,), data


def run_experiment(exp: Experiment, store: RunStore, *, cancel_event: threading.Event | None = None,
                   on_progress: Callable[[ExperimentProgress], None] | None = None,
                   run_callbacks: Callable[[], Sequence[Callback]] | None = None,
                   on_created: Callable[[int], None] | None = None) -> int:
    """Train every point with every seed into ``store``; returns the experiment's id.

    Bad data raises ``DataError`` before anything is stored (the first table is prepared first)."""
    cancel_event = cancel_event or threading.Event()
    seeds = list(exp.seeds)
    cache: dict = {}
    first_key, first = _data_for(exp.points[0], seeds[0], exp.split_follows_seed)
    if isinstance(first, DataSource):
        first = cache[first_key] = prepare(first.source, first.config)
    exp = exp.resolved(len(first.splits["train"]))   # automatic schedules, from the first table
    exp_id = store.create_experiment(exp.name, kind=exp.kind, dataset=exp.dataset, spec=exp.spec())
    if on_created is not None:
        on_created(exp_id)
    done, status, failures = 0, "finished", 0
    try:
        for s_i, seed in enumerate(seeds):
            if s_i:
                cache = {}   # one seed's tables at a time
            for p_i, point in enumerate(exp.points):
                if cancel_event.is_set():
                    status = "cancelled"
                    break
                key, data = _data_for(point, seed, exp.split_follows_seed)
                if isinstance(data, DataSource):
                    if key not in cache:
                        cache[key] = prepare(data.source, data.config)
                    data = cache[key]
                label = f"{settings_text(point.settings)} · seed {seed}" if point.settings else f"seed {seed}"
                tc = dataclasses.replace(point.train_config, seed=seed)

                def created(run_id: int, label=label) -> None:
                    if on_progress is not None:
                        on_progress(ExperimentProgress(exp_id, done, exp.total_runs, label, run_id))

                summary = run_training(data, point.model_config, tc, store=store,
                                       name=fit_run_name(f"{exp.name or f'exp {exp_id}'} · {label}"),
                                       dataset=exp.dataset, callbacks=list(run_callbacks() if run_callbacks else ()),
                                       cancel_event=cancel_event, on_run_created=created,
                                       experiment=(exp_id, p_i))
                done += 1
                failures += summary.status in ("failed", "diverged")
                if on_progress is not None:
                    on_progress(ExperimentProgress(exp_id, done, exp.total_runs, "", summary.run_id, summary))
                if summary.status == "cancelled":
                    status = "cancelled"
                    break
            if status == "cancelled":
                break
    except BaseException as e:
        store.finish_experiment(exp_id, "failed", error=f"{type(e).__name__}: {e}")
        raise
    note = f"{failures} of {done} runs failed or diverged" if failures else None
    store.finish_experiment(exp_id, status, error=note)
    return exp_id


# ----------------------------------------------------------------------------- grids of settings

# what a grid may sweep: the train option's name (without dashes) -> (config, field, value type)
SWEEPABLE: dict[str, tuple[str, str, type]] = {
    "arch": ("model", "arch", str), "experts": ("model", "num_experts", int),
    "expert-hidden": ("model", "expert_hidden", str), "gate-hidden": ("model", "gate_hidden", str),
    "tower-hidden": ("model", "tower_hidden", str), "top-k": ("model", "top_k", int),
    "dropout": ("model", "dropout", float), "aux-weight": ("model", "aux_loss_weight", float),
    "shared-experts": ("model", "shared_experts", int), "task-experts": ("model", "task_experts", int),
    "levels": ("model", "levels", int),
    "epochs": ("train", "epochs", int), "batch-size": ("train", "batch_size", int), "lr": ("train", "lr", float),
    "weight-decay": ("train", "weight_decay", float), "optimizer": ("train", "optimizer", str),
    "task-weighting": ("train", "task_weighting", str), "patience": ("train", "early_stopping_patience", int),
    "precision": ("train", "precision", str), "val-fraction": ("data", "val_fraction", float),
    "gradnorm-alpha": ("train", "gradnorm_alpha", float),
    "pos-weight": ("train", "pos_weight", str),     # one value for every binary task: a number, balanced or none
}


def parse_grid(items: Sequence[str]) -> list[tuple[str, list]]:
    """["arch=mmoe,omoe", "expert-hidden=64,32/128"] -> [("arch", ["mmoe", "omoe"]), ("expert-hidden",
    ["64,32", "128"])]: values split on "/" when there is one (layer widths hold commas), else on ","."""
    grid: list[tuple[str, list]] = []
    for item in items:
        key, sep, values = str(item).partition("=")
        key = key.strip().lstrip("-")
        if not sep or key not in SWEEPABLE:
            raise ConfigError(f"--grid {item!r}: write KEY=V1,V2 with KEY one of {', '.join(SWEEPABLE)}")
        if any(k == key for k, _ in grid):
            raise ConfigError(f"--grid {key} is given twice; give each setting once")
        texts = [v.strip() for v in values.split("/" if "/" in values else ",")]
        kind = SWEEPABLE[key][2]
        try:
            typed = [kind(t) if t or kind is str else None for t in texts]
        except ValueError:
            raise ConfigError(f"--grid {item!r}: {key} takes {kind.__name__} values") from None
        if len(set(map(str, typed))) != len(typed):
            raise ConfigError(f"--grid {item!r}: a value repeats")
        grid.append((key, typed))
    return grid


def apply_settings(settings: Mapping[str, Any], dc: DataConfig, mc: ModelConfig, tc: TrainConfig):
    """The base configs with a point's settings put in; a bad value raises ConfigError naming the setting."""
    changes: dict[str, dict] = {"data": {}, "model": {}, "train": {}}
    for key, value in settings.items():
        where, field_name, _ = SWEEPABLE[key]
        if key == "pos-weight":      # --grid pos-weight=none,balanced,5: the same setting for each binary task
            value = {} if str(value).lower() in ("none", "") else \
                {t.column: value for t in dc.tasks if t.kind == "binary"}
        changes[where][field_name] = value
    try:
        return (dataclasses.replace(dc, **changes["data"]), dataclasses.replace(mc, **changes["model"]),
                dataclasses.replace(tc, **changes["train"]))
    except ValueError as e:
        raise ConfigError(f"{settings_text(settings)}: {e}") from None


def grid_experiment(data: PreparedData | DataSource, model_config: ModelConfig, train_config: TrainConfig,
                    grid: Sequence[tuple[str, Sequence[Any]]], seeds: Sequence[int], *, name: str | None = None,
                    dataset: str = "data", split_follows_seed: bool = False) -> Experiment:
    """Every combination of the grid's values (first key slowest) on one table, with the same seeds."""
    combos: list[dict] = [{}]
    for key, values in grid:
        if SWEEPABLE.get(key, ("",))[0] == "data" and isinstance(data, PreparedData):
            raise ConfigError(f"{key} changes how the table is prepared; sweep it from a file, not a prepared table")
        combos = [{**c, key: v} for c in combos for v in values]
    base_dc = data.config
    points = []
    for settings in combos:
        dc, mc, tc = apply_settings(settings, base_dc, model_config, train_config)
        src = DataSource(data.source, dc) if isinstance(data, DataSource) else data
        points.append(Point(settings, src, mc, tc))
    exp = Experiment(name, "grid", dataset, [(k, list(v)) for k, v in grid], tuple(seeds), points,
                     split_follows_seed=split_follows_seed)
    return exp.resolved(len(data.splits["train"])) if isinstance(data, PreparedData) else exp


# ----------------------------------------------------------------------------- statistics

def mean_ci(values: Sequence[float | None], level: float = 0.95) -> dict:
    """{"mean", "ci95": [lo, hi] | None, "n", "sd"} over the finite values (Student-t interval)."""
    from scipy import stats

    x = np.array([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    n = int(x.size)
    if n == 0:
        return {"mean": None, "ci95": None, "n": 0, "sd": None}
    mean = float(x.mean())
    if n < 2:
        return {"mean": mean, "ci95": None, "n": 1, "sd": None}
    sd = float(x.std(ddof=1))
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n)
    return {"mean": mean, "ci95": [mean - half, mean + half], "n": n, "sd": sd}


def _kinds(runs) -> dict[str, str]:
    for r in runs:
        tasks = r.data_config.get("tasks", [])
        if tasks:
            return {t["column"]: t.get("kind", "binary") for t in tasks}
    return {}


def _baseline_index(points: list[dict], grid: list) -> list[int | None]:
    """For each point, the index of the point it is compared with (None for a baseline itself)."""
    if not grid:
        return [None] + [0] * (len(points) - 1)
    first_key, first_value = grid[0][0], grid[0][1][0]
    out: list[int | None] = []
    for p in points:
        s = p["settings"]
        if s.get(first_key) == first_value:
            out.append(None)
            continue
        want = {**s, first_key: first_value}
        out.append(next((j for j, q in enumerate(points) if q["settings"] == want), None))
    return out


def _differing(a: Mapping, b: Mapping) -> tuple[str, str]:
    keys = [k for k in b if a.get(k) != b.get(k)] or list(b)

    def text(s: Mapping) -> str:   # an architecture by its name alone ("omoe"), other settings as key=value
        return ", ".join(str(s.get(k)) if k == "arch" else f"{k}={s.get(k)}" for k in keys)
    return text(a), text(b)


def verdict(diff: dict, direction: str | None, n_seeds: int) -> str:
    """A paired difference (b - a) in words: which is better, or that no difference was detected."""
    ci = diff.get("ci95")
    if diff.get("mean") is None:
        return "no paired runs to compare"
    if ci is None:
        return "one seed only: no interval, so no difference can be claimed (use 2 or more seeds)"
    if ci[0] <= 0 <= ci[1]:
        return f"no difference detected with {n_seeds} seeds (the 95% interval contains 0)"
    better_b = (diff["mean"] > 0) == (direction != "min")
    a, b = _differing(diff.get("a", {}), diff.get("b", {}))
    return f"{b if better_b else a} is better (the 95% interval excludes 0)"


def paired_differences(configs: list[dict], grid: list, metrics: Mapping[str, str]) -> list[dict]:
    """Each point against its baseline, per task in ``metrics`` (task -> the metric to difference):
    the per-seed differences b - a, their mean and 95% interval, and the verdict in words. ``configs``
    are ``summarize``'s (settings, and per task and metric the values in seed order)."""
    out = []
    for i, base in enumerate(_baseline_index(configs, grid)):
        if base is None:
            continue
        for task, metric in metrics.items():
            n = len(configs[i]["seeds"])
            a = configs[base]["metrics"].get(task, {}).get(metric, {}).get("values", [None] * n)
            b = configs[i]["metrics"].get(task, {}).get(metric, {}).get("values", [None] * n)
            paired = [(y - x) if x is not None and y is not None else None for x, y in zip(a, b)]
            d = {"a": configs[base]["settings"], "b": configs[i]["settings"], "task": task, "metric": metric,
                 "direction": METRIC_DIRECTIONS.get(metric), **mean_ci(paired), "values": paired}
            d["verdict"] = verdict(d, d["direction"], d["n"])
            out.append(d)
    return out


def summarize(store: RunStore, exp_id: int) -> dict:
    """The experiment as the CLI's JSON: per point the seeds, runs and metrics (mean, ci95, values in
    seed order; None where that seed's run did not finish), and the paired differences of each task's
    primary metric against the point's baseline."""
    exp = store.get_experiment(exp_id)
    runs = store.experiment_runs(exp_id)
    seeds = exp.seeds
    points = exp.points
    kinds = _kinds(runs)
    by_point: dict[int, dict[int, Any]] = {i: {} for i in range(len(points))}
    for r in runs:
        if r.experiment_point is not None and r.experiment_point in by_point:
            by_point[r.experiment_point][int(r.train_config.get("seed", -1))] = r
    configs = []
    for i, p in enumerate(points):
        members = by_point[i]
        names = sorted({(t, m) for r in members.values() for t, ms in (r.final_metrics or {}).items() for m in ms})
        metrics: dict[str, dict[str, dict]] = {}
        for task, metric in names:
            values = [(members[s].final_metrics.get(task, {}).get(metric)
                       if s in members and members[s].status == "finished" else None) for s in seeds]
            values = [None if v is None or not math.isfinite(v) else float(v) for v in values]
            stat = mean_ci(values)
            lo, hi = METRIC_BOUNDS.get(metric, (None, None))
            if stat["ci95"] is not None:   # e.g. an AUC interval never reaches above 1
                stat["ci95"] = [max(stat["ci95"][0], lo) if lo is not None else stat["ci95"][0],
                                min(stat["ci95"][1], hi) if hi is not None else stat["ci95"][1]]
            metrics.setdefault(task, {})[metric] = {**stat, "values": values}
        configs.append({"settings": dict(p["settings"]), "seeds": list(seeds),
                        "runs": [members[s].id if s in members else None for s in seeds],
                        "statuses": [members[s].status if s in members else None for s in seeds],
                        "metrics": metrics})
    differences = paired_differences(configs, exp.spec.get("grid", []),
                                     {task: PRIMARY_METRIC[kind] for task, kind in kinds.items()})
    return {"experiment_id": exp.id, "name": exp.name, "kind": exp.kind, "status": exp.status,
            "dataset": exp.dataset, "error": exp.error, "grid": exp.spec.get("grid", []),
            "runs": [r.id for r in runs], "configs": configs, "differences": differences}


# ----------------------------------------------------------------------------- as a background job

def submit_experiment(manager, exp: Experiment, *, store_home=None):
    """Queue the whole experiment as one job on its device's queue (what the dashboard's buttons do).

    The job's progress covers every run: ``epoch``/``epochs`` count the epochs of all runs, ``extra``
    holds experiment_id, runs_done, runs_total and current (the run in progress); ``run_id`` is the
    run in progress. Cancelling the job cancels the run in progress and starts no more."""
    from mmoe.training import resolve_device

    device = str(resolve_device(exp.points[0].train_config.device))
    total = exp.total_epochs
    planned = {i: p.train_config.epochs or MAX_EPOCHS for i, p in enumerate(exp.points)}

    def work(ctx) -> str:
        store = RunStore(store_home)
        before = {"epochs": 0, "point": 0}

        class Progress(Callback):
            def _publish(self, state, done: bool = False) -> None:
                ctx.update(epoch=before["epochs"] + state.epoch - (0 if done else 1), epochs=total,
                           batch=0 if done else state.batch, batches=state.batches)

            def on_batch_end(self, state) -> None:
                if state.batch == 1 or state.batch % 50 == 0:
                    self._publish(state)

            def on_epoch_end(self, state) -> None:
                self._publish(state, done=True)
                ctx.update(last_metrics=state.epoch_metrics)

        def progress(p: ExperimentProgress) -> None:
            if p.last is not None:   # a run ended: its planned epochs count as done (also after early stopping)
                before["epochs"] += planned[before["point"] % len(planned)]
                before["point"] += 1
            ctx.update(run_id=p.run_id, epoch=before["epochs"], epochs=total, batch=0,
                       message=f"run {min(p.runs_done + 1, p.runs_total)} of {p.runs_total}: {p.current}"
                       if p.current else f"{p.runs_done} of {p.runs_total} runs done",
                       extra={"experiment_id": p.experiment_id, "runs_done": p.runs_done,
                              "runs_total": p.runs_total, "current": p.current})

        exp_id = run_experiment(exp, store, cancel_event=ctx.cancel_event, on_progress=progress,
                                run_callbacks=lambda: [Progress()],
                                on_created=lambda i: ctx.update(extra={"experiment_id": i, "runs_done": 0,
                                                                       "runs_total": exp.total_runs}))
        record = store.get_experiment(exp_id)
        if record.error:
            ctx.update(message=record.error)
        return "cancelled" if record.status == "cancelled" else "finished"

    return manager.submit(work, name=exp.name or f"experiment on {exp.dataset}", device=device)
