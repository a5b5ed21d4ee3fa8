"""Gate weights of a predictions frame: per-sample matrices, ordering and sampling for heatmaps,
utilisation, entropy and task-to-task gate similarity, and who owns each expert (``expert_layout``).

CGC / PLE (``mmoe.nn.ple``): a task's gate sees the shared experts and that task's own experts only.
The stored gates keep MMoE's shape -- one ``gate:<task>:e<j>`` column per expert of the last level,
each row summing to 1 -- and give exactly 0 to the experts a task's gate cannot see. So every
function here is correct without knowing the layout (a 0 adds nothing to a mean, to an entropy or to
a dominant expert). With an ``ExpertLayout`` the views also say who owns an expert and leave out what
a gate cannot see:
    labels          s0, s1, ... shared; <task>:t0, <task>:t1, ... that task's own (MMoE/OMoE: e0, e1, ...)
    utilisation     only the (task, expert) pairs the task's gate sees, with the expert's group
    heatmaps        a task's panel shows the experts its gate sees (``ExpertLayout.visible``)
    entropy         its ceiling is ln(experts one gate sees), ``ExpertLayout.n_visible``
    similarity      compares the whole rows: weight on a task's own experts counts as routing apart
                    (those experts are disjoint), weight on the shared experts as routing alike
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from mmoe.config import ConfigError, ModelConfig
from mmoe.runs.predictions import gate_columns, gate_tasks

MAX_HEATMAP_ROWS = 2000
SHARED = "shared"   # the group of an expert every task's gate sees


@dataclass(frozen=True)
class ExpertLayout:
    """Who owns each expert on the gates' last axis: ``owners[j]`` None for a shared expert (seen by
    every task's gate), else the task whose gate alone sees expert j."""

    owners: tuple[str | None, ...]

    @property
    def n_experts(self) -> int:
        return len(self.owners)

    @property
    def layered(self) -> bool:
        """Some experts belong to one task (CGC / PLE)."""
        return any(o is not None for o in self.owners)

    def labels(self) -> list[str]:
        """e0, e1, ... when every expert is shared (MMoE / OMoE); else s<i> for the shared experts and
        <task>:t<i> for a task's own."""
        if not self.layered:
            return expert_labels(self.n_experts)
        out, counts = [], {}
        for o in self.owners:
            key = SHARED if o is None else o
            i = counts.get(key, 0)
            counts[key] = i + 1
            out.append(f"s{i}" if o is None else f"{o}:t{i}")
        return out

    def groups(self) -> list[str]:
        """Per expert: ``SHARED`` or the owning task."""
        return [SHARED if o is None else o for o in self.owners]

    def visible(self, task: str) -> list[int]:
        """Positions of the experts ``task``'s gate sees (all of them for MMoE / OMoE)."""
        return [j for j, o in enumerate(self.owners) if o is None or o == task]

    def n_visible(self, task: str | None = None) -> int:
        """How many experts one gate sees (``task`` None: the largest over the tasks)."""
        if task is not None:
            return len(self.visible(task))
        return max([len(self.visible(t)) for t in set(self.owners) if t is not None] or [self.n_experts])

    def caption(self) -> str:
        """What the labels mean (raw user text: the page shows it through ``plain``); "" for MMoE / OMoE."""
        if not self.layered:
            return ""
        labels, groups = self.labels(), self.groups()

        def span(group: str) -> str:
            names = [lab for lab, g in zip(labels, groups) if g == group]
            return names[0] if len(names) == 1 else f"{names[0]}–{names[-1]}"
        tasks = list(dict.fromkeys(g for g in groups if g != SHARED))
        return (f"{span(SHARED)}: shared experts, seen by every task's gate; "
                + "; ".join(f"{span(t)}: {t}'s own experts" for t in tasks)
                + ". A task's gate gives the other tasks' experts weight 0, so its panel shows only the "
                  "experts it sees.")


def expert_layout(model_config: Mapping | ModelConfig | None, tasks: Sequence[str],
                  n_experts: int | None = None) -> ExpertLayout:
    """The layout of a run's gates from its model config and task order. ``n_experts``: the number of gate
    columns stored; when the config does not give that many (a damaged or foreign record), every expert is
    treated as shared."""
    owners: list[str | None] = []
    try:
        mc = model_config if isinstance(model_config, ModelConfig) else ModelConfig.from_dict(model_config or {})
        owners = mc.expert_owners(list(tasks))
    except (ConfigError, TypeError, ValueError):
        pass
    if n_experts is not None and len(owners) != n_experts:
        owners = [None] * int(n_experts)
    return ExpertLayout(tuple(owners))


def has_gates(frame: pd.DataFrame | None) -> bool:
    return frame is not None and bool(gate_tasks(frame))


def gate_matrix(frame: pd.DataFrame, task: str) -> np.ndarray | None:
    """Per-sample gate weights of a task, [n, e] float64; None when the run has no gates."""
    cols = gate_columns(frame, task)
    if not cols:
        return None
    return frame[cols].to_numpy(dtype=np.float64, na_value=np.nan)


def expert_labels(n_experts: int) -> list[str]:
    return [f"e{i}" for i in range(n_experts)]


def dominant_expert(gates: np.ndarray) -> np.ndarray:
    """Index of the largest gate weight per sample, [n]."""
    if gates.size == 0:
        return np.zeros(len(gates), dtype=int)
    return np.nan_to_num(gates, nan=-1.0).argmax(1)


def order_and_sample(gates: np.ndarray, max_rows: int = MAX_HEATMAP_ROWS, seed: int = 0) -> np.ndarray:
    """Row positions to draw in a gate heatmap: at most ``max_rows`` samples, stratified
    by dominant expert (each expert keeps its share, and at least one row if it dominates
    any), sorted by dominant expert, then by that expert's weight (largest first)."""
    n = len(gates)
    if n == 0:
        return np.zeros(0, dtype=int)
    dom = dominant_expert(gates)
    keep = np.arange(n)
    if n > max_rows:
        rng = np.random.default_rng(seed)
        experts, counts = np.unique(dom, return_counts=True)
        quota = np.maximum(1, np.floor(counts / n * max_rows).astype(int))
        # hand out what rounding left over to the biggest groups, or take back the excess
        while quota.sum() < max_rows:
            quota[np.argmax(counts - quota * n / max_rows)] += 1
        while quota.sum() > max_rows:
            quota[np.argmax(np.where(quota > 1, quota, -1))] -= 1
        parts = [rng.choice(np.flatnonzero(dom == e), size=min(q, c), replace=False)
                 for e, q, c in zip(experts, quota, counts)]
        keep = np.sort(np.concatenate(parts))
    top = np.nan_to_num(gates[keep, dom[keep]], nan=0.0)
    order = np.lexsort((keep, -top, dom[keep]))   # last key is the primary one
    return keep[order]


def utilisation(frame: pd.DataFrame, tasks: Sequence[str] | None = None,
                layout: ExpertLayout | None = None) -> pd.DataFrame:
    """Mean gate weight per task and expert: long frame task, expert, weight, share_dominant, group
    (``SHARED`` or the expert's task). With a ``layout``: experts labelled by it, and only the experts
    each task's gate sees (the others have weight 0 by construction)."""
    rows = []
    for task in tasks if tasks is not None else gate_tasks(frame):
        g = gate_matrix(frame, task)
        if g is None or len(g) == 0:
            continue
        lay = layout if layout is not None and layout.n_experts == g.shape[1] else ExpertLayout((None,) * g.shape[1])
        labels, groups = lay.labels(), lay.groups()
        dom = dominant_expert(g)
        for e in lay.visible(task):
            rows.append({"task": task, "expert": labels[e], "weight": float(np.nanmean(g[:, e])),
                         "share_dominant": float(np.mean(dom == e)), "group": groups[e]})
    return pd.DataFrame(rows, columns=["task", "expert", "weight", "share_dominant", "group"])


def sample_entropy(gates: np.ndarray) -> np.ndarray:
    """Entropy (nats) of each sample's gate distribution, [n]."""
    g = np.clip(np.nan_to_num(gates, nan=0.0), 1e-12, None)
    return -(g * np.log(g)).sum(1)


def max_entropy(n_experts: int) -> float:
    """ln(E): the entropy of uniform gating (0 for one expert)."""
    return math.log(n_experts) if n_experts > 0 else 0.0


def entropy_history(history: pd.DataFrame) -> pd.DataFrame:
    """The ``gate_entropy`` rows of a history frame: epoch, split, task, value."""
    if history is None or history.empty or "metric" not in history:
        return pd.DataFrame(columns=["epoch", "split", "task", "value"])
    h = history[history["metric"] == "gate_entropy"]
    return h[["epoch", "split", "task", "value"]].reset_index(drop=True)


def _normalise(g: np.ndarray) -> np.ndarray:
    g = np.clip(np.nan_to_num(g, nan=0.0), 0.0, None)
    s = g.sum(1, keepdims=True)
    e = g.shape[1] if g.ndim == 2 and g.shape[1] else 1
    return np.where(s > 0, g / np.where(s > 0, s, 1.0), 1.0 / e)


def js_divergence(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Per-row Jensen-Shannon divergence in bits (0 identical .. 1 disjoint), [n]."""
    p, q = _normalise(p), _normalise(q)
    m = 0.5 * (p + q)

    def kl(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(a > 0, a * np.log2(a / np.where(b > 0, b, 1.0)), 0.0).sum(1)
    return np.clip(0.5 * kl(p, m) + 0.5 * kl(q, m), 0.0, 1.0)


def task_gate_similarity(frame: pd.DataFrame, tasks: Sequence[str] | None = None,
                         method: str = "js") -> pd.DataFrame:
    """task x task matrix comparing per-sample gates of two tasks, averaged over samples.

    method "js": mean Jensen-Shannon divergence in bits (0 = same routing, 1 = disjoint);
    method "cosine": mean cosine similarity (1 = same routing).
    """
    tasks = [t for t in (tasks if tasks is not None else gate_tasks(frame)) if gate_columns(frame, t)]
    mats = {t: gate_matrix(frame, t) for t in tasks}
    out = pd.DataFrame(np.nan, index=tasks, columns=tasks, dtype=np.float64)
    for a in tasks:
        for b in tasks:
            ga, gb = mats[a], mats[b]
            if ga.shape != gb.shape or len(ga) == 0:
                continue
            if method == "js":
                out.loc[a, b] = float(js_divergence(ga, gb).mean())
            elif method == "cosine":
                na = np.linalg.norm(ga, axis=1)
                nb = np.linalg.norm(gb, axis=1)
                with np.errstate(divide="ignore", invalid="ignore"):
                    cos = (ga * gb).sum(1) / (na * nb)
                out.loc[a, b] = float(np.nanmean(cos)) if np.isfinite(cos).any() else np.nan
            else:
                raise ValueError(f"unknown similarity {method!r}; use 'js' or 'cosine'")
    return out
