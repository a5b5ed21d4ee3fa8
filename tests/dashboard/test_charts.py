"""dashboard/charts.py and gate_charts.py: legends sit below the plot (never against the title), titles
below plotly's toolbar, reference lines are labelled in the legend, and gate heatmap clicks pick the
nearest sample anywhere in a cell."""
from __future__ import annotations


import numpy as np
import pandas as pd
import pytest

from mmoe import views as A
from mmoe_dashboard import charts, gate_charts


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 300
    g = rng.dirichlet(np.ones(4), size=(2, n))
    out = {"_row": np.arange(n), "target:a": (rng.random(n) < 0.3).astype(float), "pred:a": rng.random(n),
           "target:r": rng.normal(size=n), "pred:r": rng.normal(size=n)}
    for t, task in enumerate(("a", "b")):
        for e in range(4):
            out[f"gate:{task}:e{e}"] = g[t, :, e]
    return pd.DataFrame(out)


def legend_figures(frame):
    long = ("≠ Never married", "= Never married")
    ent = pd.DataFrame({"epoch": [1, 2, 1, 2], "split": ["val"] * 4, "task": ["a", "a", "b", "b"],
                        "value": [1.2, 1.0, 1.3, 0.9]})
    curves = pd.DataFrame({"epoch": [1, 2, 1, 2], "split": ["train", "train", "val", "val"], "task": ["a"] * 4,
                           "value": [0.6, 0.5, 0.55, 0.5]})
    cur = A.quiet(A.binary_curves, frame, "a")
    pts, stats = A.regression_points(frame, "r")
    return {
        "task_curves": charts.task_curves(curves),
        "overlay": charts.overlay_curves([{"run_id": 1, "label": "#1 a", "color": "#1f77b4", "split": "val",
                                           "epoch": [1, 2], "value": [0.5, 0.4]},
                                          {"run_id": 2, "label": "#2 b", "color": "#ff7f0e", "split": "val",
                                           "epoch": [1, 2], "value": [0.6, 0.5]}], "a"),
        "roc": charts.roc_figure(cur, "a"),
        "pr": charts.pr_figure(cur, "a"),
        "calibration": charts.calibration_figure(A.calibration(frame, "a"), "a"),
        "histogram": charts.score_histogram_figure(A.score_histogram(frame, "a", class_names=long), "a"),
        "pred_vs_actual": charts.pred_vs_actual_figure(pts, stats, "r"),
        "utilisation": gate_charts.utilisation_figure(A.utilisation(frame)),
        "entropy": gate_charts.entropy_figure(ent, 4),
    }


def test_legends_are_below_the_plot_not_against_the_title(frame):
    for name, fig in legend_figures(frame).items():
        leg = fig.layout.legend
        assert leg.orientation == "h" and leg.yanchor == "top", name
        assert leg.y < -0.15, (name, leg.y)                      # below the x axis title
        assert fig.layout.margin.b >= 90, name                   # with room for it
        assert fig.layout.height - fig.layout.margin.t - fig.layout.margin.b > 100, name


def test_figures_without_a_legend_keep_a_small_bottom_margin(frame):
    cm = pd.DataFrame([[5, 1], [2, 7]], index=["x", "y"], columns=["x", "y"])
    for fig in (charts.confusion_figure(cm, "k"), gate_charts.gate_heatmap(A.gate_matrix(frame, "a"), "a")):
        assert fig.layout.margin.b == 50


def test_titles_sit_on_the_plot_below_the_toolbar_and_above_text_on_its_top_edge(frame):
    from mmoe.views.gates import SHARED
    figs = dict(legend_figures(frame))
    figs["heatmap"] = gate_charts.gate_heatmap(A.gate_matrix(frame, "a"), "a")
    details = {"row": 3, "tasks": {"a": {"gates": [0.1, 0.2, 0.3, 0.4]}, "b": {"gates": [0.4, 0.3, 0.2, 0.1]}}}
    figs["sample (subplot titles)"] = gate_charts.sample_gates_figure(details)
    figs["groups (CGC names)"] = gate_charts.gate_heatmap(A.gate_matrix(frame, "a"), "a",
                                                          groups=[SHARED, SHARED, "a", "a"])
    for name, fig in figs.items():
        t = fig.layout.title
        if name == "task_curves":             # no title; its panel titles sit below the toolbar
            assert not t.text and fig.layout.margin.t >= charts.TOOLBAR_PX + charts.ABOVE_PLOT_PX
            continue
        assert t.text and t.yref == "paper" and t.y == 1 and t.yanchor == "bottom", name   # on the plot's top edge
        above = [a for a in fig.layout.annotations if a.yref == "paper" and a.y >= 1 and a.yanchor == "bottom"]
        lift = charts.ABOVE_PLOT_PX if above else 0
        assert t.pad.b >= 8 + lift, name                                  # over the subplot titles / group names
        # the toolbar's ~30 px at the top, then the title's line (~20 px), then what sits on the plot's edge
        assert fig.layout.margin.t >= 30 + 20 + t.pad.b, (name, fig.layout.margin.t)
    assert figs["sample (subplot titles)"].layout.title.pad.b > figs["heatmap"].layout.title.pad.b


def test_reference_lines_are_labelled_in_the_legend_not_over_the_bars(frame):
    util = gate_charts.utilisation_figure(A.utilisation(frame))
    assert not util.layout.annotations
    names = [t.name for t in util.data]
    assert "uniform 1/4 = 0.25" in names and {"a", "b"} <= set(names)
    assert util.layout.shapes[0].y0 == pytest.approx(0.25) and util.layout.shapes[0].layer == "above"
    ent = gate_charts.entropy_figure(pd.DataFrame({"epoch": [1], "split": ["val"], "task": ["a"], "value": [1.0]}), 4)
    assert not ent.layout.annotations and any(str(t.name).startswith("max ln(4)") for t in ent.data)


def test_gate_heatmap_names_every_expert_upright_when_crowded():
    for e, angle in ((4, 0), (6, -90), (16, -90)):
        fig = gate_charts.gate_heatmap(np.full((5, e), 1 / e), "a")
        assert list(fig.layout.xaxis.tickvals) == [f"e{j}" for j in range(e)] and fig.layout.xaxis.tickangle == angle
    assert gate_charts.gate_heatmap(np.full((5, 20), 0.05), "a").layout.xaxis.tickvals is None   # plotly picks


def test_gate_heatmap_click_picks_the_nearest_sample_anywhere():
    g = np.random.default_rng(1).dirichlet(np.ones(4), size=50)
    fig = gate_charts.gate_heatmap(g, "a")
    assert fig.layout.hoverdistance == -1 and fig.layout.hovermode == "closest"
    assert "select" in fig.layout.clickmode
    targets = fig.data[1]
    assert len(targets.x) == 50 * 4 and len(targets.customdata) == 50 * 4


def test_gate_heatmap_draws_the_gates_it_is_given_and_a_line_at_each_group_boundary():
    """Cells are the gate weights (row i = sample i, column j = expert j); the click target on a row
    carries that sample's position; white lines separate dominant-expert groups, exactly the shapes
    ``add_hline`` would draw (drawn in one layout update: unsorted rows have hundreds of boundaries)."""
    import plotly.graph_objects as go

    rng = np.random.default_rng(2)
    g = rng.dirichlet(np.ones(4), size=300)                 # unsorted: ~225 group boundaries
    pos = rng.permutation(1000)[:300]
    fig = gate_charts.gate_heatmap(g, "a", positions=pos)
    heat, targets = fig.data[0], fig.data[1]
    np.testing.assert_array_equal(np.asarray(heat.z), g)
    assert list(heat.x) == ["e0", "e1", "e2", "e3"]
    np.testing.assert_array_equal(np.asarray(targets.customdata), np.repeat(pos, 4))
    np.testing.assert_array_equal(np.asarray(targets.y), np.repeat(np.arange(300), 4))
    assert list(targets.x) == ["e0", "e1", "e2", "e3"] * 300
    dom = g.argmax(1)
    boundaries = [i + 0.5 for i in range(299) if dom[i] != dom[i + 1]]
    assert len(boundaries) > 150
    assert [s.y0 for s in fig.layout.shapes] == boundaries
    ref = go.Figure()
    for b in boundaries[:3]:
        ref.add_hline(y=b, line=dict(color="white", width=1))
    assert [s.to_plotly_json() for s in fig.layout.shapes[:3]] == [s.to_plotly_json() for s in ref.layout.shapes]
    # rows sorted by dominant expert (as the pages pass them): one line per boundary between experts
    order = A.order_and_sample(g)
    sorted_fig = gate_charts.gate_heatmap(g[order], "a", positions=order)
    assert len(sorted_fig.layout.shapes) == len(set(dom)) - 1
    np.testing.assert_array_equal(np.asarray(sorted_fig.data[1].customdata)[::4], order)


@pytest.mark.parametrize("epochs,markers", [(10, True), (300, False)])
def test_long_curves_drop_markers_so_train_and_validation_differ(epochs, markers):
    """Hundreds of markers merge into one thick line that hides the dotted/solid difference
    between training and validation (the job card, Inspect's curves and entropy charts)."""
    e = np.arange(1, epochs + 1)
    long = pd.concat([pd.DataFrame({"epoch": e, "split": sp, "task": "price", "value": 1 / e, "loss": 1 / e})
                      for sp in ("train", "val")], ignore_index=True)
    figs = [charts.task_curves(long), charts.loss_curve_figure(long, "job"),
            gate_charts.entropy_figure(long.rename(columns={"value": "value"}), 4)]
    for fig in figs:
        modes = {t.mode for t in fig.data if t.name and "max ln" not in t.name and t.x is not None and len(t.x) > 2}
        assert modes == {"lines+markers" if markers else "lines"}, modes


def test_one_curve_style_and_one_colour_per_task_in_every_per_epoch_chart():
    """The job card, Inspect's curves and the gate entropy chart draw a split the same way (train
    dotted, validation solid) and a task in the same colour."""
    e = np.arange(1, 6)
    long = pd.concat([pd.DataFrame({"epoch": e, "split": sp, "task": t, "value": 1 / e, "loss": 1 / e})
                      for t in ("click", "like") for sp in ("train", "val")], ignore_index=True)
    seen: dict[tuple[str, str], set] = {}
    for fig in (charts.task_curves(long, tasks=["click", "like"]), charts.loss_curve_figure(long, "job"),
                gate_charts.entropy_figure(long, 4)):
        for t in fig.data:
            if t.x is None or not t.hovertemplate and not t.name:
                continue
            text = f"{t.name} {t.hovertemplate or ''}"
            task = "click" if "click" in text else "like" if "like" in text else None
            split = "val" if "validation" in text else "train" if "train" in text else None
            if task and split:
                seen.setdefault((task, split), set()).add((t.line.color, t.line.dash))
    assert set(seen) == {(t, s) for t in ("click", "like") for s in ("train", "val")}
    assert all(len(v) == 1 for v in seen.values()), seen
    assert seen[("click", "train")] != seen[("like", "train")]
