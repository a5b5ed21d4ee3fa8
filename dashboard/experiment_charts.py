"""Plotly figures of the Experiments page: a metric against the swept setting with 95% bands, paired
differences with their intervals around 0, and mean learning curves with bands (no Streamlit here).
User text (tasks, settings, labels) goes through ``chart_text``, as in ``charts``."""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from mmoe.views.formatting import chart_text
from mmoe_dashboard.charts import SPLIT_NAME, _epoch_axis, _layout, _metric_title, empty_figure, task_color

BAND_ALPHA = 0.18
SWEEP_BANDS_ALPHA = 0.4   # the sweep's bands share this opacity (at most BAND_ALPHA each): 5 stacked stay see-through
ZOOM_RATIO = 4.0          # intervals this many times taller than the means' view: zoom to the means
ZOOM_NOTE = "zoomed to the means: the 95% intervals run past the chart's edges (hover a point for its interval)"


def _rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def _numeric(values) -> bool:
    try:
        [float(v) for v in values]
        return not any(isinstance(v, bool) for v in values)
    except (TypeError, ValueError):
        return False


def _zoom(df: pd.DataFrame) -> list[float] | None:
    """A y range around the means when the 95% intervals are far wider than the means' spread (e.g. with
    2 seeds, +-12.7 standard errors): else the lines lie on top of each other in a sliver of the chart."""
    means = df["mean"].astype(float)
    lo, hi = df["lo"].fillna(df["mean"]).astype(float), df["hi"].fillna(df["mean"]).astype(float)
    m_lo, m_hi = float(means.min()), float(means.max())
    pad = max(0.6 * (m_hi - m_lo), 0.02 * max(abs(m_lo), abs(m_hi)), 1e-6)
    view = [max(float(lo.min()), m_lo - pad), min(float(hi.max()), m_hi + pad)]
    return view if float(hi.max()) - float(lo.min()) > ZOOM_RATIO * (view[1] - view[0]) else None


def sweep_figure(df: pd.DataFrame, task: str, metric: str, arrow: str = "") -> go.Figure:
    """One line per group (e.g. architecture) of the metric's mean over seeds against the swept
    setting, with its 95% interval as a band (a numeric setting) or as error bars (a categorical one).
    The bands are drawn first and faint (their opacity shared by the lines), so no band hides a line; when
    they are far wider than the means' spread the y axis shows the means and says the bands run past it."""
    df = df.dropna(subset=["mean"])
    if df.empty:
        return empty_figure("No finished runs yet: the chart fills in as runs end.")
    key = df.attrs.get("x_key", "setting")
    x_key = chart_text(key)
    numeric = _numeric(df["x"].tolist())
    groups = list(df.groupby("line", sort=False))
    alpha = round(min(BAND_ALPHA, SWEEP_BANDS_ALPHA / len(groups)), 3)
    fig, lines = go.Figure(), []
    for i, (line, g) in enumerate(groups):
        color = task_color(i)
        g = g.sort_values("x") if numeric else g
        x = g["x"].astype(float) if numeric else g["x"].map(chart_text)
        lo, hi = g["lo"].fillna(g["mean"]), g["hi"].fillna(g["mean"])
        if numeric and len(g) > 1:
            fig.add_trace(go.Scatter(x=list(x) + list(x)[::-1], y=list(hi) + list(lo)[::-1], fill="toself", mode="lines",
                                     fillcolor=_rgba(color, alpha), line=dict(width=0), hoverinfo="skip",
                                     showlegend=False, legendgroup=str(line)))
            err = None
        else:
            err = dict(type="data", symmetric=False, array=(hi - g["mean"]).tolist(),
                       arrayminus=(g["mean"] - lo).tolist(), color=color, thickness=1.5, width=6)
        lines.append(go.Scatter(x=x, y=g["mean"], mode="lines+markers" if numeric else "markers",
                                name=chart_text(line),
                                legendgroup=str(line), line=dict(color=color), marker=dict(size=9, color=color),
                                error_y=err, customdata=g[["lo", "hi", "n"]].to_numpy(),
                                hovertemplate=f"{x_key}=%{{x}}<br>mean %{{y:.4f}}<br>95% interval "
                                              "[%{customdata[0]:.4f}, %{customdata[1]:.4f}]<br>"
                                              "%{customdata[2]} seeds<extra>%{fullData.name}</extra>"))
    for trace in lines:   # on top of every band
        fig.add_trace(trace)
    fig.update_xaxes(title_text=x_key, type="linear" if numeric else "category")
    fig.update_yaxes(title_text=f"{_metric_title(metric)} {arrow}".strip())     # (short: a long one ran into the title)
    view = _zoom(df)
    if view is not None:
        fig.update_yaxes(range=view)
        fig.add_annotation(text=ZOOM_NOTE, xref="paper", yref="paper", x=0, y=1, xanchor="left", yanchor="bottom",
                           showarrow=False, font=dict(size=11, color="#555"))
    return _layout(fig, f"{task}: {_metric_title(metric)} against {key} (mean over seeds, 95% interval)")


def differences_figure(diffs: pd.DataFrame, task: str) -> go.Figure:
    """Each paired difference (b − a) of one task with its 95% interval, against a line at 0."""
    d = diffs[diffs["task"] == task].dropna(subset=["mean"])
    if d.empty:
        return empty_figure("No paired differences yet (they need runs of two settings with the same seeds).")
    lo, hi = d["lo"].fillna(d["mean"]), d["hi"].fillna(d["mean"])
    detected = [(a > 0 or b < 0) for a, b in zip(lo, hi)]
    colors = ["#d62728" if x else "#7f7f7f" for x in detected]
    fig = go.Figure(go.Scatter(
        x=d["mean"], y=d["compared"].map(chart_text), mode="markers", marker=dict(size=10, color=colors),
        error_x=dict(type="data", symmetric=False, array=(hi - d["mean"]).tolist(),
                     arrayminus=(d["mean"] - lo).tolist(), thickness=1.5, width=6),
        customdata=d[["what it says"]].map(chart_text).to_numpy(),
        hovertemplate="%{x:.4f}<br>%{customdata[0]}<extra></extra>",
        showlegend=False))
    fig.add_vline(x=0, line=dict(color="#444", dash="dash"))
    metric = d["metric"].iloc[0]
    fig.update_xaxes(title_text=f"difference in {chart_text(metric)} (b − a), 95% interval; grey: contains 0")
    fig.update_yaxes(automargin=True, autorange="reversed")
    return _layout(fig, f"{task}: paired differences", height=max(220, 90 + 42 * len(d)))


def mean_curves_figure(curves: dict[str, pd.DataFrame], task: str, metric: str = "loss",
                       split: str = "val") -> go.Figure:
    """One mean curve per setting over its seeds, with the 95% interval as a band."""
    curves = {k: v for k, v in curves.items() if not v.empty}
    if not curves:
        return empty_figure("No epochs stored yet.")
    fig = go.Figure()
    epochs = []
    for i, (label, c) in enumerate(curves.items()):
        color = task_color(i)
        epochs += c["epoch"].tolist()
        fig.add_trace(go.Scatter(x=list(c["epoch"]) + list(c["epoch"])[::-1], y=list(c["hi"]) + list(c["lo"])[::-1],
                                 fill="toself", mode="lines", fillcolor=_rgba(color, BAND_ALPHA), line=dict(width=0),
                                 hoverinfo="skip", showlegend=False, legendgroup=label))
        fig.add_trace(go.Scatter(x=c["epoch"], y=c["mean"], mode="lines", name=chart_text(label), legendgroup=label,
                                 line=dict(color=color), customdata=c[["n"]].to_numpy(),
                                 hovertemplate="epoch %{x}: %{y:.4f} (mean of %{customdata[0]} runs)"
                                               "<extra>%{fullData.name}</extra>"))
    _epoch_axis(fig, epochs)
    fig.update_yaxes(title_text=f"{SPLIT_NAME.get(split, split)} {_metric_title(metric)}")
    return _layout(fig, f"{task}: mean {SPLIT_NAME.get(split, split)} {_metric_title(metric)} over seeds, "
                        "95% band", height=380)
