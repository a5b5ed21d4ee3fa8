"""Plotly figures of the gates (no Streamlit calls here): the per-sample heatmap, one sample's gate
weights, expert utilisation, gate entropy and the tasks' gate similarity. The style (titles, legends,
colours) is ``charts``'; user text goes through ``chart_text`` as there.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from mmoe import views as A
from mmoe.views.formatting import chart_text
from mmoe.views.gates import SHARED
from mmoe_dashboard.charts import GATE_SCALE, HEIGHT, LEGEND_GAP_PX, SPLIT_DASH, SPLIT_NAME, _epoch_axis, _in_order, \
    _layout, _legend_line, curve_mode, empty_figure, task_color

def _expert_groups(fig: go.Figure, groups: Sequence[str] | None) -> None:
    """CGC / PLE: a dotted line between consecutive groups of experts (shared, a task's own) and the
    group's name above it. ``groups``: per drawn expert column, ``SHARED`` or the owning task."""
    if not groups or len(set(groups)) < 2:
        return
    starts = [0] + [j for j in range(1, len(groups)) if groups[j] != groups[j - 1]]
    fig.update_layout(shapes=list(fig.layout.shapes) + [dict(
        type="line", xref="x", x0=j - 0.5, x1=j - 0.5, yref="paper", y0=0, y1=1,
        line=dict(color="#444", width=2, dash="dot")) for j in starts[1:]])
    for a, b in zip(starts, starts[1:] + [len(groups)]):
        fig.add_annotation(x=(a + b - 1) / 2, xref="x", y=1.0, yref="paper", yanchor="bottom", showarrow=False,
                           text="shared" if groups[a] == SHARED else f"{chart_text(groups[a])}'s own",
                           font=dict(size=11, color="#444"))


def gate_heatmap(gates: np.ndarray, task: str, hover: Sequence[str] | None = None,
                 positions: Sequence[int] | None = None, selectable: bool = True,
                 height: int = 460, title: str | None = None, labels: Sequence[str] | None = None,
                 groups: Sequence[str] | None = None, zmax: float | None = None) -> go.Figure:
    """Samples (rows, already sorted/sampled) x experts heatmap of one task's gate weights; ``zmax``: the top
    of the colour scale (panels drawn side by side share one, so a colour means one weight in all of them).

    With ``selectable``, an invisible scatter point sits on every cell (the heatmap itself
    returns no selection in Streamlit); its ``customdata`` is the row's position in the
    predictions frame (``positions``), so a click tells the page which sample it was.
    ``labels`` (raw expert labels, default e0, e1, ...) and ``groups`` (``views.gates.ExpertLayout``):
    CGC / PLE columns named s0 / <task>:t0 and marked shared or the task's own."""
    n, e = gates.shape
    labels = [chart_text(x) for x in labels] if labels is not None else A.expert_labels(e)
    ys = np.arange(n)
    if zmax is None:
        zmax = float(np.nanmax(gates)) if gates.size else 1.0
    fig = go.Figure(go.Heatmap(z=gates, x=labels, y=ys, colorscale=GATE_SCALE, zmin=0.0, zmax=max(zmax, 1e-6),
                               colorbar=dict(title=dict(text="gate weight", side="right"), thickness=14),
                               hoverinfo="skip" if selectable else None,
                               hovertemplate=None if selectable else "sample %{y}<br>%{x}: %{z:.3f}<extra></extra>"))
    if selectable and n:
        pos = np.asarray(positions if positions is not None else ys)
        xx = np.tile(np.arange(e), n)
        yy = np.repeat(ys, e)
        txt = None
        if hover is not None:
            txt = [f"{hover[i]}<br>{labels[j]}: {gates[i, j]:.3f}" for i in range(n) for j in range(e)]
        fig.add_trace(go.Scattergl(x=[labels[j] for j in xx], y=yy, mode="markers", showlegend=False,
                                   marker=dict(size=max(4, min(30, 600 // max(e, 1))), opacity=0, color="#000",
                                               symbol="square"),
                                   customdata=np.repeat(pos, e), text=txt,
                                   hovertemplate="%{text}<extra>click for details</extra>" if txt else
                                   "sample %{y}<br>%{x}<extra></extra>",
                                   name="samples"))
    # thin lines between dominant-expert groups: the shapes add_hline would draw, added in one
    # layout update (add_hline per boundary costs milliseconds each, and unsorted rows have hundreds)
    if n:
        dom = A.dominant_expert(gates)
        fig.update_layout(shapes=list(fig.layout.shapes) + [
            dict(type="line", xref="x domain", x0=0, x1=1, yref="y", y0=b, y1=b,
                 line=dict(color="white", width=1))
            for b in (np.flatnonzero(np.diff(dom)) + 0.5).tolist()])
    fig.update_xaxes(title_text="expert", type="category", categoryorder="array", categoryarray=labels,
                     side="bottom", tickmode="array" if e <= 16 else None, tickvals=labels if e <= 16 else None,
                     tickangle=-90 if e > 4 else 0, automargin=True)   # every expert named, upright when crowded
    fig.update_yaxes(title_text=f"{n:,} samples, sorted by dominant expert", autorange=False,
                     showticklabels=False, showgrid=False, ticks="", zeroline=False,
                     range=[n - 0.5, -0.5] if n else [0.5, -0.5])
    # hoverdistance -1: the nearest target is picked wherever the pointer is, so a click anywhere
    # in a cell (not only on its invisible marker, at most 30 px wide) selects that sample
    fig.update_layout(clickmode="event+select", dragmode=False, hovermode="closest", hoverdistance=-1)
    _expert_groups(fig, groups)
    return _layout(fig, title=title or f"{task}: gate weight per sample", height=height)


def sample_gates_figure(details: Mapping, layout=None) -> go.Figure:
    """One small bar chart per task: the chosen sample's gate weight per expert (with a CGC / PLE
    ``layout``: only the experts the task's gate sees, labelled s0 / <task>:t0)."""
    tasks = [t for t, d in details["tasks"].items() if d.get("gates")]
    if not tasks:
        return empty_figure("this run has no gates")
    fig = make_subplots(rows=1, cols=len(tasks), subplot_titles=[chart_text(t) for t in tasks], shared_yaxes=True,
                        horizontal_spacing=0.04)
    ymax = max(max(details["tasks"][t]["gates"]) for t in tasks)
    for i, t in enumerate(tasks):
        g = details["tasks"][t]["gates"]
        x = A.expert_labels(len(g))
        if layout is not None and layout.n_experts == len(g):
            keep = layout.visible(t)
            x, g = [chart_text(layout.labels()[j]) for j in keep], [g[j] for j in keep]
        fig.add_trace(go.Bar(x=x, y=g, marker=dict(color=task_color(i)), showlegend=False,
                             hovertemplate=f"{chart_text(t)}<br>%{{x}}: %{{y:.3f}}<extra></extra>"), row=1, col=i + 1)
        fig.update_xaxes(title_text="expert", row=1, col=i + 1)
    fig.update_yaxes(title_text="gate weight", row=1, col=1)
    fig.update_yaxes(range=[0, min(1.0, ymax * 1.15 + 0.02)])
    return _layout(fig, title=f"gate weights of row {details['row']}", height=280)


def utilisation_figure(util: pd.DataFrame, title: str | None = None, ymax: float | None = None,
                       height: int = HEIGHT, tasks: Sequence[str] | None = None) -> go.Figure:
    """Mean gate weight per expert, grouped bars per task, with the uniform share 1/E as a line (E the
    experts one gate sees: for CGC / PLE the shared ones and the task's own, marked by group)."""
    if util.empty:
        return empty_figure("no gates in this run")
    experts = [chart_text(x) for x in dict.fromkeys(util["expert"])]
    per_gate = int(util.groupby("task").size().max())
    fig = go.Figure()
    for i, task, d in _in_order(util, tasks):
        fig.add_trace(go.Bar(x=[chart_text(x) for x in d["expert"]], y=d["weight"], name=chart_text(task),
                             marker=dict(color=task_color(i)),
                             customdata=d["share_dominant"],
                             hovertemplate=f"{chart_text(task)}<br>%{{x}}: mean weight %{{y:.3f}}<br>"
                                           "dominant for %{customdata:.1%} of samples<extra></extra>"))
    # the reference line is a shape above the bars; its label is a legend entry, not an annotation
    # that bars would cover
    fig.add_hline(y=1 / per_gate, line=dict(color="#666", dash="dash"), layer="above")
    _legend_line(fig, f"uniform 1/{per_gate} = {1 / per_gate:.3g}")
    fig.update_layout(barmode="group")
    fig.update_xaxes(title_text="expert", type="category", categoryorder="array", categoryarray=experts)
    extra = 0
    if "group" in util and util["group"].nunique() > 1:   # CGC / PLE: slanted <task>:t<i> labels, legend below
        _expert_groups(fig, list(dict(zip(util["expert"], util["group"])).values()))
        fig.update_xaxes(tickangle=-35, title_text=None)
        extra = min(200, 4 * int(util["expert"].str.len().max()))
    fig.update_yaxes(title_text="mean gate weight", range=[0, ymax] if ymax else None)
    _layout(fig, title=title or "expert utilisation (mean gate weight per task)", height=height + extra)
    if extra and fig.layout.legend.y is not None:
        m = fig.layout.margin   # the plot keeps its height (legend y counts in it), the margin grows
        fig.update_layout(legend=dict(y=-(LEGEND_GAP_PX + extra) / max(height - m.t - m.b, 60)), margin_b=m.b + extra)
    return fig


def entropy_figure(ent: pd.DataFrame, n_experts: int, tasks: Sequence[str] | None = None) -> go.Figure:
    """Mean gate entropy per epoch and task, with ln(E) (uniform gating) as the ceiling."""
    if ent.empty:
        return empty_figure("no gate entropy was logged")
    fig = go.Figure()
    for i, task, d in _in_order(ent, tasks):
        for split in ("train", "val", "test"):
            s = d[d["split"] == split]
            if s.empty:
                continue
            fig.add_trace(go.Scatter(x=s["epoch"], y=s["value"], mode=curve_mode(len(s)),
                                     name=f"{chart_text(task)} ({SPLIT_NAME[split]})",
                                     line=dict(color=task_color(i), dash=SPLIT_DASH[split]), marker=dict(size=5),
                                     hovertemplate=f"{chart_text(task)} {SPLIT_NAME[split]}<br>epoch %{{x}}<br>"
                                                   "entropy %{y:.3f} nats<extra></extra>"))
    top = A.max_entropy(n_experts)
    fig.add_hline(y=top, line=dict(color="#666", dash="dash"))
    _legend_line(fig, f"max ln({n_experts}) = {top:.2f} (uniform gating)")
    _epoch_axis(fig, ent["epoch"].to_numpy())
    fig.update_yaxes(title_text="gate entropy (nats)", range=[0, top * 1.15 + 0.05])
    return _layout(fig, title="gate entropy per epoch (near 0 = collapsed onto one expert)", height=HEIGHT + 40)


def similarity_figure(mat: pd.DataFrame, method: str = "js") -> go.Figure:
    if mat.empty:
        return empty_figure("no gates in this run")
    if method == "js":
        scale, title, cb, lo, hi = "Reds", "task gate divergence (mean Jensen–Shannon, bits)", "JS divergence", 0, 1
    else:
        scale, title, cb, lo, hi = "Blues", "task gate similarity (mean cosine of per-sample gates)", "cosine", 0, 1
    z = mat.to_numpy(float)
    fig = go.Figure(go.Heatmap(z=z, x=[chart_text(c) for c in mat.columns], y=[chart_text(c) for c in mat.index],
                               colorscale=scale, zmin=lo, zmax=hi,
                               text=[[f"{v:.3f}" for v in row] for row in z], texttemplate="%{text}",
                               colorbar=dict(title=dict(text=cb)),
                               hovertemplate="%{y} vs %{x}: %{z:.3f}<extra></extra>"))
    fig.update_xaxes(type="category", title_text="task")
    fig.update_yaxes(type="category", title_text="task", autorange="reversed")
    return _layout(fig, title=title, height=max(260, 70 * len(mat) + 140))
