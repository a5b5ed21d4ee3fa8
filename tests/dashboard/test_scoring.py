"""Inspect's "Score a file" tab (AppTest): an uploaded CSV is scored with the stored run exactly as
``predict_frame`` scores it, its gates are drawn, and the download is the people's CSV (formulas
neutralised); a file the run cannot score gets one error box that says why, never a traceback."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
from streamlit.testing.v1 import AppTest

from mmoe.config import DataConfig, ModelConfig, TrainConfig
from mmoe.data import read_csv
from mmoe.runs.runner import DataSource, predict_frame, run_training
from mmoe.runs.store import RunStore

from helpers import TASKS, figure, make_frame

PAGE = str(Path(__file__).resolve().parents[2] / "dashboard" / "app_pages" / "inspect.py")
TAB = "Score a file"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    home = tmp_path_factory.mktemp("scoring") / "runs"
    store = RunStore(home)
    summary = run_training(DataSource(make_frame(), DataConfig(tasks=TASKS)),
                           ModelConfig(arch="mmoe", num_experts=3, expert_hidden=(8,), tower_hidden=(4,)),
                           TrainConfig(epochs=2, batch_size=64, device="cpu", seed=0),
                           store=store, name="mmoe-run", dataset="tiny.csv")
    assert summary.status == "finished", summary.message
    store.close()
    return home, summary.run_id


@pytest.fixture
def downloads(monkeypatch):
    """Every (data, file name) a page hands the browser as a file."""
    seen = []
    original = MemoryMediaFileStorage.load_and_get_id

    def record(self, path_or_data, mimetype, kind, filename=None):
        seen.append((path_or_data, filename))
        return original(self, path_or_data, mimetype, kind, filename)
    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", record)
    return seen


@pytest.fixture
def score(run, monkeypatch):
    home, rid = run
    monkeypatch.setenv("MMOE_HOME", str(home))

    def upload(name: str, data: bytes) -> AppTest:
        at = AppTest.from_file(PAGE, default_timeout=60)
        at.query_params["run"] = str(rid)
        at.session_state["inspect.tab"] = TAB
        at.run()
        assert not at.exception, at.exception
        at.file_uploader(key=f"inspect.score_file.{rid}").set_value((name, data, "text/csv")).run()
        assert not at.exception, at.exception
        return at
    return upload


def test_a_csv_is_scored_like_predict_frame(score, run, downloads):
    home, rid = run
    df = make_frame().drop(columns=["click"])       # a target may be missing
    df["color"] = df["color"].astype(object)
    df.loc[3, "color"] = "=1+1"                      # an unseen category, and a formula for a spreadsheet
    data = df.to_csv(index=False).encode()
    at = score("new.csv", data)
    assert not at.error, [e.value for e in at.error]

    assert len(at.dataframe) == 1                    # only the open tab is drawn: the preview
    shown = at.dataframe[0].value
    assert len(shown) == len(df)
    assert str(shown.columns[0]).startswith(("pred:", "prob:"))
    store = RunStore(home)
    expected = predict_frame(store, rid, read_csv(data, filename="new.csv", min_rows=1))
    store.close()
    for task in ("click", "score"):
        np.testing.assert_allclose(shown[f"pred:{task}"].to_numpy(float), expected[f"pred:{task}"].to_numpy(float),
                                   rtol=1e-6)
    assert list(shown["pred:kind"].astype(str)) == list(expected["pred:kind"].astype(str))

    heat = [c for c in at.get("plotly_chart") if "inspect.score_heat." in c.proto.id]
    assert len(heat) == 3        # one heatmap per task, on one colour scale: up to the largest weight of any
    top = max(float(expected[[c for c in expected if c.startswith(f"gate:{t}:")]].to_numpy().max())
              for t in ("click", "score", "kind"))
    assert [figure(c)["data"][0]["zmax"] for c in heat] == pytest.approx([top] * 3)

    csvs = [d for d, name in downloads if name and name.endswith(".csv")]
    assert len(csvs) == 1
    text = csvs[0].decode() if isinstance(csvs[0], bytes) else Path(csvs[0]).read_text()
    assert "\"'=1+1\"" in text and "\"=1+1\"" not in text
    back = pd.read_csv(pd.io.common.StringIO(text))
    assert len(back) == len(df)


def test_a_missing_feature_column_is_named(score):
    at = score("short.csv", make_frame().drop(columns=["b"]).to_csv(index=False).encode())
    assert len(at.error) == 1
    assert "'b'" in at.error[0].value.replace("\\", "") and "feature" in at.error[0].value
    assert not at.dataframe and not at.get("download_button")


def test_a_garbage_file_gets_one_error(score):
    at = score("garbage.csv", bytes(range(256)) * 8)
    assert len(at.error) == 1, [e.value for e in at.error]
    assert not [c for c in at.get("plotly_chart") if "inspect.score_heat." in c.proto.id]
