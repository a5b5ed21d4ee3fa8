"""User-chosen configuration: what to predict, which model, how to train.

Four frozen dataclasses, each validated in ``__post_init__`` and round-tripped
through plain dicts (``to_dict`` / ``from_dict``) so a run's config is stored as
JSON. What the *data* decides (feature counts, vocabularies, class counts) is
not here; it lives in ``data.PreparedData``.

A bad value raises ``ConfigError`` (a ``ValueError``) whose message names the
field and how to fix it.
"""
from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

TASK_KINDS = ("binary", "regression", "multiclass")
COLUMN_KINDS = ("numeric", "categorical", "identifier", "constant", "empty")
ARCHS = ("mmoe", "omoe", "shared-bottom", "cgc", "ple")
LAYERED_ARCHS = ("cgc", "ple")   # task-specific + shared experts (mmoe.nn.ple)
OPTIMIZERS = ("adam", "adamw")
TASK_WEIGHTINGS = ("fixed", "uncertainty", "gradnorm")
BALANCED = "balanced"   # a pos_weight derived from the training split: negatives / positives
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16")


class ConfigError(ValueError):
    """A configuration value is invalid; the message says which and how to fix it."""


def _ints(value: Any, name: str, allow_empty: bool = True) -> tuple[int, ...]:
    """Accept (64, 32), [64, 32], "64,32", "64 32", 64 or "" -> tuple of positive ints."""
    if value is None:
        value = ()
    if isinstance(value, str):
        parts = [p for p in value.replace(" ", ",").split(",") if p.strip()]
        try:
            value = tuple(int(p) for p in parts)
        except ValueError:
            raise ConfigError(f"{name}: {value!r} is not a list of layer widths; write e.g. '64,32'") from None
    elif isinstance(value, int):
        value = (value,)
    out = tuple(int(v) for v in value)
    if any(v <= 0 for v in out):
        raise ConfigError(f"{name}: layer widths must be positive, got {out}")
    if not allow_empty and not out:
        raise ConfigError(f"{name}: needs at least one layer width, e.g. '64'")
    return out


THRESHOLD_OPS = (">=", ">", "<=", "<")


def normalise_threshold(text: str, column: str = "") -> str:
    """'>= 7' -> '>=7'; anything but OP NUMBER with OP one of >= > <= < raises ConfigError."""
    m = re.fullmatch(r"\s*(>=|>|<=|<)\s*([-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?)\s*", str(text))
    if not m:
        raise ConfigError(f"task {column!r}: threshold {text!r} is not OP NUMBER; write e.g. >=7, >0.5, <=3 or <10")
    return f"{m.group(1)}{float(m.group(2)):g}"


def threshold_holds(op_value: str, values):
    """Element-wise: does ``values OP number`` hold (a numpy/pandas array)."""
    m = re.fullmatch(r"(>=|>|<=|<)(.+)", op_value)
    op, v = m.group(1), float(m.group(2))
    return {">=": values >= v, ">": values > v, "<=": values <= v, "<": values < v}[op]


@dataclass(frozen=True)
class TaskSpec:
    """One target column and how to learn it.

    kind: binary | regression | multiclass. ``positive`` (binary only) names the
    value that counts as 1 ("binary=VALUE"); every other value counts as 0.
    """

    column: str
    kind: str = "binary"
    positive: str | None = None
    weight: float = 1.0
    threshold: str | None = None    # binary from a number: ">=7", ">7", "<=7" or "<7" (positive when true)

    def __post_init__(self) -> None:
        if not isinstance(self.column, str) or not self.column.strip():
            raise ConfigError("task: the target column name is empty")
        if self.kind not in TASK_KINDS:
            raise ConfigError(
                f"task {self.column!r}: kind {self.kind!r} is unknown; use one of "
                f"{', '.join(TASK_KINDS)} or binary=VALUE")
        if self.positive is not None and self.kind != "binary":
            raise ConfigError(f"task {self.column!r}: a positive value only makes sense for kind binary")
        if not (self.weight >= 0):
            raise ConfigError(f"task {self.column!r}: loss weight must be >= 0, got {self.weight}")
        if self.threshold is not None:
            if self.kind != "binary" or self.positive is not None:
                raise ConfigError(f"task {self.column!r}: a threshold makes a binary task of a number; "
                                  "it cannot be combined with another kind or a positive value")
            object.__setattr__(self, "threshold", normalise_threshold(self.threshold, self.column))

    @property
    def name(self) -> str:
        return self.column

    @classmethod
    def parse(cls, text: str) -> "TaskSpec":
        """Parse the CLI form ``COL[:KIND]`` where KIND may be ``binary=VALUE``.

        The column name may itself contain ':'; the kind is taken from the last
        ':' only if what follows is a known kind.
        """
        col, kind, positive = text, "binary", None
        if ":" in text:
            head, tail = text.rsplit(":", 1)
            t = tail.strip()
            if t in TASK_KINDS:
                col, kind = head, t
            elif re.match(r"binary\s*(>=|>|<=|<)", t):
                return cls(column=head.strip(), kind="binary", threshold=t[len("binary"):].strip())
            elif t.startswith("binary="):
                col, kind, positive = head, "binary", t[len("binary="):].strip()
                if not positive:
                    raise ConfigError(f"--task {text!r}: binary= needs a value, e.g. {head}:binary=yes")
            else:
                raise ConfigError(
                    f"--task {text!r}: kind {t!r} is unknown; use binary, regression, multiclass, binary=VALUE "
                    "or a threshold such as binary>=7")
        return cls(column=col.strip(), kind=kind, positive=positive)

    def label(self) -> str:
        if self.threshold is not None:
            return f"{self.column}:binary{self.threshold}"
        return f"{self.column}:binary={self.positive}" if self.positive is not None else f"{self.column}:{self.kind}"


@dataclass(frozen=True)
class DataConfig:
    """Which columns are targets and features, and how to split rows.

    features: None means "all usable columns" (not a target, not dropped, not
    identifier-like or constant). kind_overrides maps column -> column kind
    (numeric | categorical | identifier | constant); forcing an identifier or
    constant column to numeric/categorical makes it usable as a feature.
    embedding_dims maps categorical column -> embedding width (overrides the
    default rule).
    """

    tasks: tuple[TaskSpec, ...]
    features: tuple[str, ...] | None = None
    drop: tuple[str, ...] = ()
    kind_overrides: Mapping[str, str] = field(default_factory=dict)
    embedding_dims: Mapping[str, int] = field(default_factory=dict)
    val_fraction: float = 0.2
    test_fraction: float = 0.0
    max_classes: int = 50
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "tasks", tuple(self.tasks))
        object.__setattr__(self, "drop", tuple(self.drop))
        if self.features is not None:
            object.__setattr__(self, "features", tuple(self.features))
        object.__setattr__(self, "kind_overrides", dict(self.kind_overrides))
        object.__setattr__(self, "embedding_dims", {k: int(v) for k, v in dict(self.embedding_dims).items()})
        if not self.tasks:
            raise ConfigError("data: choose at least one target column (--task COL[:KIND])")
        cols = [t.column for t in self.tasks]
        dup = sorted({c for c in cols if cols.count(c) > 1})
        if dup:
            raise ConfigError(f"data: target column(s) {dup} given more than once; give each target once")
        for col, kind in self.kind_overrides.items():
            if kind not in COLUMN_KINDS[:4]:
                raise ConfigError(f"data: column {col!r} kind override {kind!r} is unknown; use numeric, "
                                  "categorical, identifier or constant")
        for col, d in self.embedding_dims.items():
            if d <= 0:
                raise ConfigError(f"data: embedding width for {col!r} must be positive, got {d}")
        if not (0.0 < self.val_fraction < 0.9):
            raise ConfigError(f"data: validation fraction must be in (0, 0.9), got {self.val_fraction}")
        if not (0.0 <= self.test_fraction < 0.9) or self.val_fraction + self.test_fraction >= 0.95:
            raise ConfigError(f"data: test fraction {self.test_fraction} is out of range "
                              "(0 <= test, val + test < 0.95)")
        if self.max_classes < 2:
            raise ConfigError("data: max_classes must be at least 2")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["tasks"] = [dataclasses.asdict(t) for t in self.tasks]
        return d

    @classmethod
    def from_dict(cls, d: Mapping) -> "DataConfig":
        d = dict(d)
        d["tasks"] = tuple(TaskSpec(**t) for t in d["tasks"])
        return cls(**d)


@dataclass(frozen=True)
class ModelConfig:
    """Architecture. arch: mmoe | omoe | shared-bottom | cgc | ple.

    expert_hidden is the expert MLP (for shared-bottom: the bottom MLP);
    gate_hidden () means a linear gate; top_k None means dense gating.
    cgc / ple (Tang et al., RecSys 2020) use shared_experts + task_experts per task on each of
    ``levels`` extraction levels instead of num_experts (cgc is one level; levels None: 1 for cgc,
    2 for ple, see ``num_levels``); they have dense gates only and ignore num_experts.
    """

    arch: str = "mmoe"
    num_experts: int = 8
    expert_hidden: tuple[int, ...] = (64, 32)
    gate_hidden: tuple[int, ...] = ()
    tower_hidden: tuple[int, ...] = (16,)
    top_k: int | None = None
    dropout: float = 0.0
    aux_loss_weight: float = 0.01
    shared_experts: int = 4
    task_experts: int = 2
    levels: int | None = None          # None: the architecture's default (``num_levels``)

    def __post_init__(self) -> None:
        arch = str(self.arch).lower().replace("_", "-")
        if arch == "sharedbottom":
            arch = "shared-bottom"
        object.__setattr__(self, "arch", arch)
        if arch not in ARCHS:
            raise ConfigError(f"model: architecture {self.arch!r} is unknown; use one of {', '.join(ARCHS)}")
        object.__setattr__(self, "expert_hidden", _ints(self.expert_hidden, "expert layers", allow_empty=False))
        object.__setattr__(self, "gate_hidden", _ints(self.gate_hidden, "gate layers"))
        object.__setattr__(self, "tower_hidden", _ints(self.tower_hidden, "tower layers"))
        if not (1 <= int(self.num_experts) <= 256):
            raise ConfigError(f"model: number of experts must be between 1 and 256, got {self.num_experts}")
        object.__setattr__(self, "num_experts", int(self.num_experts))
        if self.top_k is not None:
            k = int(self.top_k)
            if k <= 0:
                k = None  # 0 means dense, as in the CLI
            elif arch in LAYERED_ARCHS:
                raise ConfigError(f"model: sparse top-k gating is not available for {arch.upper()} (its gates are "
                                  "dense); leave top-k out (or 0), or use arch mmoe or omoe for top-k routing")
            elif k > self.num_experts:
                raise ConfigError(f"model: top-k ({k}) cannot exceed the number of experts ({self.num_experts})")
            object.__setattr__(self, "top_k", k)
        if not (0.0 <= self.dropout < 1.0):
            raise ConfigError(f"model: dropout must be in [0, 1), got {self.dropout}")
        if not (self.aux_loss_weight >= 0):
            raise ConfigError(f"model: load-balancing loss weight must be >= 0, got {self.aux_loss_weight}")
        self._check_layered()

    def _check_layered(self) -> None:
        """shared_experts, task_experts and levels (used by cgc and ple)."""
        for name, what, hi in (("shared_experts", "number of shared experts", 64),
                               ("task_experts", "number of experts per task", 64), ("levels", "extraction levels", 8)):
            v = getattr(self, name)
            if v is None:   # levels left out: the architecture's default (num_levels)
                continue
            n = _whole(v)
            if n is None or not 1 <= n <= hi:
                raise ConfigError(f"model: {what} must be a whole number between 1 and {hi}, got {v!r} "
                                  f"(--{name.replace('_', '-')} N)")
            object.__setattr__(self, name, n)
        if self.arch == "cgc" and self.levels not in (None, 1):
            raise ConfigError(f"model: CGC has one extraction level, got levels={self.levels}; use arch ple for "
                              "several levels (--arch ple --levels L), or leave levels out")

    @property
    def num_levels(self) -> int:
        """Extraction levels of cgc/ple: ``levels``, or when left out 2 for ple and 1 otherwise."""
        return self.levels if self.levels is not None else (2 if self.arch == "ple" else 1)

    def expert_owners(self, tasks) -> list[str | None]:
        """Who owns each expert on the gates' last axis, in order: None for an expert every task's gate
        sees, else the task whose gate alone sees it. Empty for shared-bottom (no gates)."""
        if self.arch == "shared-bottom":
            return []
        if self.arch in LAYERED_ARCHS:
            return layered_expert_owners(tasks, self.shared_experts, self.task_experts)
        return [None] * self.num_experts

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping) -> "ModelConfig":
        return cls(**dict(d))


def _whole(v: Any) -> int | None:
    """v as an int when it is a whole number (2, 2.0, "2"), else None."""
    if isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return int(f) if math.isfinite(f) and f == int(f) else None


def layered_expert_owners(tasks, shared_experts: int, task_experts: int) -> list[str | None]:
    """CGC/PLE expert order (the one home of it): the shared experts first, then each task's own experts
    in task order. None marks a shared expert, a task name that task's expert."""
    return [None] * int(shared_experts) + [t for t in tasks for _ in range(int(task_experts))]


def _pos_weight(column, value):
    """A pos_weight setting: a number > 0 (float) or "balanced"."""
    if isinstance(value, str) and value.strip().lower() == BALANCED:
        return BALANCED
    try:
        w = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"train: pos_weight of {column!r} is {value!r}; give a number > 0 or 'balanced'") from None
    if not (0 < w < float("inf")):
        raise ConfigError(f"train: pos_weight of {column!r} must be a number > 0 (1 = no reweighting), got {value}")
    return w


@dataclass(frozen=True)
class TrainConfig:
    """How to train: optimiser, schedule, stopping, device, seed. ``epochs`` / ``batch_size`` None: chosen
    from the number of training rows when the run starts (``mmoe.training.schedule``); the stored run
    records the values used."""

    epochs: int | None = None           # None: from the training rows (``training.schedule``)
    batch_size: int | None = None       # None: from the training rows
    lr: float = 1e-3
    weight_decay: float = 0.0
    optimizer: str = "adam"
    task_weighting: str = "fixed"
    early_stopping_patience: int | None = None
    device: str = "auto"
    seed: int = 0
    eval_batch_size: int = 65536
    max_seconds: float | None = None
    threads: int | None = None          # CPU intra-op threads; None = the cores other processes leave idle
    precision: str = "auto"             # auto: bf16 autocast on CUDA and on CPUs with native bf16 math; else fp32
    gradnorm_alpha: float = 1.5         # GradNorm's asymmetry (Chen et al. 2018; 1.5 their NYUv2 choice)
    # binary task -> BCE pos_weight: a number > 0 or "balanced" (negatives / positives of the training split)
    pos_weight: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.epochs is not None:
            if int(self.epochs) < 1 or int(self.epochs) > 100_000:
                raise ConfigError(f"train: epochs must be between 1 and 100000, got {self.epochs}")
            object.__setattr__(self, "epochs", int(self.epochs))
        if self.batch_size is not None:
            if int(self.batch_size) < 1:
                raise ConfigError(f"train: batch size must be >= 1, got {self.batch_size}")
            object.__setattr__(self, "batch_size", int(self.batch_size))
        if not (0 < float(self.lr) < 10):
            raise ConfigError(f"train: learning rate must be in (0, 10), got {self.lr}")
        if float(self.weight_decay) < 0:
            raise ConfigError(f"train: weight decay must be >= 0, got {self.weight_decay}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"train: optimiser {self.optimizer!r} is unknown; use {' or '.join(OPTIMIZERS)}")
        if self.task_weighting not in TASK_WEIGHTINGS:
            raise ConfigError(f"train: task weighting {self.task_weighting!r} is unknown; use "
                              f"{' or '.join(TASK_WEIGHTINGS)}")
        if self.early_stopping_patience is not None:
            p = int(self.early_stopping_patience)
            object.__setattr__(self, "early_stopping_patience", p if p > 0 else None)
        if self.device not in DEVICES:
            raise ConfigError(f"train: device {self.device!r} is unknown; use auto, cpu or cuda")
        if int(self.eval_batch_size) < 1:
            raise ConfigError("train: eval batch size must be >= 1")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"train: precision {self.precision!r} is unknown; use auto, fp32 or bf16")
        if self.threads is not None and int(self.threads) < 1:
            raise ConfigError(f"train: threads must be >= 1, got {self.threads}")
        if not (0.0 <= float(self.gradnorm_alpha) <= 10.0):
            raise ConfigError(f"train: GradNorm alpha must be between 0 and 10, got {self.gradnorm_alpha}")
        object.__setattr__(self, "gradnorm_alpha", float(self.gradnorm_alpha))
        object.__setattr__(self, "pos_weight", {str(k): _pos_weight(k, v) for k, v in dict(self.pos_weight).items()})

    @staticmethod
    def parse_pos_weight(items, tasks) -> dict:
        """The CLI's --pos-weight items: COL=W or COL=balanced, or W / balanced alone for every binary task
        (a later item overrides an earlier one) -> {column: setting}."""
        out = {}
        for item in items:
            col, sep, value = str(item).rpartition("=")
            cols = [col.strip()] if sep else [t.column for t in tasks if t.kind == "binary"]
            if sep and not col.strip():
                raise ConfigError(f"--pos-weight {item!r}: the column name is empty; write COL=W or COL=balanced")
            if not cols:
                raise ConfigError(f"--pos-weight {item!r} applies to every binary task, and there is none")
            out.update({c: _pos_weight(c, value.strip()) for c in cols})
        return out

    def check_tasks(self, tasks) -> None:
        """Refuse a pos_weight for a column that is not one of ``tasks`` (TaskSpecs) or not a binary task."""
        kinds = {t.column: t.kind for t in tasks}
        for col in self.pos_weight:
            if col not in kinds:
                raise ConfigError(f"train: pos_weight names {col!r}, which is not a task; tasks: "
                                  f"{', '.join(map(repr, kinds))}")
            if kinds[col] != "binary":
                raise ConfigError(f"train: pos_weight is for binary tasks; {col!r} is {kinds[col]}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping) -> "TrainConfig":
        return cls(**dict(d))
