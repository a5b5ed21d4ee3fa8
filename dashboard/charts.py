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

# ten well-separated hues (pink, the one closest to purple, last); a run's id picks one (``run_colors``)
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
    """The colour of each compared run, the same in every chart of the comparison: a run keeps the colour
    of its id (id mod 10) as long as no other compared run has it; where two would share one (runs 3 and
    13), the newer run takes the next free colour, so up to ten compared runs are never alike."""
    out: dict[int, str] = {}
    used: set[int] = set()
    n = len(RUN_PALETTE)
    for r in sorted({int(r) for r in run_ids}):
        c = r % n
        while c in used and len(used) < n:
            c = (c + 1) % n
        used.add(c)
        out[r] = RUN_PALETTE[c]
        if len(used) == n:
            used.clear()
    return out


def task_color(i: int) -> str:
    return TASK_PALETTE[i % len(TASK_PALETTE)]


def _in_order(frame: pd.DataFrame, tasks: Sequence[str] | None):
    """(colour index, task, rows) per task: in the run's task order when given (so a task has the same
    colour in every chart), else in order of appearance."""
    order = list(tasks) if tasks else list(dict.fromkeys(frame["task"]))
    order += [t for t in dict.fromkeys(frame["task"]) if t not in order]
    return [(i, t, frame[frame["task"] == t]) for i, t in enumerate(order) if (frame["task"] == t).any()]


LEGEND_GAP_PX = 62     # from the bottom of the plot area to the legend: x tick labels + axis title
LEGEND_BAND_PX = 56    # extra bottom margin for a legend of one or two rows


def _has_legend(fig: go.Figure) -> bool:
    """True when plotly would draw a legend: two or more traces that show in it (or one forced)."""
    if fig.layout.showlegend is False:
        return False
    shown = [t for t in fig.data if t.showlegend is not False and t.type not in ("heatmap", "histogram2d")]
    return len(shown) >= 2 or any(t.showlegend is True for t in shown)


TITLE_TOP_PX = 66       # top margin of a titled chart: plotly's toolbar (its top ~30 px), then the title
TOOLBAR_PX = 30         # plotly's toolbar at the top right of a chart
ABOVE_PLOT_PX = 22      # room for a row of text on the plot's top edge (subplot titles, expert group names)


def _title(text: str, lift: int = 0, **font) -> dict:
    """The title just above the plot area (``lift`` px higher), below the toolbar plotly shows at the top
    right: a title in the middle of the margin ran under the toolbar's icons."""
    return dict(text=chart_text(text), yref="paper", y=1, yanchor="bottom", pad=dict(b=8 + lift), font=font or None)


def _text_above_plot(fig: go.Figure) -> bool:
    """True when annotations sit on the plot's top edge (subplot titles, CGC / PLE group names)."""
    return any(a.yref == "paper" and a.y is not None and a.y >= 1 and a.yanchor == "bottom"
               for a in fig.layout.annotations)


def _layout(fig: go.Figure, title: str | None = None, height: int = HEIGHT, **kw) -> go.Figure:
    """Title, height and margins; the legend (if any) goes *below* the plot, left-aligned, so
    long entries never run into the title (plotly's margin auto-expansion makes room for a
    legend that wraps onto more rows)."""
    lift = ABOVE_PLOT_PX if _text_above_plot(fig) else 0
    top = (TITLE_TOP_PX if title else TOOLBAR_PX if lift else 20) + lift
    bottom = 50
    legend = None
    if _has_legend(fig):
        bottom += LEGEND_BAND_PX
        plot_h = max(height - top - bottom, 60)
        legend = dict(orientation="h", yanchor="top", y=-LEGEND_GAP_PX / plot_h, xanchor="left", x=0)
    fig.update_layout(title=_title(title, lift) if title else None, height=height,
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
    fig.update_layout(title=_title(title, size=15), height=330 + TITLE_TOP_PX - 45,
                      margin=dict(l=10, r=10, t=TITLE_TOP_PX, b=10),
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
    fig = make_subplots(rows=1, cols=2, column_widths=[0.6, 0.4], horizontal_spacing=0.18,   # room for "rows"
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
