"""mmoe.views.experiments.mean_curves: the mean of a curve over seeds with its 95% interval, kept inside the
range the metric can take (a loss band of 2 seeds went below 0 in the chart)."""
from __future__ import annotations

import pandas as pd
import pytest

from mmoe.runs.experiments import mean_ci
from mmoe.views.experiments import mean_curves


class _Store:
    """What mean_curves reads of a run store: exists() and history()."""

    def __init__(self, curves: dict[int, list[float]], metric: str):
        self.frames = {rid: pd.DataFrame({"epoch": range(1, len(v) + 1), "split": "val", "task": "t",
                                          "metric": metric, "value": v}) for rid, v in curves.items()}

    def exists(self, rid):
        return rid in self.frames

    def history(self, rid):
        return self.frames[rid]


@pytest.mark.parametrize("metric, values, bound", [("loss", {1: [0.9, 0.10], 2: [0.5, 0.02]}, ("lo", 0.0)),
                                                   ("auc", {1: [0.90, 0.99], 2: [0.70, 0.97]}, ("hi", 1.0))])
def test_the_band_stays_inside_the_metric_range(metric, values, bound):
    out = mean_curves(_Store(values, metric), [1, 2, None, 9], "t", metric)   # None / a missing run: skipped
    assert list(out["epoch"]) == [1, 2] and list(out["n"]) == [2, 2]
    side, edge = bound
    raw = [mean_ci([values[1][i], values[2][i]])["ci95"] for i in range(2)]
    assert any((r[0] < edge) if side == "lo" else (r[1] > edge) for r in raw)   # 2 seeds: the t band crosses it
    assert (out[side] >= edge).all() if side == "lo" else (out[side] <= edge).all()
    assert out["mean"].tolist() == pytest.approx([(values[1][i] + values[2][i]) / 2 for i in range(2)])
