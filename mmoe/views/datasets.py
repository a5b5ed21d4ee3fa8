"""Choosing a dataset and its targets: what the dashboard's Data page computes (no Streamlit here).

    BUILTINS            the sample tables in data/ with their suggested targets
    column_table        profile_columns -> one display row per column (kind, missing share, distinct, examples)
    target_choices      which kind choices make sense for a would-be target column, and the default
    task_from_choice    ("click", "is VALUE", "yes") -> TaskSpec("click", "binary", positive="yes")
    usable_features     the columns used as features by default (not a target, not id/constant/empty)
    build_config        the Data page's choices -> DataConfig (features=None when the default is kept)
    check               DataConfig + frame -> (PreparedData | None, {control: message})

``check`` sorts every ``DataError`` / ``ConfigError`` by the control that can fix it, so the page
shows each problem next to that control: "targets", "target:<column>", "features", "kinds",
"split" or "general".
"""
from __future__ import annotations

import copy
import dataclasses
import importlib.resources
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import pandas as pd

from mmoe.config import ConfigError, DataConfig, TaskSpec
from mmoe.data import (
    ColumnProfile,
    DataError,
    PreparedData,
    prepare,
    profile_columns,
    select_features,
    suggest_task_kind,
    target_encoding,
)

# the built-in sample files: the package mmoe.samples (the repository's data/ folder, installed
# with the package), found through importlib.resources so an installed wheel has them too
DATA_DIR = Path(str(importlib.resources.files("mmoe.samples")))

# Choices offered for a target column's kind. "is VALUE" is binary with a chosen positive value.
IS_VALUE = "is VALUE"
THRESHOLD = "threshold"     # binary from a number: COL >= V (or > V, <= V, < V)
KIND_CHOICES = ("binary", "regression", "multiclass", IS_VALUE, THRESHOLD)
OVERRIDABLE_KINDS = ("numeric", "categorical", "identifier", "constant")


@dataclass(frozen=True)
class Builtin:
    """A built-in sample dataset: a file in data/ (or the paper's generator when ``file`` is None)."""

    name: str
    file: str | None
    description: str
    tasks: tuple[TaskSpec, ...]
    drop: tuple[str, ...] = ()

    @property
    def path(self) -> Path | None:
        return DATA_DIR / self.file if self.file else None

    @property
    def available(self) -> bool:
        return self.file is None or (self.path is not None and self.path.exists())


SYNTHETIC = "Paper synthetic (choose the task correlation)"

BUILTINS: tuple[Builtin, ...] = (
    Builtin("Click & like (recommender impressions)", "click_like.csv",
            "20,000 made-up shop impressions; two related binary tasks: click (15% positive) and "
            "like (4% 'yes', almost only after a click).",
            (TaskSpec("click", "binary"), TaskSpec("like", "binary", positive="yes"))),
    Builtin("Wine quality & type", "wine_like.csv",
            "6,000 made-up wine measurements; quality (regression, 0-10) and type (3 classes).",
            (TaskSpec("quality", "regression"), TaskSpec("type", "multiclass"))),
    Builtin("Census income (UCI, 15,000-row sample)", "census_sample.csv.gz",
            "The MMoE paper's real data: income above 50K and never married (both binary). "
            "instance_weight is a survey weight and is dropped.",
            (TaskSpec("income_50k", "binary", positive="50000+."),
             TaskSpec("marital_stat", "binary", positive="Never married")),
            drop=("instance_weight",)),
    Builtin("Paper synthetic, correlation 0.5 (file)", "synthetic_p0.5.csv",
            "2,500 rows of the MMoE paper's generator: x0..x99 and two regression tasks y1, y2 with "
            "task correlation 0.5.",
            (TaskSpec("y1", "regression"), TaskSpec("y2", "regression"))),
    Builtin(SYNTHETIC, None,
            "A fresh table from the MMoE paper's generator (Ma et al. 2018, sec. 3.2): two regression "
            "tasks whose relatedness you choose with the correlation slider.",
            (TaskSpec("y1", "regression"), TaskSpec("y2", "regression"))),
)


def builtin(name: str) -> Builtin:
    for b in BUILTINS:
        if b.name == name:
            return b
    raise KeyError(f"no built-in dataset named {name!r}; choose one of {[b.name for b in BUILTINS]}")


# ----------------------------------------------------------------------------------------- columns

def column_table(df: pd.DataFrame, profiles: Sequence[ColumnProfile] | None = None) -> pd.DataFrame:
    """One row per column: column, kind (inferred), type, missing (share 0..1), distinct, examples."""
    profiles = profiles if profiles is not None else profile_columns(df)
    return pd.DataFrame({
        "column": [p.name for p in profiles],
        "kind": [p.kind for p in profiles],
        "type": [p.dtype for p in profiles],
        "missing": [float(p.missing_share) for p in profiles],
        "distinct": [int(p.n_distinct) for p in profiles],
        "examples": [", ".join(_example(e) if p.dtype.lower().startswith("float") else e for e in p.examples[:3])
                     for p in profiles],
    })


def _example(text: str) -> str:
    """A float column's example value with at most 4 significant digits ("5.705", not "5.705163516194235": they
    are examples, not data); whole numbers and anything that is not a number stay as they are."""
    try:
        x = float(text)
    except ValueError:
        return text
    if not math.isfinite(x) or x == round(x):
        return text
    return f"{x:.0f}" if abs(x) >= 1e4 else f"{x:.4g}"     # 12346, not 1.235e+04


def effective_kinds(profiles: Sequence[ColumnProfile], overrides: Mapping[str, str]) -> dict[str, str]:
    return {p.name: overrides.get(p.name, p.kind) for p in profiles}


def usable_features(profiles: Sequence[ColumnProfile], targets: Iterable[str],
                    overrides: Mapping[str, str] | None = None) -> list[str]:
    """Columns used as features by default: not a target, and (after overrides) numeric or categorical."""
    kinds = effective_kinds(profiles, overrides or {})
    t = set(targets)
    return [p.name for p in profiles if p.name not in t and kinds[p.name] in ("numeric", "categorical")
            and p.kind != "empty"]


def value_options(series: pd.Series, limit: int = 200) -> list[str]:
    """The values a user may pick as the positive class ("is VALUE"), most frequent first."""
    s = series.dropna()
    labels = s.map(lambda v: str(int(v)) if isinstance(v, float) and v.is_integer() else str(v))
    return labels.value_counts().index[:limit].astype(str).tolist()


def target_choices(series: pd.Series) -> tuple[list[str], str, str | None]:
    """(kind choices, default choice, default positive value) for a would-be target column."""
    kind, positive = suggest_task_kind(series)
    numeric = pd.api.types.is_numeric_dtype(series.dtype) and series.dtype != bool
    choices = [k for k in KIND_CHOICES if k not in ("regression", THRESHOLD) or numeric]
    values = value_options(series)
    if kind == "binary" and len(values) != 2:   # one value (or none): nothing sensible to suggest
        return choices, "binary", None
    if kind == "multiclass" and len(values) > 2 and not numeric:
        return choices, "multiclass", None
    return choices, kind, positive


def task_from_choice(column: str, choice: str, value: str | None = None, weight: float = 1.0) -> TaskSpec:
    """A UI choice -> TaskSpec; ``IS_VALUE`` means binary with ``value`` as the positive class,
    ``THRESHOLD`` binary with ``value`` (e.g. ">=7") as the rule that makes a row positive."""
    if choice == THRESHOLD:
        return TaskSpec(column, "binary", threshold=str(value or ""), weight=weight)
    if choice == IS_VALUE:
        if value is None or str(value) == "":
            raise ConfigError(f"task {column!r}: pick the value that counts as positive")
        return TaskSpec(column, "binary", positive=str(value), weight=weight)
    return TaskSpec(column, choice, weight=weight)


def build_config(profiles: Sequence[ColumnProfile], tasks: Sequence[TaskSpec], features: Sequence[str],
                 overrides: Mapping[str, str] | None = None, *, val_fraction: float = 0.2,
                 test_fraction: float = 0.0, seed: int = 0, drop: Iterable[str] = ()) -> DataConfig:
    """The Data page's choices -> DataConfig.

    When every chosen feature is usable by default, the config keeps ``features=None`` and drops
    the usable columns that were left out (so the summary says why each column is ignored);
    otherwise the features are listed explicitly. Overrides equal to the inferred kind are left out.
    """
    kinds = {p.name: p.kind for p in profiles}
    overrides = {c: k for c, k in (overrides or {}).items() if c in kinds and k != kinds[c]}
    targets = [t.column for t in tasks]
    usable = usable_features(profiles, targets, overrides)
    chosen = [c for c in features if c not in targets]
    extra_drop = [c for c in drop if c in kinds and c not in targets and c not in chosen]
    if set(chosen) <= set(usable):
        dropped = [c for c in usable if c not in chosen]
        return DataConfig(tasks=tuple(tasks), features=None,
                          drop=tuple(dict.fromkeys(dropped + extra_drop)), kind_overrides=overrides,
                          val_fraction=val_fraction, test_fraction=test_fraction, seed=seed)
    return DataConfig(tasks=tuple(tasks), features=tuple(chosen), kind_overrides=overrides,
                      val_fraction=val_fraction, test_fraction=test_fraction, seed=seed)


# ----------------------------------------------------------------------------------------- checking

def check(df: pd.DataFrame, config: DataConfig) -> tuple[PreparedData | None, dict[str, str]]:
    """Validate ``config`` against ``df`` stage by stage and prepare it.

    Returns (prepared or None, problems) where problems maps a control name ("target:<col>",
    "features", "kinds", "split", "general") to one message. Never raises DataError.
    """
    problems: dict[str, str] = {}
    for t in config.tasks:
        if t.column not in df.columns:
            problems[f"target:{t.column}"] = f"target column {t.column!r} is not in the data"
            continue
        try:
            target_encoding(df[t.column], t, config.max_classes)
        except DataError as e:
            problems[f"target:{t.column}"] = str(e)
    try:
        select_features(df, config)
    except DataError as e:
        problems[e.field] = str(e)
    if problems:
        return None, problems
    try:
        return prepare(df, config), {}
    except (DataError, ConfigError) as e:
        return None, {getattr(e, "field", "general"): str(e)}


def with_task_weights(data: PreparedData, weights: Mapping[str, float]) -> PreparedData:
    """The same prepared tensors with new per-task loss weights (no re-preparing).

    Training reads the weights from ``data.tasks`` (the preprocessor's tasks), so both the
    preprocessor and the config get the new TaskSpecs. The tensors are shared, not copied.
    """
    if not weights:
        return data
    tasks = tuple(dataclasses.replace(t, weight=float(weights.get(t.column, t.weight))) for t in data.tasks)
    pre = copy.copy(data.preprocessor)
    pre.tasks = tasks
    cfg_tasks = tuple(dataclasses.replace(t, weight=float(weights.get(t.column, t.weight)))
                      for t in data.config.tasks)
    config = dataclasses.replace(data.config, tasks=cfg_tasks)
    return dataclasses.replace(data, preprocessor=pre, config=config)


def share_text(count: int, total: int) -> str:
    """A share that never rounds a present class to '0%' (or all but one to '100%'): 1 of 5,000 -> '<0.1%',
    40 of 800 -> '5.0%'."""
    if not total:
        return "–"
    share = count / total
    if 0 < share < 0.001:
        return "<0.1%"
    if 0.999 < share < 1:
        return ">99.9%"
    return f"{share:.1%}" if share < 0.1 else f"{share:.0%}"



def categorical_text(cardinality: int) -> str:
    """How a categorical feature is encoded, from its cardinality (which counts the shared "other" slot, code 0,
    that rare, unseen and missing values take): 5 -> 'categorical: 4 values + other (rare, unseen or missing)'."""
    learned = max(0, int(cardinality) - 1)
    return f"categorical: {learned:,} value{'s' if learned != 1 else ''} + other (rare, unseen or missing)"

def summary_tables(summary: Mapping) -> dict[str, pd.DataFrame]:
    """PreparedData.summary() -> display tables: "splits", "ignored", "tasks"."""
    splits = pd.DataFrame({"split": list(summary["splits"]), "rows": list(summary["splits"].values())})
    ignored = pd.DataFrame({"column": list(summary["ignored"]), "why not a feature": list(summary["ignored"].values())})
    rows = []
    for name, d in summary["tasks"].items():
        if d["kind"] == "binary":
            rate = d.get("positive_rate")
            if rate is not None:
                pos = int(round(rate * d["labelled"]))
                detail = (f"positive = {d['positive']!r}: {pos:,} of {d['labelled']:,} labelled rows "
                          f"({share_text(pos, d['labelled'])})")
            else:
                detail = f"positive = {d['positive']!r}"
        elif d["kind"] == "multiclass":
            counts = d.get("class_counts", {})
            total = sum(counts.values())
            ordered = sorted(counts.items(), key=lambda kv: -kv[1])
            detail = f"{len(counts)} classes: " + ", ".join(f"{k} {v:,} ({share_text(v, total)})"
                                                           for k, v in ordered[:8])
            if len(counts) > 8:
                detail += f", and {len(counts) - 8} more"
        else:
            detail = f"mean {d['mean']:.4g}, sd {d['std']:.4g}"
        rows.append({"task": name, "kind": d["kind"], "labelled rows": d["labelled"], "missing": d["missing"],
                     "details": detail})
    return {"splits": splits, "ignored": ignored, "tasks": pd.DataFrame(rows)}


DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "vertical bar"}


def read_report_lines(report: Mapping | None) -> tuple[list[str], bool]:
    """How a file was read, in sentences, and whether anything was changed or dropped (then the page
    shows it open): delimiter, decimal mark, encoding, compression, header, blank and empty rows."""
    if not report:
        return [], False
    lines = [f"{DELIMITER_NAMES.get(report.get('delimiter'), repr(report.get('delimiter')))}-separated, "
             f"{report.get('encoding', '?')} text" + (f", {report['compression']}-compressed"
                                                     if report.get("compression") else "")
             + f"; a header line naming {report.get('header_columns', 0)} columns; "
               f"{report.get('rows', 0):,} data rows kept."]
    changed = False
    dec = list(report.get("decimal_comma_columns") or [])
    if dec:
        changed = True
        shown = ", ".join(dec[:8]) + (f" and {len(dec) - 8} more" if len(dec) > 8 else "")
        lines.append(f"Decimal commas read as decimal points (\"3,5\" -> 3.5) in {len(dec)} column(s): {shown}.")
    else:
        lines.append("Decimal mark: a point.")
    empty = int(report.get("empty_rows_dropped") or 0)
    blank = int(report.get("blank_lines_skipped") or 0)
    if empty:
        changed = True
        lines.append(f"Dropped {empty:,} row(s) with no value in any column (e.g. empty trailing rows of a "
                     "spreadsheet export).")
    if blank:
        changed = True
        lines.append(f"Skipped {blank:,} blank line(s).")
    if report.get("saved_index_dropped"):
        changed = True
        lines.append("Dropped the first column: an unnamed row counter 0, 1, 2, ... (a saved pandas index).")
    return lines, changed
