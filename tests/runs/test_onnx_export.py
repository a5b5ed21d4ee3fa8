"""ONNX export: on a table the project has not seen (scikit-learn's wine data, with a binary, a multiclass and a
regression task and a categorical feature), every architecture's graph scores like the torch model: the
``onnx`` backend of ``predict_frame`` gives the same columns as ``torch``, within 1e-4 on every prediction,
probability and gate column. Also: the graph's inputs, outputs and dynamic batch, the preprocessing beside
it, replacing an existing file, and a missing ``mmoe[onnx]``."""
from __future__ import annotations

import json
import sys
import io
import zipfile

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_wine

from mmoe.config import DataConfig, ModelConfig, TaskSpec, TrainConfig
from mmoe.runs.extras import MissingExtra
from mmoe.runs.onnx_export import ExportError, export_onnx, onnx_archive, preprocessor_path
from mmoe.runs.runner import DataSource, predict_frame, run_training
from mmoe.runs.store import RunStore

pytest.importorskip("onnxruntime", reason="mmoe[onnx] is not installed")
import onnxruntime as ort  # noqa: E402

TASKS = (TaskSpec("rich", "binary", positive="yes"), TaskSpec("cultivar", "multiclass"),
         TaskSpec("alcohol", "regression"))
ARCHS = {"mmoe": ModelConfig(arch="mmoe", num_experts=3, expert_hidden=(8,), tower_hidden=(4,)),
         "omoe": ModelConfig(arch="omoe", num_experts=3, expert_hidden=(8,), tower_hidden=(4,)),
         "shared-bottom": ModelConfig(arch="shared-bottom", expert_hidden=(8,), tower_hidden=(4,)),
         "mmoe-top2": ModelConfig(arch="mmoe", num_experts=4, expert_hidden=(8,), tower_hidden=(4,), top_k=2),
         # the layered architectures (mmoe.nn.ple) export with no change to the exporter: it only sees a TabularModel
         "cgc": ModelConfig(arch="cgc", shared_experts=2, task_experts=1, expert_hidden=(8,), tower_hidden=(4,)),
         "ple": ModelConfig(arch="ple", shared_experts=2, task_experts=1, levels=2, expert_hidden=(8,),
                            tower_hidden=(4,))}


def wine_table(seed: int = 0) -> pd.DataFrame:
    """178 rows: 11 numeric features (alcohol is a target), one categorical (hue as low/mid/high), three targets."""
    d = load_wine(as_frame=True)
    df = d.data.copy()
    df["hue_band"] = pd.cut(df.pop("hue"), [0, 0.8, 1.1, 9], labels=["low", "mid", "high"]).astype(str)
    df["cultivar"] = np.asarray(["barolo", "grignolino", "barbera"])[d.target.to_numpy()]
    df["rich"] = np.where(df["proline"] > df["proline"].median(), "yes", "no")
    return df.sample(frac=1.0, random_state=seed).reset_index(drop=True)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    home = tmp_path_factory.mktemp("onnx") / "runs"
    store = RunStore(home)
    ids = {}
    for name, mc in ARCHS.items():
        s = run_training(DataSource(wine_table(), DataConfig(tasks=TASKS, seed=1)), mc,
                         TrainConfig(epochs=3, batch_size=32, lr=0.01, seed=2, device="cpu"), store=store, name=name)
        assert s.status == "finished", s.message
        ids[name] = s.run_id
    return store, ids


def new_rows() -> pd.DataFrame:
    """Rows to score that the runs did not train on as such: shuffled anew, jittered, one unseen category."""
    df = wine_table(seed=7).head(60).copy()
    rng = np.random.default_rng(3)
    num = [c for c in df.columns if df[c].dtype.kind == "f"]
    df[num] = df[num] * (1 + 0.05 * rng.normal(size=(len(df), len(num))))
    df.loc[0, "hue_band"] = "unheard-of"
    return df


def assert_same_predictions(a: pd.DataFrame, b: pd.DataFrame, tol: float = 1e-4) -> None:
    assert list(a.columns) == list(b.columns)
    assert list(a.dtypes) == list(b.dtypes)
    assert len(a) == len(b)
    for c in a.columns:
        if a[c].dtype.kind == "f":
            np.testing.assert_allclose(b[c].to_numpy(), a[c].to_numpy(), rtol=0, atol=tol, err_msg=c)
        else:
            assert (a[c].astype(str) == b[c].astype(str)).all(), c


@pytest.mark.slow
@pytest.mark.parametrize("arch", list(ARCHS))
def test_the_onnx_backend_scores_like_torch(runs, arch):
    store, ids = runs
    df = new_rows()
    torch_frame = predict_frame(store, ids[arch], df)
    onnx_frame = predict_frame(store, ids[arch], df, backend="onnx")
    assert_same_predictions(torch_frame, onnx_frame)
    gates = [c for c in torch_frame.columns if c.startswith("gate:")]
    assert bool(gates) == (arch != "shared-bottom")
    assert {c for c in torch_frame.columns if c.startswith(("pred:", "prob:"))} >= {
        "pred:rich", "pred:alcohol", "pred:cultivar", "prob:cultivar:barolo"}


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["mmoe", "shared-bottom"])
def test_the_exported_file_has_flat_inputs_every_task_and_a_dynamic_batch(runs, tmp_path, arch):
    store, ids = runs
    out = tmp_path / "model.onnx"
    result = export_onnx(store, ids[arch], out, gates=True)
    assert result.path == out and out.is_file()
    side = preprocessor_path(out)
    assert side == tmp_path / "model.preprocessor.json"
    assert side.read_text(encoding="utf-8") == store.load_text(ids[arch], "preprocessor.json")
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    inputs = {i.name: i for i in session.get_inputs()}
    assert list(inputs) == ["x_num", "x_cat"]
    assert inputs["x_num"].type == "tensor(float)" and inputs["x_cat"].type == "tensor(int64)"
    assert inputs["x_num"].shape[1] == 11 and inputs["x_cat"].shape[1] == 1
    assert all(isinstance(i.shape[0], str) for i in inputs.values())        # the batch dimension is symbolic
    names = [o.name for o in session.get_outputs()]
    raw = ["raw:rich", "raw:cultivar", "raw:alcohol"]
    assert names == raw + ([f"gate:{t}" for t in ("rich", "cultivar", "alcohol")] if arch == "mmoe" else [])
    if arch == "shared-bottom":
        assert any("no gates" in n for n in result.notes)
    # any batch size, the same numbers as the torch backend's raw outputs (through the stored preprocessing)
    from mmoe.data import Preprocessor, prepare_for_prediction
    from mmoe.runs.runner import load_run, score

    pre = Preprocessor.from_json(side.read_text(encoding="utf-8"))
    xn, xc, _, _ = prepare_for_prediction(new_rows(), pre)
    model, _ = load_run(store, ids[arch])
    want, want_gates = score(model, xn, xc)
    for n in (1, 2, 60):
        got = session.run(None, {"x_num": xn[:n].numpy(), "x_cat": xc[:n].numpy()})
        for i, task in enumerate(("rich", "cultivar", "alcohol")):
            np.testing.assert_allclose(got[i], want[task][:n].numpy(), atol=1e-4, rtol=0)
        if want_gates is not None:
            np.testing.assert_allclose(np.stack(got[3:]), want_gates[:, :n].numpy(), atol=1e-4, rtol=0)
    meta = {p.key: p.value for p in __import__("onnx").load(str(out)).metadata_props}
    tasks = json.loads(meta["mmoe.tasks"])
    assert [t["name"] for t in tasks] == ["rich", "cultivar", "alcohol"]
    assert tasks[1]["kind"] == "multiclass" and len(tasks[1]["classes"]) == 3 and len(tasks[2]["scale"]) == 2


def test_without_gates_only_the_task_outputs(runs, tmp_path):
    store, ids = runs
    result = export_onnx(store, ids["omoe"], tmp_path / "m.onnx")
    assert result.outputs == ["raw:rich", "raw:cultivar", "raw:alcohol"] and not result.gates
    assert result.max_difference <= 1e-4
    text = "\n".join(result.lines())
    assert "m.preprocessor.json" in text and "dynamic" in text


def test_an_existing_file_is_replaced_whole(runs, tmp_path):
    store, ids = runs
    out = tmp_path / "model.onnx"
    out.write_bytes(b"old")
    preprocessor_path(out).write_text("old", encoding="utf-8")
    result = export_onnx(store, ids["mmoe"], out)
    assert out.read_bytes() != b"old" and preprocessor_path(out).read_text(encoding="utf-8") != "old"
    assert set(result.replaced) == {out, preprocessor_path(out)} and "replaced" in "\n".join(result.lines())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx", "model.preprocessor.json"]   # no temp files


def test_bad_destinations_are_refused_before_exporting(runs, tmp_path):
    store, ids = runs
    with pytest.raises(ExportError, match="does not exist"):
        export_onnx(store, ids["mmoe"], tmp_path / "nowhere" / "m.onnx")
    with pytest.raises(ExportError, match="is a folder"):
        export_onnx(store, ids["mmoe"], tmp_path)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ExportError, match="does not exist|cannot write"):
        export_onnx(store, ids["mmoe"], tmp_path / "file" / "m.onnx")


def test_the_dashboard_archive_holds_the_graph_and_the_preprocessing(runs):
    store, ids = runs
    with zipfile.ZipFile(io.BytesIO(onnx_archive(store, ids["mmoe"]))) as z:
        assert sorted(z.namelist()) == ["model.onnx", "model.preprocessor.json"]
        session = ort.InferenceSession(z.read("model.onnx"), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()][-1] == "gate:alcohol"


@pytest.mark.parametrize("module", ["onnxruntime", "onnxscript", "onnx"])
def test_a_missing_extra_says_what_to_install(runs, tmp_path, monkeypatch, module):
    store, ids = runs
    monkeypatch.setitem(sys.modules, module, None)        # import raises ImportError
    with pytest.raises(MissingExtra) as e:
        export_onnx(store, ids["mmoe"], tmp_path / "m.onnx")
    assert 'pip install "mmoe[onnx]"' in str(e.value) and module in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(MissingExtra):
        predict_frame(store, ids["mmoe"], new_rows(), backend="onnx")
    assert not (tmp_path / "m.onnx").exists()
