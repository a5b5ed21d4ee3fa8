"""Shared by the page tests: a tiny frame with one task of each kind, the app opened on the Model & training
page with a dataset chosen, and readers for what a page drew (plotly figures and highlighted table cells),
so tests can compare it with the stored run."""
from __future__ import annotations

import base64
import json
import re
import string
import time
from pathlib import Path

import numpy as np
import pandas as pd
from streamlit.testing.v1 import AppTest

from mmoe.config import TaskSpec

TASKS = (TaskSpec("click", "binary", positive="yes"), TaskSpec("score", "regression"), TaskSpec("kind", "multiclass"))

# what the Compare page and the docs promise: which way is better for each metric (written out here,
# not imported from the product, so a wrong direction table in the product fails the tests)
APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")
TRAIN = "app_pages/train.py"


def open_train_page(frame: pd.DataFrame):
    """The app (AppTest) on the Model & training page, with ``frame`` chosen on the Data page as the dataset
    "tiny" with tasks click (binary) and score (regression)."""
    from streamlit.testing.v1 import AppTest

    from mmoe.config import DataConfig
    from mmoe.data import prepare

    config = DataConfig(tasks=(TaskSpec("click", "binary"), TaskSpec("score", "regression")))
    app = AppTest.from_file(APP, default_timeout=60)
    app.run()
    app.session_state["mmoe.dataset"] = {"name": "tiny", "key": "test:tiny", "frame": frame, "data_config": config,
                                         "prepared": prepare(frame, config)}
    app.switch_page(TRAIN).run()
    assert not app.exception, app.exception
    return app


HIGHER_IS_BETTER = {"auc", "accuracy", "macro_f1", "r2", "gate_entropy"}
LOWER_IS_BETTER = {"loss", "logloss", "rmse", "mae"}


def make_frame(n: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=n), rng.normal(size=n)
    color = rng.choice(["red", "green", "blue"], size=n)
    click = np.where(a + 0.5 * (color == "red") + 0.3 * rng.normal(size=n) > 0, "yes", "no")
    return pd.DataFrame({"a": a, "b": b, "color": color, "click": click, "score": 2.0 * b - a,
                         "kind": np.select([a > 0.5, a < -0.5], ["hi", "lo"], "mid")})


def tiny_experiment(store, grid, seeds, name: str, epochs: int = 2) -> int:
    """Run a small grid experiment (3 experts of 8 units, the tiny frame) into ``store``; its id."""
    from mmoe.config import DataConfig, ModelConfig, TrainConfig
    from mmoe.runs.experiments import grid_experiment, run_experiment
    from mmoe.runs.runner import DataSource

    exp = grid_experiment(DataSource(make_frame(), DataConfig(tasks=TASKS)),
                          ModelConfig(num_experts=3, expert_hidden=(8,), tower_hidden=(4,)),
                          TrainConfig(epochs=epochs, batch_size=32, threads=1), list(grid), tuple(seeds), name=name,
                          dataset="tiny.csv")
    return run_experiment(exp, store)


def _decode(v):
    """Plotly's JSON writes numpy arrays as typed arrays ({"dtype", "bdata", "shape"}): decode them."""
    if isinstance(v, dict) and "bdata" in v and "dtype" in v:
        a = np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"]))
        shape = v.get("shape")
        if shape:
            a = a.reshape([int(s) for s in str(shape).split(",")])
        return a
    if isinstance(v, dict):
        return {k: _decode(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_decode(x) for x in v]
    return v


def figure(chart) -> dict:
    """The plotly figure (data, layout) an AppTest ``plotly_chart`` element sends to the browser."""
    return _decode(json.loads(chart.proto.spec))


def chart(at, key: str):
    """The plotly chart element whose widget key is ``key`` (exactly)."""
    found = [c for c in at.get("plotly_chart") if c.proto.id.endswith("-" + key) or c.proto.id == key]
    assert len(found) == 1, (key, [c.proto.id for c in at.get("plotly_chart")])
    return found[0]


def highlighted(table, css: str = "background-color: #c8ecd0") -> set[tuple]:
    """(row label, column) of every cell of a styled ``st.dataframe`` whose style contains ``css``."""
    df = table.value
    styles = table.proto.arrow_data.styler.styles
    cells = set()
    for selectors, body in re.findall(r"([^{}]+)\{([^}]*)\}", styles):
        if css not in body:
            continue
        for r, c in re.findall(r"_row(\d+)_col(\d+)", selectors):
            cells.add((df.index[int(r)], df.columns[int(c)]))
    return cells


def best_rows(values: pd.Series, metric: str) -> set:
    """Index labels holding the best finite value of ``metric`` (ties all count)."""
    v = pd.to_numeric(values, errors="coerce").dropna()
    if metric in HIGHER_IS_BETTER:
        target = v.max()
    elif metric in LOWER_IS_BETTER:
        target = v.min()
    else:
        raise KeyError(metric)
    return set(v.index[np.isclose(v.to_numpy(), target, rtol=1e-12, atol=0.0)])


def poll(at, until, timeout: float = 60.0, jobs=()) -> None:
    """Rerun the page until ``until()`` holds, then once more so the page shows that state
    (``run_every`` fragments do not fire by themselves in AppTest). Between reruns it waits on the
    given jobs (returning as soon as one ends) instead of a fixed sleep."""
    deadline = time.monotonic() + timeout
    while True:
        held = until()
        at.run()
        assert not at.exception, at.exception
        if held:
            return
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {until.__name__}"
        pending = [j for j in jobs if not j.done]
        if pending:
            pending[0].wait(0.05)


WORD_JOINER = "\u2060"


def shown(markdown: str) -> str:
    """What a Markdown source shows for escaped text: ``\\*`` shows ``*``; invisible word joiners dropped."""
    return re.sub(r"\\([" + re.escape(string.punctuation) + r"])", r"\1", markdown.replace(WORD_JOINER, ""))


def as_typed(markdown: str) -> str:
    """The text a Markdown source of user text shows, asserting that it can show nothing else: every
    ASCII punctuation mark (what all Markdown, HTML and Streamlit directives are made of) is escaped."""
    src, out, i = markdown.replace(WORD_JOINER, ""), [], 0
    while i < len(src):
        if src[i] == "\\" and i + 1 < len(src) and src[i + 1] in string.punctuation:
            out.append(src[i + 1])
            i += 2
            continue
        assert src[i] not in string.punctuation, f"unescaped {src[i]!r} at {i} in {markdown!r}"
        out.append(src[i])
        i += 1
    return "".join(out)


# ---------------------------------------------------------------- the Compare page's widgets and table

COMPARE_PAGE = str(Path(__file__).resolve().parents[2] / "dashboard" / "app_pages" / "compare.py")


def curve_key(label: str) -> str:
    """The widget key of the curve chart of a task group (its label, reduced to letters, digits and -)."""
    return "compare.curve." + re.sub(r"[^A-Za-z0-9_]+", "-", label).strip("-")



def table(at: AppTest) -> pd.DataFrame:
    return at.dataframe[0].value


def w(at: AppTest, base: str) -> str:
    """The current key of a widget whose key follows its option labels (compare.pick, rename/delete)."""
    return at.session_state[f"{base}_key"]


def select_rows(at: AppTest, ids: list[int]) -> AppTest:
    """Tick the table rows of these runs (dataframe selections accept session-state writes)."""
    shown = list(table(at)["id"])
    at.session_state[at.session_state["compare.table_key"]] = {
        "selection": {"rows": [shown.index(i) for i in ids], "columns": []}}
    at.run()
    assert not at.exception, at.exception
    return at


def task_of(column: str) -> str:
    """The task of a metrics column "<task> (<kind>) · <metric>"."""
    return column.split(" · ")[0].rsplit(" (", 1)[0]


def headers(table) -> dict[str, str]:
    """column -> the title the browser shows (its column_config label)."""
    cfg = json.loads(table.proto.columns or "{}")
    return {c: cfg.get(c, {}).get("label", c) for c in table.value.columns}
