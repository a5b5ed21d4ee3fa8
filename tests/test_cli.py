"""python -m mmoe: train / runs / predict / synth, exit statuses, and malformed input."""
import gzip
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from mmoe.cli import main
from mmoe.store import RunStore


def run_cli(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def tiny_csv(tmp_path, tiny_frame):
    p = tmp_path / "tiny.csv"
    tiny_frame.to_csv(p, index=False)
    return p


def test_train_json_runs_and_predict(capsys, tmp_path, tiny_csv, mmoe_home):
    code, out, err = run_cli(capsys, "train", "--data", tiny_csv, "--task", "click:binary=yes",
                             "--task", "score:regression", "--task", "kind:multiclass", "--epochs", 3,
                             "--batch-size", 32, "--experts", 3, "--expert-hidden", "8", "--json", "--quiet")
    assert code == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["status"] == "finished" and summary["epochs"] == 3
    assert set(summary) >= {"run_id", "status", "epochs", "train_seconds", "samples_per_second", "metrics"}
    assert set(summary["metrics"]) == {"click", "score", "kind"}
    assert "auc" in summary["metrics"]["click"] and "rmse" in summary["metrics"]["score"]
    run_id = summary["run_id"]
    store = RunStore(mmoe_home)
    rec = store.get_run(run_id)
    assert rec.status == "finished" and len(store.history(run_id)) > 0
    preds = store.load_frame(run_id, "predictions.parquet")
    assert {"pred:click", "target:click", "gate:click:e0", "gate:kind:e2", "prob:kind:hi"} <= set(preds.columns)

    code, out, _ = run_cli(capsys, "runs", "--json")
    assert code == 0 and json.loads(out)[0]["run_id"] == run_id
    code, out, _ = run_cli(capsys, "runs")
    assert code == 0 and "finished" in out

    new = tmp_path / "new.csv"
    pd.read_csv(tiny_csv).drop(columns=["click", "score", "kind"]).head(7).to_csv(new, index=False)
    out_csv = tmp_path / "preds.csv"
    code, out, err = run_cli(capsys, "predict", "--run", run_id, "--data", new, "--out", out_csv)
    assert code == 0, err
    scored = pd.read_csv(out_csv)
    assert len(scored) == 7 and scored["pred:click"].between(0, 1).all()
    assert {"pred:score", "pred:kind", "gate:score:e1"} <= set(scored.columns)
    # predicting the training rows reproduces the stored validation predictions
    full = tmp_path / "full.csv"
    code, *_ = run_cli(capsys, "predict", "--run", run_id, "--data", tiny_csv, "--out", full)
    again = pd.read_csv(full).iloc[preds["_row"].to_numpy()]
    np.testing.assert_allclose(again["pred:click"].to_numpy(), preds["pred:click"].to_numpy(), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("arch,extra", [("omoe", []), ("shared-bottom", []), ("mmoe", ["--top-k", "2"]),
                                        ("mmoe", ["--gate-hidden", "8", "--task-weighting", "uncertainty"])])
def test_train_architectures(capsys, tiny_csv, mmoe_home, arch, extra):
    code, out, err = run_cli(capsys, "train", "--data", tiny_csv, "--task", "click", "--task", "score:regression",
                             "--arch", arch, "--epochs", 2, "--experts", 4, "--json", "--quiet", *extra)
    assert code == 0, err
    assert json.loads(out.splitlines()[-1])["status"] == "finished"


def test_diverged_run_exit_3(capsys, tiny_csv, mmoe_home, monkeypatch):
    import mmoe.train as train_mod
    real, calls = train_mod.TrainStep.__call__, []

    def nan_after_a_while(self, *batch, **kw):
        calls.append(1)
        total, losses = real(self, *batch, **kw)
        return (total * float("nan"), losses) if len(calls) > 6 else (total, losses)

    monkeypatch.setattr(train_mod.TrainStep, "__call__", nan_after_a_while)
    code, out, err = run_cli(capsys, "train", "--data", tiny_csv, "--task", "score:regression",
                             "--epochs", 3, "--json", "--quiet", "--batch-size", 16)
    assert code == 3
    summary = json.loads(out.splitlines()[-1])
    assert summary["status"] == "diverged" and "learning rate" in summary["message"]
    assert "diverged" in err and "Traceback" not in err
    rec = RunStore(mmoe_home).get_run(summary["run_id"])
    assert rec.status == "diverged" and "NaN" in rec.error


def test_synth(capsys, tmp_path):
    out = tmp_path / "s.csv"
    code, *_ = run_cli(capsys, "synth", "--correlation", "0.3", "--rows", 500, "--out", out)
    assert code == 0
    df = pd.read_csv(out)
    assert len(df) == 500 and {"y1", "y2", "x0"} <= set(df.columns)
    code, _, err = run_cli(capsys, "synth", "--correlation", "3", "--rows", 10, "--out", out)
    assert code == 2 and "correlation" in err


def _write(tmp_path, name, content):
    p = tmp_path / name
    if isinstance(content, bytes):
        p.write_bytes(content)
    else:
        p.write_text(content, encoding="utf-8")
    return p


GOOD = "a,b,y\n" + "".join(f"{i},{i % 3},{i % 2}\n" for i in range(40))
MALFORMED = {
    "empty": ("e.csv", "", ["--task", "y"], "empty"),
    "header_only": ("h.csv", "a,b,y\n", ["--task", "y"], "no data rows"),
    "single_row": ("s.csv", "a,b,y\n1,2,0\n", ["--task", "y"], "row"),
    "binary_garbage": ("g.csv", bytes(range(256)) * 20, ["--task", "y"], ""),
    "png": ("p.csv", b"\x89PNG\r\n\x1a\n" + b"\x00" * 200, ["--task", "y"], ""),
    "zip": ("z.csv", b"PK\x03\x04" + b"\x00" * 100, ["--task", "y"], ""),
    "dup_columns": ("d.csv", "a,a,y\n" + "1,2,0\n3,4,1\n" * 10, ["--task", "y"], "more than once"),
    "missing_target": ("m.csv", GOOD, ["--task", "nope"], "nope"),
    "one_value_target": ("o.csv", "a,y\n" + "1,1\n2,1\n3,1\n" * 5, ["--task", "y"], "one"),
    "three_value_binary": ("t.csv", "a,y\n" + "1,x\n2,y\n3,z\n" * 5, ["--task", "y:binary"], "binary=VALUE"),
    "nonnumeric_regression": ("r.csv", "a,y\n" + "1,x\n2,y\n3,z\n" * 5, ["--task", "y:regression"], "numeric"),
    "too_many_classes": ("c.csv", "a,y\n" + "".join(f"{i % 7},c{i}\n" for i in range(300)),
                         ["--task", "y:multiclass"], "classes"),
    "all_missing_target": ("n.csv", "a,y\n" + "1,\n2,NA\n3,?\n" * 5, ["--task", "y"], "missing"),
    "no_features": ("f.csv", "y\n" + "0\n1\n" * 10, ["--task", "y"], "feature"),
    "only_id_feature": ("i.csv", "id,y\n" + "".join(f"u{i},{i % 2}\n" for i in range(50)), ["--task", "y"],
                        "feature"),
    "absent_positive": ("v.csv", GOOD, ["--task", "y:binary=maybe"], "maybe"),
    "unknown_kind": ("k.csv", GOOD, ["--task", "y:banana"], "banana"),
    "empty_binary_value": ("k2.csv", GOOD, ["--task", "y:binary="], "binary="),
    "bad_arch": ("a.csv", GOOD, ["--task", "y", "--arch", "transformer"], "architecture"),
    "bad_topk": ("tk.csv", GOOD, ["--task", "y", "--top-k", "99"], "top-k"),
    "bad_epochs": ("ep.csv", GOOD, ["--task", "y", "--epochs", "0"], "epochs"),
    "bad_lr": ("lr.csv", GOOD, ["--task", "y", "--lr", "-1"], "learning rate"),
    "bad_hidden": ("hd.csv", GOOD, ["--task", "y", "--expert-hidden", "a,b"], "layer"),
    "bad_val_fraction": ("vf.csv", GOOD, ["--task", "y", "--val-fraction", "1.5"], "validation"),
    "dup_task": ("dt.csv", GOOD, ["--task", "y", "--task", "y"], "more than once"),
    "drop_unknown": ("du.csv", GOOD, ["--task", "y", "--drop", "zzz"], "zzz"),
    "features_unknown": ("fu.csv", GOOD, ["--task", "y", "--features", "qqq"], "qqq"),
    "ragged": ("rg.csv", "a,b,y\n1,2,0\n1,2,3,4,5\n" + "1,2,1\n" * 10, ["--task", "y"], "line"),
    "bad_kind_override": ("ko.csv", GOOD, ["--task", "y", "--kind", "a=fancy"], "fancy"),
    "kind_override_syntax": ("ks.csv", GOOD, ["--task", "y", "--kind", "a"], "COL=VALUE"),
    "text_in_numeric_feature_ok_as_category": None,
    "cuda_absent": ("cu.csv", GOOD, ["--task", "y", "--device", "cuda"], "cuda"),
    "bad_device": ("bd.csv", GOOD, ["--task", "y", "--device", "tpu"], "device"),
    "no_file": (None, None, ["--task", "y"], "no such file"),
    "missing_required": ("mr.csv", GOOD, [], "--task"),
    "gz_truncated": ("tr.csv.gz", gzip.compress(GOOD.encode())[:30], ["--task", "y"], ""),
}
MALFORMED = {k: v for k, v in MALFORMED.items() if v is not None}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_inputs_exit_2_with_one_clear_line(capsys, tmp_path, mmoe_home, case):
    name, content, args, phrase = MALFORMED[case]
    if case == "cuda_absent":
        import torch
        if torch.cuda.is_available():
            pytest.skip("a GPU is present")
    path = tmp_path / "absent.csv" if name is None else _write(tmp_path, name, content)
    code, out, err = run_cli(capsys, "train", "--data", path, "--epochs", "1", "--quiet", *args)
    assert code == 2, (out, err)
    lines = [l for l in err.strip().splitlines() if l.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert phrase.lower() in err.lower(), err
    assert not RunStore(mmoe_home).list_runs()        # refused before any run was created


def test_predict_bad_inputs(capsys, tmp_path, tiny_csv, mmoe_home):
    code, _, err = run_cli(capsys, "predict", "--run", 99, "--data", tiny_csv, "--out", tmp_path / "o.csv")
    assert code == 2 and "no such run" in err
    run_cli(capsys, "train", "--data", tiny_csv, "--task", "click", "--epochs", 1, "--quiet")
    bad = _write(tmp_path, "bad.csv", "x,y\n1,2\n")
    code, _, err = run_cli(capsys, "predict", "--run", 1, "--data", bad, "--out", tmp_path / "o.csv")
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_module_entry_point_and_exit_code(tmp_path):
    p = subprocess.run([sys.executable, "-m", "mmoe", "train", "--data", str(tmp_path / "x.csv"), "--task", "y"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "no such file" in p.stderr and "Traceback" not in p.stderr


def test_predict_output_is_readable(capsys, tmp_path, tiny_csv, mmoe_home):
    """Multiclass targets come out as labels and regression targets as given, not as float noise."""
    df = pd.read_csv(tiny_csv)
    df["score"] = df["score"].round(2)
    p = tmp_path / "r.csv"
    df.to_csv(p, index=False)
    code, out, err = run_cli(capsys, "train", "--data", p, "--task", "kind:multiclass", "--task", "score:regression",
                             "--epochs", 1, "--json", "--quiet")
    run_id = json.loads(out.splitlines()[-1])["run_id"]
    code, _, err = run_cli(capsys, "predict", "--run", run_id, "--data", p, "--out", tmp_path / "o.csv")
    assert code == 0, err
    scored = pd.read_csv(tmp_path / "o.csv")
    assert set(scored["target:kind"]) <= {"hi", "lo", "mid"}
    assert (scored["target:score"] == df["score"]).all()
