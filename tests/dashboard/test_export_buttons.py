"""The export buttons (AppTest): Inspect's Downloads tab exports the run's model to ONNX on request and offers
the zip, and exports the run to MLflow / TensorBoard at the store's default locations; Compare exports the
selected runs. Each says where it wrote; a missing optional package is a note with what to install."""
from __future__ import annotations

import io
import sys
import zipfile
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from mmoe.config import DataConfig, ModelConfig, TrainConfig
from mmoe.runs.runner import DataSource, run_training
from mmoe.runs.store import RunStore

from helpers import TASKS, as_typed, make_frame

PAGES = Path(__file__).resolve().parents[2] / "dashboard" / "app_pages"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    home = tmp_path_factory.mktemp("export_buttons") / "runs"
    store = RunStore(home)
    for arch in ("mmoe", "shared-bottom"):
        s = run_training(DataSource(make_frame(), DataConfig(tasks=TASKS)),
                         ModelConfig(arch=arch, num_experts=3, expert_hidden=(8,), tower_hidden=(4,)),
                         TrainConfig(epochs=2, batch_size=64, device="cpu", seed=0), store=store, name=f"{arch}-run")
        assert s.status == "finished"
    store.close()
    return home


@pytest.fixture
def home(built, tmp_path, monkeypatch):
    import shutil

    home = tmp_path / "runs"
    shutil.copytree(built, home)
    monkeypatch.setenv("MMOE_HOME", str(home))
    return home


def inspect_downloads(run_id: int = 1) -> AppTest:
    at = AppTest.from_file(str(PAGES / "inspect.py"), default_timeout=120)
    at.query_params["run"] = str(run_id)
    at.session_state["inspect.tab"] = "Downloads"
    at.run()
    assert not at.exception, at.exception
    return at


def texts(elements) -> str:
    """What notes (user text through ``plain``) show, unescaped."""
    return " ".join(as_typed(e.value) for e in elements)


def test_onnx_export_on_request_then_a_zip_to_download(home):
    pytest.importorskip("onnxruntime", reason="mmoe[onnx] is not installed")
    at = inspect_downloads()
    before = len(at.get("download_button"))
    at.button(key="inspect.onnx_export").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    buttons = at.get("download_button")
    assert len(buttons) == before + 1 and "ONNX" in buttons[-1].proto.label
    _, data = at.session_state["inspect.onnx"]
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        assert sorted(z.namelist()) == ["model.onnx", "model.preprocessor.json"]
    assert any("--backend onnx" in c.value for c in at.caption)


def test_onnx_without_the_extra_is_a_note(home, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxscript", None)
    at = inspect_downloads()
    at.button(key="inspect.onnx_export").click().run()
    assert not at.exception and not at.error
    assert "pip install" in texts(at.info) and "mmoe[onnx]" in texts(at.info)


@pytest.mark.parametrize("to, where", [("tensorboard", "tensorboard"), ("mlflow", "mlflow.db")])
def test_inspect_exports_the_run_and_says_where(home, to, where):
    pytest.importorskip(to, reason=f"mmoe[{to}] is not installed")
    at = inspect_downloads()
    at.button(key=f"inspect.to_{to}").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    said = texts(at.success)
    assert where in said and str(home).split("/")[-1] in said
    assert (home / where).exists()


def test_a_missing_tracker_is_a_note_not_a_traceback(home, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)
    at = inspect_downloads()
    at.button(key="inspect.to_mlflow").click().run()
    assert not at.exception and not at.error
    assert "mmoe[mlflow]" in texts(at.info)


def test_compare_exports_the_selected_runs(home):
    pytest.importorskip("tensorboard", reason="mmoe[tensorboard] is not installed")
    at = AppTest.from_file(str(PAGES / "compare.py"), default_timeout=120)
    at.session_state["mmoe.compare_runs"] = [1, 2]
    at.run()
    assert not at.exception, at.exception
    at.button(key="compare.to_tensorboard").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert "2 run(s)" in texts(at.success)
    assert sorted(p.name for p in (home / "tensorboard").iterdir()) == ["run1-mmoe-run", "run2-shared-bottom-run"]
