"""``python -m mmoe export`` and ``predict --backend onnx``: the two backends give the same CSV on a file the
run never saw; MLflow and TensorBoard exports say where they wrote; every refusal (unknown run, a run
without a model, a missing extra, an unwritable or missing --out folder, options that do not fit) is one
line on stderr with exit status 2 and no traceback."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from frames import make_tiny_frame
from mmoe.cli import main

TIMEOUT = 300


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """A store with run 1 (mmoe, three task kinds) and run 2 (cancelled before it saved a model)."""
    root = tmp_path_factory.mktemp("cli_export")
    data = root / "train.csv"
    make_tiny_frame().to_csv(data, index=False)
    store = root / "runs"
    code = main(["train", "--data", str(data), "--task", "click:binary=yes", "--task", "kind:multiclass",
                 "--task", "score:regression", "--experts", "3", "--expert-hidden", "8", "--tower-hidden", "4",
                 "--epochs", "2", "--batch-size", "32", "--store", str(store), "--quiet", "--device", "cpu"])
    assert code == 0
    from mmoe.config import DataConfig, ModelConfig, TaskSpec, TrainConfig
    from mmoe.runs.store import RunStore

    s = RunStore(store)
    rid = s.create_run("early", dataset="train.csv", data_config=DataConfig(tasks=(TaskSpec("click", "binary"),)).to_dict(),
                       model_config=ModelConfig().to_dict(), train_config=TrainConfig().to_dict())
    s.set_status(rid, "running")
    s.finish(rid, "cancelled", final_metrics={}, epochs=0, train_seconds=0.0, samples_per_second=0.0)
    s.close()
    new = root / "new.csv"                      # rows the run has not seen, one unknown category
    df = make_tiny_frame(n=50, seed=9)
    df.loc[3, "color"] = "purple"
    df.to_csv(new, index=False)
    return store, new


def one_error_line(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


def run(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.slow
def test_onnx_export_then_both_backends_give_the_same_csv(home, tmp_path, capsys):
    pytest.importorskip("onnxruntime", reason="mmoe[onnx] is not installed")
    store, new = home
    code, out, err = run(capsys, "export", "--run", 1, "--format", "onnx", "--out", tmp_path / "model.onnx",
                         "--gates", "--store", store)
    assert code == 0, err
    assert (tmp_path / "model.onnx").is_file() and (tmp_path / "model.preprocessor.json").is_file()
    assert "model.preprocessor.json" in out and "gate:kind" in out and "dynamic" in out
    code, out, err = run(capsys, "export", "--run", 1, "--format", "onnx", "--out", tmp_path / "model.onnx",
                         "--store", store, "--json")
    assert code == 0, err
    msg = json.loads(out.strip().splitlines()[-1])
    assert msg["replaced"] and msg["outputs"] == ["raw:click", "raw:kind", "raw:score"]
    for backend in ("torch", "onnx"):
        code, out, err = run(capsys, "predict", "--run", 1, "--data", new, "--out", tmp_path / f"{backend}.csv",
                             "--backend", backend, "--store", store)
        assert code == 0, err
    a, b = pd.read_csv(tmp_path / "torch.csv"), pd.read_csv(tmp_path / "onnx.csv")
    assert list(a.columns) == list(b.columns) and list(a.dtypes) == list(b.dtypes) and len(a) == len(b) == 50
    checked = [c for c in a.columns if c.startswith(("pred:", "prob:", "gate:")) and a[c].dtype.kind == "f"]
    assert len([c for c in checked if c.startswith("gate:")]) == 9 and "prob:kind:hi" in checked
    for c in a.columns:
        if a[c].dtype.kind == "f":
            np.testing.assert_allclose(b[c], a[c], atol=1e-4, rtol=0, err_msg=c)
        else:
            assert (a[c].astype(str) == b[c].astype(str)).all(), c


@pytest.mark.slow
def test_tracking_exports_say_where_they_wrote(home, tmp_path, capsys):
    pytest.importorskip("tensorboard", reason="mmoe[tensorboard] is not installed")
    pytest.importorskip("mlflow", reason="mmoe[mlflow] is not installed")
    store, _ = home
    code, out, err = run(capsys, "export", "--run", 1, "--to", "tensorboard", "--logdir", tmp_path / "tb",
                         "--store", store)
    assert code == 0, err
    assert str(tmp_path / "tb") in out and list((tmp_path / "tb").glob("run1-*/events.out.tfevents.*"))
    uri = f"sqlite:///{tmp_path / 'ml.db'}"
    code, out, err = run(capsys, "export", "--run", 1, "--run", 2, "--to", "mlflow", "--tracking-uri", uri,
                         "--store", store, "--json")
    assert code == 0, err
    msg = json.loads(out.strip().splitlines()[-1])
    assert msg["location"] == uri and [r["run_id"] for r in msg["runs"]] == [1, 2]
    from mlflow import MlflowClient

    assert len(MlflowClient(uri).search_runs([MlflowClient(uri).get_experiment_by_name("MMoE Lab").experiment_id])) == 2


@pytest.mark.parametrize("args, words", [
    (["--run", 99, "--format", "onnx", "--out", "{tmp}/m.onnx"], ["--run 99", "no such run"]),
    (["--run", 2, "--format", "onnx", "--out", "{tmp}/m.onnx"], ["model.pt", "cancelled"]),
    (["--run", 1, "--format", "onnx"], ["needs --out"]),
    (["--run", 1, "--format", "onnx", "--out", "{tmp}/m.onnx", "--to", "mlflow"], ["either"]),
    (["--run", 1, "--format", "pdf", "--out", "{tmp}/m.pdf"], ["--format pdf"]),
    (["--run", 1, "--run", 2, "--format", "onnx", "--out", "{tmp}/m.onnx"], ["one run"]),
    (["--run", 1, "--to", "tensorboard", "--tracking-uri", "x"], ["--tracking-uri"]),
    (["--run", 1, "--format", "onnx", "--out", "{tmp}/no/such/m.onnx"], ["does not exist"]),
    (["--run", 1, "--format", "onnx", "--out", "{tmp}"], ["is a folder"]),
    (["--run", 99, "--to", "mlflow"], ["no such run"]),
])
def test_bad_requests_are_one_line_with_exit_2(home, tmp_path, capsys, args, words):
    store, _ = home
    code, out, err = run(capsys, "export", *[str(a).replace("{tmp}", str(tmp_path)) for a in args], "--store", store)
    assert code == 2, (out, err)
    line = one_error_line(err)
    assert all(w in line for w in words), line
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize("module, command", [
    ("onnxruntime", ["export", "--run", 1, "--format", "onnx", "--out", "{tmp}/m.onnx"]),
    ("onnxscript", ["predict", "--run", 1, "--data", "{new}", "--out", "{tmp}/p.csv", "--backend", "onnx"]),
    ("mlflow", ["export", "--run", 1, "--to", "mlflow", "--tracking-uri", "sqlite:///{tmp}/m.db"]),
    ("tensorboard", ["export", "--run", 1, "--to", "tensorboard", "--logdir", "{tmp}/tb"]),
])
def test_a_missing_extra_is_one_line_with_exit_2(home, tmp_path, capsys, monkeypatch, module, command):
    store, new = home
    monkeypatch.setitem(sys.modules, module, None)            # as if the package were not installed
    args = [str(a).replace("{tmp}", str(tmp_path)).replace("{new}", str(new)) for a in command]
    code, out, err = run(capsys, *args, "--store", store)
    assert code == 2, (out, err)
    line = one_error_line(err)
    assert "pip install" in line and "mmoe[" in line and module in line
    assert not any(tmp_path.iterdir())


def _read_only(folder) -> list[str]:
    """A command prefix under which ``folder`` is read-only for real (root ignores chmod: a read-only bind
    mount in a private mount namespace), or [] after chmod for other users."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        return []
    unshare = shutil.which("unshare")
    probe = subprocess.run([unshare or "unshare", "-m", "sh", "-c", f"mount --bind '{folder}' '{folder}' && "
                            f"mount -o remount,ro,bind '{folder}' '{folder}' && ! touch '{folder}/.probe'"],
                           capture_output=True, timeout=60) if unshare else None
    if probe is None or probe.returncode != 0:
        pytest.skip("running as root and no read-only mount possible here (unshare -m)")
    return [unshare, "-m", "sh", "-c", 'mount --bind "$0" "$0" && mount -o remount,ro,bind "$0" "$0" && exec "$@"',
            str(folder)]


def test_a_read_only_out_folder_is_one_line_with_exit_2(home, tmp_path):
    pytest.importorskip("onnxruntime", reason="mmoe[onnx] is not installed")
    store, _ = home
    folder = tmp_path / "ro"
    folder.mkdir()
    prefix = _read_only(folder)
    try:
        p = subprocess.run([*prefix, sys.executable, "-m", "mmoe", "export", "--run", "1", "--format", "onnx",
                            "--out", str(folder / "m.onnx"), "--store", str(store)],
                           capture_output=True, text=True, timeout=TIMEOUT)
    finally:
        folder.chmod(0o755)
    assert p.returncode == 2, (p.stdout, p.stderr)
    line = one_error_line(p.stderr)
    assert "cannot write" in line and str(folder) in line
    assert not any(folder.iterdir())
