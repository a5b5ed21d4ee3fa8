"""The MMoE paper's two experiments (Ma et al., KDD 2018) as built-in ``Experiment``s.

    paper_experiment(correlations=(0.5, 0.9, 1.0), seeds=5, rows=10_000, epochs=30)
        section 3/5.2: two regression tasks whose label correlation is controlled
        (``mmoe.synthetic.paper_synthetic``); MMoE vs OMoE vs Shared-Bottom vs CGC vs PLE at each
        correlation.
        Every seed draws a fresh table (the generator's seed) and fresh initial weights, as the paper
        repeats each setting with independent data generation and model initialisation.
    census_experiment(path, seeds=3, epochs=10)
        section 6.3: census-income with the tasks income > 50K and never married.

Comparable parameter counts, as in the paper: MMoE and OMoE have 8 experts of one hidden layer;
Shared-Bottom's bottom is one hidden layer whose width is chosen so that it has as many parameters
as the MMoE (``matched_bottom``). CGC and PLE (Tang et al., RecSys 2020; the fourth and fifth
architecture) split the same number of experts into shared and task-specific ones (8 experts, 2 tasks:
4 shared + 2 per task; PLE has 2 such levels) and their expert width is chosen the same way, so that
they too have as many parameters as the MMoE (``matched_layered``). The generator is used as it is,
whatever comes out: an MMoE advantage at low correlation is a finding to be checked, not a target to be
tuned for.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from mmoe.config import DataConfig, ModelConfig, TaskSpec, TrainConfig
from mmoe.data import PreparedData, prepare
from mmoe.nn import build_model, count_parameters
from mmoe.runs.experiments import Experiment, Point
from mmoe.runs.runner import DataSource
from mmoe.synthetic import paper_synthetic

ARCHS = ("mmoe", "omoe", "shared-bottom", "cgc", "ple")
SYNTHETIC_TASKS = (TaskSpec("y1", "regression"), TaskSpec("y2", "regression"))
CENSUS_TASKS = (TaskSpec("income_50k", "binary", positive="50000+."),
                TaskSpec("marital_stat", "binary", positive="Never married"))
CENSUS_DROP = ("instance_weight",)
# the paper's synthetic setting (sec. 5.2 of our reading): 8 one-layer experts, small towers
PAPER_MODEL = ModelConfig(arch="mmoe", num_experts=8, expert_hidden=(16,), gate_hidden=(), tower_hidden=(8,))
PAPER_DEFAULTS = {"correlations": (0.5, 0.9, 1.0), "seeds": 20, "rows": 10_000, "epochs": 30}
PAPER_TRAIN = TrainConfig(epochs=30, batch_size=128, lr=1e-3)
CENSUS_DEFAULTS = {"seeds": 3, "epochs": 10}
CENSUS_TRAIN = TrainConfig(epochs=10, batch_size=1024, lr=1e-3)


def matched_bottom(model: ModelConfig, data: PreparedData) -> int:
    """The width of a one-layer shared bottom with (about) as many parameters as ``model`` on ``data``."""
    return _matched_width(model, data, lambda width: dataclasses.replace(
        model, arch="shared-bottom", num_experts=1, expert_hidden=(width,), top_k=None))


def layered_split(num_experts: int, num_tasks: int) -> tuple[int, int]:
    """(shared experts, experts per task) of a CGC/PLE level with ``num_experts`` experts in all: half of
    them (at least one per task) task-specific, the rest (at least one) shared."""
    per_task = max(1, num_experts // (2 * num_tasks))
    return max(1, num_experts - num_tasks * per_task), per_task


def matched_layered(model: ModelConfig, data: PreparedData, arch: str) -> ModelConfig:
    """``model`` as CGC or PLE: its experts split by ``layered_split``, the first expert layer's width
    (the others scaled alike) chosen so that it has (about) as many parameters as ``model``."""
    shared, per_task = layered_split(model.num_experts, len(data.task_dims))
    base = dataclasses.replace(model, arch=arch, top_k=None, shared_experts=shared, task_experts=per_task,
                               levels=None)
    first = model.expert_hidden[0]

    def at(width: int) -> ModelConfig:
        return dataclasses.replace(base, expert_hidden=(width, *(max(1, round(w * width / first))
                                                                  for w in model.expert_hidden[1:])))
    return at(_matched_width(model, data, at))


def _matched_width(model: ModelConfig, data: PreparedData, make) -> int:
    """The width w for which ``make(w)`` (a ModelConfig) has the parameter count nearest ``model``'s."""
    target = count_parameters(build_model(model, data))

    def params(width: int) -> int:
        return count_parameters(build_model(make(width), data))

    lo, hi = 1, 1
    while params(hi) < target and hi < 65536:
        hi *= 2
    while lo < hi:   # the smallest width with at least the target's parameters
        mid = (lo + hi) // 2
        lo, hi = (mid + 1, hi) if params(mid) < target else (lo, mid)
    return lo if abs(params(lo) - target) <= abs(params(max(lo - 1, 1)) - target) else max(lo - 1, 1)


def arch_configs(model: ModelConfig, data: PreparedData) -> dict[str, ModelConfig]:
    """MMoE, OMoE, and a parameter-matched Shared-Bottom, CGC and PLE built from ``model``'s expert settings."""
    width = matched_bottom(model, data)
    return {"mmoe": dataclasses.replace(model, arch="mmoe"), "omoe": dataclasses.replace(model, arch="omoe"),
            "shared-bottom": dataclasses.replace(model, arch="shared-bottom", num_experts=1,
                                                 expert_hidden=(width,), top_k=None),
            "cgc": matched_layered(model, data, "cgc"), "ple": matched_layered(model, data, "ple")}


class _Synthetic:
    """seed -> the table of one correlation (shared by every architecture of that correlation)."""

    def __init__(self, rows: int, correlation: float):
        self.rows, self.correlation = rows, correlation

    def __call__(self, seed: int) -> DataSource:
        frame = paper_synthetic(n_rows=self.rows, correlation=self.correlation, seed=seed)
        return DataSource(frame, DataConfig(tasks=SYNTHETIC_TASKS, seed=seed))


def _archs(archs) -> list[str]:
    """The architectures asked for, in ``ARCHS`` order; a clear error for an unknown or empty choice."""
    chosen = [str(a).strip().lower() for a in archs]
    bad = [a for a in chosen if a not in ARCHS]
    if bad or not chosen:
        got = ", ".join(map(str, archs)) or "none"
        raise ValueError(f"architectures must be some of {', '.join(ARCHS)}, got {got}")
    return [a for a in ARCHS if a in chosen]


def _check(name: str, value: int, lo: int, hi: int) -> int:
    if not lo <= int(value) <= hi:
        raise ValueError(f"{name} must be between {lo} and {hi}, got {value}")
    return int(value)


def paper_experiment(correlations=PAPER_DEFAULTS["correlations"], seeds: int = PAPER_DEFAULTS["seeds"],
                     rows: int = PAPER_DEFAULTS["rows"], epochs: int = PAPER_DEFAULTS["epochs"], *,
                     train: TrainConfig = PAPER_TRAIN, model: ModelConfig = PAPER_MODEL,
                     name: str | None = None, first_seed: int = 0, archs=ARCHS) -> Experiment:
    """The synthetic experiment: grid arch x correlation, ``seeds`` seeds each (``archs``: which of ARCHS)."""
    archs = _archs(archs)
    corrs = [float(c) for c in correlations]
    if not corrs or any(not -1.0 <= c <= 1.0 for c in corrs):
        raise ValueError(f"correlations must be between -1 and 1, got {list(correlations)}")
    rows, seeds = _check("rows", rows, 200, 10_000_000), _check("seeds", seeds, 1, 1000)
    tc = dataclasses.replace(train, epochs=_check("epochs", epochs, 1, 100_000))
    probe = prepare(paper_synthetic(n_rows=50, correlation=corrs[0]), DataConfig(tasks=SYNTHETIC_TASKS))
    models = arch_configs(model, probe)
    sources = {c: _Synthetic(rows, c) for c in corrs}
    points = [Point({"arch": a, "correlation": c}, sources[c], models[a], tc) for a in archs for c in corrs]
    what = f"{len(archs)} architectures x {len(corrs)} correlations x {seeds} seeds"
    return Experiment(name or f"paper synthetic: {what}",
                      "paper", f"paper synthetic ({rows:,} rows)", [("arch", archs), ("correlation", corrs)],
                      tuple(range(first_seed, first_seed + seeds)), points, split_follows_seed=True)


def census_experiment(path: str | Path, seeds: int = CENSUS_DEFAULTS["seeds"],
                      epochs: int = CENSUS_DEFAULTS["epochs"], *, train: TrainConfig = CENSUS_TRAIN,
                      model: ModelConfig = PAPER_MODEL, name: str | None = None, first_seed: int = 0,
                      archs=ARCHS) -> Experiment:
    """The census-income experiment: the architectures (default all five), ``seeds`` seeds each."""
    archs = _archs(archs)
    seeds = _check("seeds", seeds, 1, 1000)
    tc = dataclasses.replace(train, epochs=_check("epochs", epochs, 1, 100_000))
    dc = DataConfig(tasks=CENSUS_TASKS, drop=CENSUS_DROP, seed=first_seed)
    models = arch_configs(model, prepare(path, dc))
    source = DataSource(path, dc)
    points = [Point({"arch": a}, source, models[a], tc) for a in archs]
    return Experiment(name or f"paper census-income: {len(archs)} architectures x {seeds} seeds", "census",
                      Path(path).name, [("arch", archs)], tuple(range(first_seed, first_seed + seeds)), points,
                      split_follows_seed=True)
