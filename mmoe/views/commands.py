"""The command lines that train a configured or stored run again: ``python -m mmoe train ...`` for one
process and ``torchrun ... -m mmoe train ...`` for several, so a user who explored a sample in the
dashboard moves to the full table, or a cluster, with the same settings.

Only settings that differ from the command line's defaults are written. A stored run's batch size and
epochs are the values it used, so its command trains the same run again (same seed, same split).
"""
from __future__ import annotations

import shlex
from typing import Mapping

from mmoe.config import DataConfig, ModelConfig, TrainConfig

NPROC = 2


def _widths(v) -> str:
    return ",".join(str(int(x)) for x in v)


def _number(v: float) -> str:
    """A float short (%g) where that is exact, else in full."""
    return f"{v:g}" if float(f"{v:g}") == v else repr(float(v))


def train_args(data_config: Mapping | DataConfig, model_config: Mapping | ModelConfig,
               train_config: Mapping | TrainConfig, data: str) -> tuple[list[str], list[str]]:
    """(the arguments after ``python -m mmoe``, the settings the command line cannot say)."""
    dc = data_config if isinstance(data_config, DataConfig) else DataConfig.from_dict(data_config)
    mc = model_config if isinstance(model_config, ModelConfig) else ModelConfig.from_dict(model_config)
    tc = train_config if isinstance(train_config, TrainConfig) else TrainConfig.from_dict(train_config)
    d_dc, d_mc, d_tc = DataConfig(tasks=dc.tasks), ModelConfig(), TrainConfig()
    args, unsaid = ["train", "--data", str(data)], []
    for t in dc.tasks:
        args += ["--task", t.label()]
    args += [x for t in dc.tasks if t.weight != 1.0 for x in ("--task-weight", f"{t.column}={t.weight:g}")]

    def columns(flag: str, cols) -> None:
        if any("," in c for c in cols):
            unsaid.append(f"{flag} {', '.join(cols)} (a column name holds a comma)")
        else:
            args.extend([flag, ",".join(cols)])

    if dc.features is not None:
        columns("--features", dc.features)
    if dc.drop:
        columns("--drop", dc.drop)
    for col, kind in dc.kind_overrides.items():
        args += ["--kind", f"{col}={kind}"]
    for name, flag in (("val_fraction", "--val-fraction"), ("test_fraction", "--test-fraction")):
        if getattr(dc, name) != getattr(d_dc, name):
            args += [flag, f"{getattr(dc, name):g}"]
    if dc.embedding_dims:
        unsaid.append(f"embedding widths {dict(dc.embedding_dims)}")
    if dc.max_classes != d_dc.max_classes:
        unsaid.append(f"at most {dc.max_classes} classes per column")
    if mc.arch != d_mc.arch:
        args += ["--arch", mc.arch]
    if mc.num_experts != d_mc.num_experts:
        args += ["--experts", str(mc.num_experts)]
    for name, flag in (("expert_hidden", "--expert-hidden"), ("gate_hidden", "--gate-hidden"),
                       ("tower_hidden", "--tower-hidden")):
        if getattr(mc, name) != getattr(d_mc, name):
            args += [flag, _widths(getattr(mc, name))]
    if mc.top_k is not None:
        args += ["--top-k", str(mc.top_k)]
    for name, flag in (("shared_experts", "--shared-experts"), ("task_experts", "--task-experts"),
                       ("levels", "--levels")):   # cgc / ple
        if getattr(mc, name) is not None and getattr(mc, name) != getattr(d_mc, name):
            args += [flag, str(getattr(mc, name))]
    for name, flag in (("dropout", "--dropout"), ("aux_loss_weight", "--aux-weight")):
        if getattr(mc, name) != getattr(d_mc, name):
            args += [flag, f"{getattr(mc, name):g}"]
    for name, flag in (("epochs", "--epochs"), ("batch_size", "--batch-size"), ("lr", "--lr"),
                       ("weight_decay", "--weight-decay"), ("optimizer", "--optimizer"),
                       ("task_weighting", "--task-weighting"), ("early_stopping_patience", "--patience"),
                       ("device", "--device"), ("threads", "--threads"), ("precision", "--precision")):
        v = getattr(tc, name)
        if v is not None and v != getattr(d_tc, name):
            args += [flag, f"{v:g}" if isinstance(v, float) else str(v)]
    if tc.gradnorm_alpha != d_tc.gradnorm_alpha:
        args += ["--gradnorm-alpha", _number(tc.gradnorm_alpha)]
    for col, w in tc.pos_weight.items():   # "balanced" stays balanced: derived again from the training split
        args += ["--pos-weight", f"{col}={w if isinstance(w, str) else _number(w)}"]
    args += ["--seed", str(tc.seed)]
    if dc.seed != tc.seed:
        args += ["--split-seed", str(dc.seed)]
    if tc.max_seconds is not None:
        unsaid.append(f"a time budget of {tc.max_seconds:g} s")
    if tc.eval_batch_size != d_tc.eval_batch_size:
        unsaid.append(f"evaluation batches of {tc.eval_batch_size}")
    return args, unsaid


def train_commands(data_config, model_config, train_config, data: str, *, nproc: int = NPROC,
                   name: str | None = None, stream: bool = False) -> dict[str, str]:
    """{"python": one process, "torchrun": ``nproc`` processes on this machine, "unsaid": settings the
    command line cannot give (empty when the commands reproduce everything)}. ``stream``: add --stream."""
    args, unsaid = train_args(data_config, model_config, train_config, data)
    if stream:
        args.insert(3, "--stream")
    if name:
        args += ["--name", name]
    line = " ".join(shlex.quote(a) for a in args)
    return {"python": f"python -m mmoe {line}",
            "torchrun": f"torchrun --standalone --nproc-per-node={nproc} -m mmoe {line}",
            "unsaid": "; ".join(unsaid)}
