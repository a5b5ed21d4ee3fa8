"""Plotly figure builders for the Inspect and Compare pages (no Streamlit calls here).

Each function takes what ``mmoe.views`` computed and returns a ``go.Figure`` with
axis titles, units, a legend where there is more than one trace, and a fixed height.

User text (task, column, class and run names; a ``title`` or ``message`` argument) is plain text:
every figure passes it through ``chart_text``, so plotly never reads it as HTML or a template.
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from mmoe import views as A
from mmoe.views.formatting import chart_text
from mmoe.views.gates import SHARED

# ten well-separated hues, in the order runs get them (pink, the one close to purple, comes last)
RUN_PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#17becf",
               "#7f7f7f", "#bcbd22", "#e377c2"]
TASK_PALETTE = ["#4C78A8", "#F58518", "#54A24B", "#E45756", "#72B7B2", "#B279A2", "#EECA3B", "#9D755D"]
SPLIT_DASH = {"train": "dot", "val": "solid", "test": "dash"}
SPLIT_NAME = {"train": "training", "val": "validation", "test": "test"}
GATE_SCALE = "Viridis"
HEIGHT = 340


MAX_MARKED_EPOCHS = 30   # beyond this many points, markers merge into a thick line that hides the dashes


def curve_mode(points: int) -> str:
    """Plotly mode of a per-epoch curve: markers only while they stay apart, so train (dotted) and
    validation (solid) lines can still be told apart over hundreds of epochs."""
    return "lines+markers" if points <= MAX_MARKED_EPOCHS else "lines"

def run_colors(run_ids: Sequence[int]) -> dict[int, str]:
    """The colour of each compared run, the same in every chart of the comparison: runs in id order take
    the palette in order, so up to ten runs never share a colour (a colour from the id alone made runs
    3 and 13 look alike), and adding a newer run keeps the older runs' colours."""
    return {int(r): RUN_PALETTE[i % len(RUN_PALETTE)] for i, r in enumerate(sorted({int(r) for r in run_ids}))}


def task_color(i: int) -> str:
    return TASK_PALETTE[i % len(TASK_PALETTE)]


LEGEND_GAP_PX = 62     # from the bottom of the plot area to the legend: x tick labels + axis title
LEGEND_BAND_PX = 56    # extra bottom margin for a legend of one or two rows


def _has_legend(fig: go.Figure) -> bool:
    """True when plotly would draw a legend: two or more traces that show in it (or one forced)."""
    if fig.layout.showlegend is False:
        return False
    shown = [t for t in fig.data if t.showlegend is not False and t.type not in ("heatmap", "histogram2d")]
    return len(shown) >= 2 or any(t.showlegend is True for t in shown)


def _layout(fig: go.Figure, title: str | None = None, height: int = HEIGHT, **kw) -> go.Figure:
    """Title, height and margins; the legend (if any) goes *below* the plot, left-aligned, so
    long entries never run into the title (plotly's margin auto-expansion makes room for a
    legend that wraps onto more rows)."""
    top = 50 if title else 20
    bottom = 50
    legend = None
    if _has_legend(fig):
        bottom += LEGEND_BAND_PX
        plot_h = max(height - top - bottom, 60)
        legend = dict(orientation="h", yanchor="top", y=-LEGEND_GAP_PX / plot_h, xanchor="left", x=0)
    fig.update_layout(title=dict(text=chart_text(title)) if title else None, height=height,
                      margin=dict(l=60, r=20, t=top, b=bottom), legend=legend, **kw)
    return fig


def _legend_line(fig: go.Figure, name: str, color: str = "#666", dash: str = "dash") -> None:
    """A legend-only entry for a reference line drawn as a shape (add_hline): its label then sits
    with the other legend entries instead of on top of bars or curves."""
    fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", name=name, line=dict(color=color, dash=dash),
                             hoverinfo="skip", showlegend=True))


def _epoch_axis(fig: go.Figure, epochs) -> None:
    """Whole-number epoch ticks (no 1.5) for short runs."""
    n = int(np.nanmax(epochs)) if len(epochs) else 0
    fig.update_xaxes(tickformat="d", dtick=1 if n <= 12 else None, title_text="epoch")


def empty_figure(message: str, height: int = 200) -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(text=chart_text(message), showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return _layout(fig, height=height)


def _metric_title(metric: str) -> str:
    return {"loss": "loss", "auc": "ROC AUC", "rmse": "RMSE", "mae": "MAE", "r2": "R²", "logloss": "log loss",
            "accuracy": "accuracy", "macro_f1": "macro F1", "gate_entropy": "gate entropy (nats)"}.get(metric, metric)


# ----------------------------------------------------------------------------- curves

def task_curves(curves: pd.DataFrame, metric: str = "loss", tasks: Sequence[str] | None = None) -> go.Figure:
    """One panel per task: train (dotted) and validation (solid) per epoch."""
    tasks = list(tasks) if tasks is not None else list(dict.fromkeys(curves["task"]))
    if curves.empty or not tasks:
        return empty_figure("no epochs were logged for this run")
    cols = min(len(tasks), 3)
    rows = math.ceil(len(tasks) / cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[chart_text(t) for t in tasks], horizontal_spacing=0.08,
                        vertical_spacing=0.18 if rows > 1 else 0.1)
    for i, task in enumerate(tasks):
        r, c = i // cols + 1, i % cols + 1
        for split in ("train", "val", "test"):
            d = curves[(curves["task"] == task) & (curves["split"] == split)]
            if d.empty:
                continue
            fig.add_trace(go.Scatter(x=d["epoch"], y=d["value"], mode=curve_mode(len(d)), name=SPLIT_NAME[split],
                                     legendgroup=split, showlegend=i == 0, marker=dict(size=5),
                                     line=dict(color=task_color(i), dash=SPLIT_DASH[split]),
                                     hovertemplate=f"{chart_text(task)} {SPLIT_NAME[split]}<br>epoch %{{x}}<br>"
                                                   f"{metric} %{{y:.4g}}<extra></extra>"), row=r, col=c)
        fig.update_yaxes(title_text=_metric_title(metric) if c == 1 else None, row=r, col=c)
    _epoch_axis(fig, curves["epoch"].to_numpy())
    return _layout(fig, height=300 * rows + 40)


def loss_curve_figure(curves: pd.DataFrame, title: str) -> go.Figure:
    """A live job's curves (epoch, split, task, loss) in one panel: colour = task, dash = split,
    the same style as every other per-epoch chart."""
    fig = go.Figure()
    tasks = list(dict.fromkeys(curves["task"]))
    for i, task in enumerate(tasks):
        for split in ("train", "val", "test"):
            d = curves[(curves["task"] == task) & (curves["split"] == split)]
            if d.empty:
                continue
            fig.add_trace(go.Scatter(
                x=d["epoch"], y=d["loss"], mode=curve_mode(len(d)), name=f"{chart_text(task)} · {SPLIT_NAME[split]}",
                line=dict(color=task_color(i), dash=SPLIT_DASH[split], width=2), marker=dict(size=6),
                hovertemplate="epoch %{x}<br>loss %{y:.4f}<extra>%{fullData.name}</extra>"))
    fig.update_layout(title=dict(text=chart_text(title), font=dict(size=15)), height=330,
                      margin=dict(l=10, r=10, t=45, b=10),
                      legend=dict(title="task · split", orientation="v"), hovermode="x unified")
    last = int(curves["epoch"].max()) if len(curves) else 1
    fig.update_xaxes(title="epoch", dtick=1 if last <= 20 else None, range=[0.7, max(last, 2) + 0.3])
    fig.update_yaxes(title="loss (task's own loss; lower is better)")
    return fig


def overlay_curves(series: Sequence[dict], task: str, metric: str = "loss", y_title: str | None = None) -> go.Figure:
    """Runs overlaid for one task. ``series``: dicts run_id, label, color, split, epoch, value (already smoothed).
    ``task`` names the chart (a task, or a task group such as ``quality (regression)``); ``y_title``
    says what the metric is when the task's kind decides it (the loss: log loss or MSE)."""
    fig = go.Figure()
    shown = set()
    for s in series:
        if len(s["epoch"]) == 0:
            continue
        first = s["run_id"] not in shown
        shown.add(s["run_id"])
        label = chart_text(s["label"])
        fig.add_trace(go.Scatter(x=s["epoch"], y=s["value"], mode=curve_mode(len(s["epoch"])),
                                 name=label, legendgroup=str(s["run_id"]), showlegend=first,
                                 marker=dict(size=4), line=dict(color=s["color"], dash=SPLIT_DASH[s["split"]]),
                                 hovertemplate=f"{label} ({SPLIT_NAME[s['split']]})<br>epoch %{{x}}<br>"
                                               f"{metric} %{{y:.4g}}<extra></extra>"))
    if not fig.data:
        return empty_figure(f"no {metric} history for {task}")
    _epoch_axis(fig, np.concatenate([np.asarray(s["epoch"]) for s in series]))
    fig.update_yaxes(title_text=y_title or _metric_title(metric))
    return _layout(fig, title=f"{task}: {_metric_title(metric)} (solid validation, dotted train)", height=380)


# ----------------------------------------------------------------------------- binary

def roc_figure(curves: dict, task: str) -> go.Figure:
    if not curves["ok"]:
        return empty_figure(curves["reason"])
    roc = curves["roc"]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="chance", line=dict(color="#999", dash="dash"),
                             hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=roc["fpr"], y=roc["tpr"], mode="lines", name=f"AUC {curves['auc']:.3f}",
                             line=dict(color=TASK_PALETTE[0], width=2), customdata=roc["threshold"],
                             hovertemplate="FPR %{x:.3f}<br>TPR %{y:.3f}<br>threshold %{customdata:.3f}<extra></extra>"))
    fig.update_xaxes(title_text="false positive rate", range=[0, 1])
    fig.update_yaxes(title_text="true positive rate", range=[0, 1.02])
    return _layout(fig, title=f"{task}: ROC curve")


def pr_figure(curves: dict, task: str) -> go.Figure:
    if not curves["ok"]:
        return empty_figure(curves["reason"])
    pr = curves["pr"]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[0, 1], y=[curves["prevalence"]] * 2, mode="lines",
                             name=f"base rate {curves['prevalence']:.3f}", line=dict(color="#999", dash="dash"),
                             hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=pr["recall"], y=pr["precision"], mode="lines", name=f"AP {curves['ap']:.3f}",
                             line=dict(color=TASK_PALETTE[1], width=2),
                             hovertemplate="recall %{x:.3f}<br>precision %{y:.3f}<extra></extra>"))
    fig.update_xaxes(title_text="recall", range=[0, 1])
    fig.update_yaxes(title_text="precision", range=[0, 1.02])
    return _layout(fig, title=f"{task}: precision–recall")


def calibration_figure(cal: pd.DataFrame, task: str) -> go.Figure:
    if cal.empty:
        return empty_figure("no labelled validation rows")
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfectly calibrated",
                             line=dict(color="#999", dash="dash"), hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=cal["mean_pred"], y=cal["frac_pos"], mode="lines+markers", name="model",
                             marker=dict(size=np.clip(np.sqrt(cal["count"].to_numpy(float)) / 2, 5, 18),
                                         color=TASK_PALETTE[2]),
                             line=dict(color=TASK_PALETTE[2]), customdata=cal[["count", "bin_low", "bin_high"]],
                             hovertemplate="bin %{customdata[1]:.1f}–%{customdata[2]:.1f}<br>mean predicted "
                                           "%{x:.3f}<br>observed positive rate %{y:.3f}<br>%{customdata[0]:,} rows"
                                           "<extra></extra>"))
    fig.update_xaxes(title_text="mean predicted probability", range=[0, 1])
    fig.update_yaxes(title_text="observed positive rate", range=[0, 1.02])
    return _layout(fig, title=f"{task}: calibration (marker size ~ rows per bin)")


def score_histogram_figure(hist: pd.DataFrame, task: str) -> go.Figure:
    if hist.empty or hist["count"].sum() == 0:
        return empty_figure("no labelled validation rows")
    fig = go.Figure()
    for i, (cls, d) in enumerate(hist.groupby("cls", sort=False)):
        total = max(int(d["count"].sum()), 1)   # share of the class: a rare positive class stays visible
        fig.add_trace(go.Bar(x=d["bin_mid"], y=d["count"] / total, name=f"actual {chart_text(cls)} ({total:,} rows)",
                             width=d["bin_high"] - d["bin_low"],
                             marker=dict(color=TASK_PALETTE[3] if i else TASK_PALETTE[0]), opacity=0.6,
                             customdata=d[["bin_low", "bin_high", "count"]],
                             hovertemplate=f"actual {chart_text(cls)}<br>score "
                                           "%{customdata[0]:.2f}–%{customdata[1]:.2f}"
                                           "<br>%{customdata[2]:,} rows (%{y:.1%} of the class)<extra></extra>"))
    fig.update_layout(barmode="overlay")
    fig.update_xaxes(title_text="predicted probability of the positive class", range=[0, 1])
    fig.update_yaxes(title_text="share of the class's rows", tickformat=".0%")
    return _layout(fig, title=f"{task}: score distribution by actual class")


# ----------------------------------------------------------------------------- regression / multiclass

def pred_vs_actual_figure(points: pd.DataFrame, stats: Mapping, task: str) -> go.Figure:
    if points.empty:
        return empty_figure("no labelled validation rows")
    lo = float(min(points["actual"].min(), points["predicted"].min()))
    hi = float(max(points["actual"].max(), points["predicted"].max()))
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="perfect (y = x)",
                             line=dict(color="#999", dash="dash"), hoverinfo="skip"))
    fig.add_trace(go.Scattergl(x=points["actual"], y=points["predicted"], mode="markers", name="validation rows",
                               marker=dict(size=5, opacity=0.5, color=TASK_PALETTE[0]), customdata=points["row"],
                               hovertemplate="row %{customdata}<br>actual %{x:.4g}<br>predicted %{y:.4g}"
                                             "<extra></extra>"))
    fig.update_xaxes(title_text=f"actual {chart_text(task)}")
    fig.update_yaxes(title_text=f"predicted {chart_text(task)}")
    shown = f" ({stats['shown']:,} of {stats['n']:,} rows shown)" if stats["shown"] < stats["n"] else ""
    return _layout(fig, title=f"{task}: predicted vs actual — RMSE {stats['rmse']:.4g}, R² {stats['r2']:.3f}{shown}")


def residual_figure(points: pd.DataFrame, stats: Mapping, task: str) -> go.Figure:
    if points.empty:
        return empty_figure("no labelled validation rows")
    fig = make_subplots(rows=1, cols=2, column_widths=[0.6, 0.4], horizontal_spacing=0.12,
                        subplot_titles=("residual vs predicted", "residual distribution"))
    fig.add_trace(go.Scattergl(x=points["predicted"], y=points["residual"], mode="markers", showlegend=False,
                               marker=dict(size=4, opacity=0.5, color=TASK_PALETTE[1]), customdata=points["row"],
                               hovertemplate="row %{customdata}<br>predicted %{x:.4g}<br>residual %{y:.4g}"
                                             "<extra></extra>"), row=1, col=1)
    fig.add_hline(y=0, line=dict(color="#999", dash="dash"), row=1, col=1)
    fig.add_trace(go.Histogram(x=points["residual"], nbinsx=40, showlegend=False, marker=dict(color=TASK_PALETTE[1]),
                               hovertemplate="residual %{x}<br>%{y:,} rows<extra></extra>"), row=1, col=2)
    fig.update_xaxes(title_text=f"predicted {chart_text(task)}", row=1, col=1)
    fig.update_yaxes(title_text="residual (predicted − actual)", row=1, col=1)
    fig.update_xaxes(title_text="residual (predicted − actual)", row=1, col=2)
    fig.update_yaxes(title_text="rows", row=1, col=2)
    return _layout(fig, title=f"{task}: residuals — mean {stats['residual_mean']:.3g}, sd {stats['residual_std']:.3g}")


def confusion_figure(cm: pd.DataFrame, task: str) -> go.Figure:
    if cm.empty:
        return empty_figure("no class probabilities stored for this task")
    share = A.normalise_rows(cm)
    text = [[f"{cm.iat[i, j]:,}<br>{share.iat[i, j]:.0%}" for j in range(cm.shape[1])] for i in range(cm.shape[0])]
    fig = go.Figure(go.Heatmap(z=share.to_numpy(), x=[chart_text(c) for c in cm.columns],
                               y=[chart_text(c) for c in cm.index], text=text,
                               texttemplate="%{text}", colorscale="Blues", zmin=0, zmax=1,
                               colorbar=dict(title=dict(text="share of actual class")),
                               customdata=cm.to_numpy(),
                               hovertemplate="actual %{y}<br>predicted %{x}<br>%{customdata:,} rows "
                                             "(%{z:.1%} of actual)<extra></extra>"))
    fig.update_xaxes(title_text="predicted class", type="category")
    fig.update_yaxes(title_text="actual class", type="category", autorange="reversed")
    n = len(cm)
    return _layout(fig, title=f"{task}: confusion matrix ({int(cm.to_numpy().sum()):,} rows)",
                   height=max(300, 60 * n + 140))


# ----------------------------------------------------------------------------- gates

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
                 groups: Sequence[str] | None = None) -> go.Figure:
    """Samples (rows, already sorted/sampled) x experts heatmap of one task's gate weights.

    With ``selectable``, an invisible scatter point sits on every cell (the heatmap itself
    returns no selection in Streamlit); its ``customdata`` is the row's position in the
    predictions frame (``positions``), so a click tells the page which sample it was.
    ``labels`` (raw expert labels, default e0, e1, ...) and ``groups`` (``views.gates.ExpertLayout``):
    CGC / PLE columns named s0 / <task>:t0 and marked shared or the task's own."""
    n, e = gates.shape
    labels = [chart_text(x) for x in labels] if labels is not None else A.expert_labels(e)
    ys = np.arange(n)
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
                     side="bottom")
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


def _in_order(frame: pd.DataFrame, tasks: Sequence[str] | None):
    """(colour index, task, rows) per task: in the run's task order when given (so a task has the same
    colour in every chart), else in order of appearance."""
    order = list(tasks) if tasks else list(dict.fromkeys(frame["task"]))
    order += [t for t in dict.fromkeys(frame["task"]) if t not in order]
    return [(i, t, frame[frame["task"] == t]) for i, t in enumerate(order) if (frame["task"] == t).any()]


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


def task_weights_figure(weights: pd.DataFrame, method: str, tasks: Sequence[str] | None = None) -> go.Figure:
    """The learned loss weight of each task per epoch (``mmoe.views.task_weights``): GradNorm's w_k (they
    sum to the number of tasks) or uncertainty weighting's exp(-s_k)."""
    if weights.empty:
        return empty_figure("this run's task weights were fixed")
    fig = go.Figure()
    for i, task, s in _in_order(weights, tasks):
        fig.add_trace(go.Scatter(x=s["epoch"], y=s["weight"], mode=curve_mode(len(s)), name=chart_text(task),
                                 line=dict(color=task_color(i)), marker=dict(size=5),
                                 hovertemplate=f"{chart_text(task)}<br>epoch %{{x}}<br>weight %{{y:.4f}}<extra></extra>"))
    if method == "GradNorm":
        fig.add_hline(y=1.0, line=dict(color="#666", dash="dash"))
        _legend_line(fig, "1 (the starting weight; the weights sum to the number of tasks)")
    _epoch_axis(fig, weights["epoch"].to_numpy())
    fig.update_yaxes(title_text="weight of the task's loss" if method == "GradNorm" else "exp(-log variance)",
                     rangemode="tozero")
    return _layout(fig, title=f"learned task weights per epoch ({method})", height=HEIGHT + 40)
