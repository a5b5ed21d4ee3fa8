"""Safe outputs of the view-model: CSVs for people neutralise formula cells (OWASP), user text is
escaped for Markdown and plotly, and the model download never follows a link out of the run folder."""
from __future__ import annotations

import io
import os
import zipfile

import numpy as np
import pandas as pd
import pytest

from mmoe.config import DataConfig, ModelConfig, TaskSpec, TrainConfig
from mmoe.runs.store import RunStore
from mmoe.views import chart_text, model_archive, model_archive_problems, people_csv, plain, predictions_csv

FORMULAS = ['=HYPERLINK("http://x")', "+1+1", "-2+3", "@SUM(A1)", "\tx", "\rx"]


def _read(data: bytes) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(data), keep_default_na=False)


def test_people_csv_neutralises_formula_cells_and_headers_not_numbers():
    df = pd.DataFrame({"=cmd": FORMULAS + ["plain", "-5"], "x": [-1.5, 2, 3, 4, 5, 6, 7, -8],
                       "cat": pd.Categorical(["@a", "b"] * 4), "s": pd.array(["+x", "y"] * 4, dtype="string")})
    back = _read(people_csv(df))
    assert list(back.columns) == ["'=cmd", "x", "cat", "s"]
    assert back["'=cmd"].tolist() == ["'" + f for f in FORMULAS] + ["plain", "-5"]   # "-5" is a number
    assert back["x"].dtype.kind == "f" and back["x"].iloc[0] == -1.5 and back["x"].iloc[-1] == -8
    assert back["cat"].tolist() == ["'@a", "b"] * 4 and back["s"].tolist() == ["'+x", "y"] * 4
    assert df.columns[0] == "=cmd" and df["=cmd"].iloc[0] == FORMULAS[0]          # the input is unchanged


def test_predictions_download_neutralises_features_and_class_labels():
    frame = pd.DataFrame({"_row": [0, 1, 2], "_split": ["val"] * 3, "=cmd": ["=1+1", "ok", "@x"],
                          "num": [-3.0, 0.5, 1.0], "target:kind": [0, 1, 0], "pred:kind": ["=a", "-b", "=a"],
                          "prob:kind:=a": [0.6, 0.3, 0.7], "prob:kind:-b": [0.4, 0.7, 0.3]})
    back = _read(predictions_csv(frame))
    assert back["'=cmd"].tolist() == ["'=1+1", "ok", "'@x"]
    assert back["num"].tolist() == [-3.0, 0.5, 1.0]
    assert back["target:kind"].tolist() == ["'=a", "'-b", "'=a"]          # the class label, neutralised
    assert back["pred:kind"].tolist() == ["'=a", "'-b", "'=a"]


def test_plain_escapes_every_markdown_and_html_mark():
    text = "**bold** <b>x</b> [link](http://evil) `c` $x$ :red[r] www.a.b me@x.org"
    out = plain(text)
    marks = set("*<>[]()`$:_#&|~!\\@./")
    i = 0
    while i < len(out):                       # every mark is escaped: nothing can start Markdown or HTML
        if out[i] == "\\":
            i += 2
            continue
        assert out[i] not in marks, (i, out)
        i += 1
    assert out.replace("\\", "").replace("\u2060", "") == text.replace("\\", "")
    for joined in ("http:\u2060", "www\u2060", "@\u2060"):   # no autolink can be found in what it shows
        assert joined in out.replace("\\", "")


def test_chart_text_defuses_plotly_html_and_templates():
    assert chart_text("<b>x</b> & %{y}") == "&lt;b&gt;x&lt;/b&gt; &amp; %\u200b{y}"


# ----------------------------------------------------------------------------- the model download

@pytest.fixture
def saved_run(tmp_path):
    store = RunStore(tmp_path / "runs")
    dc = DataConfig(tasks=(TaskSpec("y", "regression"),))
    rid = store.create_run("r", dataset="d.csv", data_config=dc.to_dict(), model_config=ModelConfig().to_dict(),
                           train_config=TrainConfig().to_dict())
    store.set_status(rid, "running")
    store.save_model(rid, {"w": np.zeros(2, dtype=np.float32)}, {"model_config": {}})
    store.save_text(rid, "preprocessor.json", "{}")
    store.finish(rid, "finished", final_metrics={}, epochs=1, train_seconds=0.1, samples_per_second=1.0)
    yield store, rid
    store.close()


def _names(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return {n: z.read(n) for n in z.namelist()}


def test_model_archive_holds_the_model_files(saved_run):
    store, rid = saved_run
    assert set(_names(model_archive(store, rid))) == {"model.pt", "model.json", "preprocessor.json"}
    assert model_archive_problems(store, rid) == []


def test_model_archive_does_not_follow_a_link_out_of_the_run_folder(saved_run, tmp_path):
    store, rid = saved_run
    folder = store.artifact_dir(rid)
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0")
    (folder / "preprocessor.json").unlink()
    os.symlink(secret, folder / "preprocessor.json")
    (folder / "model.json").unlink()
    os.symlink("/etc/passwd", folder / "model.json")
    files = _names(model_archive(store, rid))
    assert set(files) == {"model.pt"} and b"root:" not in b"".join(files.values())
    problems = model_archive_problems(store, rid)
    assert len(problems) == 2 and all("outside the run folder" in p for p in problems)
    (folder / "model.pt").rename(tmp_path / "model.pt")
    os.symlink(tmp_path / "model.pt", folder / "model.pt")
    assert model_archive(store, rid) is None                       # the model itself links out: no download


def test_model_archive_does_not_follow_a_run_folder_linked_out_of_the_store(saved_run, tmp_path):
    store, rid = saved_run
    folder = store.artifact_dir(rid)
    outside = tmp_path / "elsewhere"
    folder.rename(outside)
    os.symlink(outside, folder)
    assert model_archive(store, rid) is None
    assert "outside the run store" in " ".join(model_archive_problems(store, rid))
