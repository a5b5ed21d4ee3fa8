"""Experiments page with too few seeds (AppTest): it says plainly that a 95% interval of 2 seeds says almost
nothing, and the sweep chart's bands stay faint and under the lines, zoomed to the means when they dwarf them."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from scipy import stats
from streamlit.testing.v1 import AppTest

from mmoe.runs.store import RunStore
from mmoe_dashboard.experiment_charts import ZOOM_NOTE, sweep_figure

from helpers import chart, figure, tiny_experiment

PAGE = Path(__file__).resolve().parents[2] / "dashboard" / "app_pages" / "experiments.py"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Two experiments in one store: arch x lr with 2 seeds, and lr with 1 seed."""
    home = tmp_path_factory.mktemp("few_seeds") / "runs"
    store = RunStore(home)
    two = tiny_experiment(store, [("arch", ["mmoe", "omoe"]), ("lr", [0.001, 0.01])], (0, 1), "two seeds")
    one = tiny_experiment(store, [("lr", [0.001, 0.01])], (0,), "one seed")
    store.close()
    return home, two, one


@pytest.fixture
def open_exp(built, tmp_path, monkeypatch):
    src, two, one = built
    home = tmp_path / "runs"
    shutil.copytree(src, home)
    monkeypatch.setenv("MMOE_HOME", str(home))

    def run(exp_id: int) -> AppTest:
        at = AppTest.from_file(str(PAGE), default_timeout=90)
        at.query_params["experiment"] = str(exp_id)
        at.run()
        assert not at.exception, at.exception
        return at

    return run, two, one


def _alpha(rgba: str) -> float:
    return float(re.fullmatch(r"rgba\(\d+,\d+,\d+,([\d.]+)\)", rgba).group(1))


def test_two_seeds_say_the_interval_says_almost_nothing(open_exp):
    run, two, _ = open_exp
    at = run(two)
    k = stats.t.ppf(0.975, 1)     # 12.706: the t multiplier of 2 seeds
    warning = next(w.value for w in at.warning if "seeds" in w.value)
    assert f"With 2 seeds a 95% interval spans ±{k:.1f} standard errors" in warning
    assert "Use 3 or more seeds" in warning
    # the warning comes before the results (the table and the chart)
    order = [type(e).__name__ for e in at.main if type(e).__name__ in ("Warning", "Dataframe")]
    assert order[0] == "Warning" and "Dataframe" in order
    # every band is faint and drawn before any line, so no band covers a line
    data = figure(chart(at, "exp.sweep"))["data"]
    bands = [i for i, t in enumerate(data) if t.get("fill") == "toself"]
    lines = [i for i, t in enumerate(data) if t.get("mode") == "lines+markers"]
    assert len(bands) == len(lines) == 2 and max(bands) < min(lines)
    assert all(_alpha(data[i]["fillcolor"]) <= 0.25 for i in bands)
    assert {data[i]["name"] for i in lines} == {"arch=mmoe", "arch=omoe"}


def test_one_seed_says_there_is_no_interval(open_exp):
    run, _, one = open_exp
    at = run(one)
    assert any("With 1 seed there is no 95% interval" in w.value for w in at.warning)


def test_bands_far_wider_than_the_means_zoom_to_the_means_and_say_so():
    # the review's case: RMSE 3.3 to 3.9 with 2 seeds, every band from 0 to about 12
    rows = [(c, arch, m, m - 8.0, m + 8.5, 2) for arch, m in (("mmoe", 3.9), ("omoe", 3.8), ("sb", 3.3))
            for c in (0.5, 1.0)]
    df = pd.DataFrame(rows, columns=["x", "line", "mean", "lo", "hi", "n"])
    df.attrs["x_key"] = "correlation"
    fig = sweep_figure(df, "y1", "rmse", "↓")
    lo, hi = fig.layout.yaxis.range
    assert lo < 3.3 and hi > 3.9 and hi - lo < 2.0               # the means fill the chart
    assert any(a.text == ZOOM_NOTE for a in fig.layout.annotations)
    bands = [t for t in fig.data if t.fill == "toself"]
    assert max(bands[0].y) == pytest.approx(3.9 + 8.5)             # the intervals are kept whole, not cut
    assert all(_alpha(t.fillcolor) <= 0.25 for t in bands)


def test_narrow_bands_leave_the_axis_alone():
    rows = [(c, arch, m + c / 10, m + c / 10 - 0.01, m + c / 10 + 0.01, 5) for arch, m in (("mmoe", 0.8), ("omoe", 0.7))
            for c in (0.5, 1.0)]
    df = pd.DataFrame(rows, columns=["x", "line", "mean", "lo", "hi", "n"])
    fig = sweep_figure(df, "click", "auc", "↑")
    assert fig.layout.yaxis.range is None and not fig.layout.annotations
