"""python -m mmoe in process: train / runs / predict / synth, what each option does to the stored run,
strict JSON, exit statuses and malformed input. (The CLI in real subprocesses: test_cli_process.py.)"""
import gzip
import json

import numpy as np
import pandas as pd
import pytest
import torch
from frames import make_tiny_frame
from sklearn.metrics import roc_auc_score

from mmoe.cli import main
from mmoe.data import prepare_for_prediction
from mmoe.runs.runner import load_run
from mmoe.runs.store import RunStore

TASKS = ("--task", "click:binary=yes", "--task", "score:regression", "--task", "kind:multiclass")
TASK_NAMES = ("click", "score", "kind")
# the tiny frame's three tasks converge under these settings in well under a second
CONVERGE = ("--epochs", 30, "--batch-size", 32, "--lr", 0.01, "--expert-hidden", 16, "--seed", 0)
SMALL = ("--epochs", 3, "--batch-size", 32, "--expert-hidden", 8)


def strict_json(line: str):
    """Parse one line as standard JSON: a bare NaN or Infinity (not JSON) fails the test."""
    return json.loads(line, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))


def run_cli(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def train(capsys, csv, *args):
    """``train --json`` that must finish; returns (JSON summary, stored record). The run is a function
    of its settings and ``--seed`` (default 0), initial weights included."""
    code, out, err = run_cli(capsys, "train", "--data", csv, "--json", "--quiet", *args)
    assert code == 0, err
    summary = strict_json(out.strip().splitlines()[-1])
    assert summary["status"] == "finished", summary
    return summary, RunStore().get_run(summary["run_id"])


def gate_columns(frame: pd.DataFrame, task: str) -> list[str]:
    return [c for c in frame.columns if str(c).startswith(f"gate:{task}:")]


@pytest.fixture
def tiny_csv(tmp_path, tiny_frame):
    p = tmp_path / "tiny.csv"
    tiny_frame.to_csv(p, index=False)
    return p


def test_train_json_runs_and_predict(capsys, tmp_path, tiny_csv, mmoe_home):
    """The documented --json summaries of train, runs and predict; the three tasks reach what this model
    reaches on the tiny frame (measured: AUC 0.98, RMSE 0.17 with noise 0.1, accuracy 0.975)."""
    summary, rec = train(capsys, tiny_csv, *TASKS, *CONVERGE, "--experts", 3)
    assert set(summary) >= {"run_id", "status", "epochs", "train_seconds", "samples_per_second", "metrics"}
    assert summary["epochs"] == 30 and rec.status == "finished" and rec.epochs == 30
    assert summary["device"] == "cpu" and summary["step"] == "fused"     # where it trained, by which step
    m = summary["metrics"]
    assert set(m) == set(TASK_NAMES) and m == rec.final_metrics      # the JSON says what was stored
    assert m["click"]["auc"] > 0.95 and m["click"]["accuracy"] > 0.84
    assert m["score"]["rmse"] < 0.25 and m["score"]["r2"] > 0.98
    assert m["kind"]["accuracy"] > 0.94 and m["kind"]["logloss"] < 0.15
    run_id = summary["run_id"]

    code, out, _ = run_cli(capsys, "runs", "--json")
    listed = strict_json(out.strip().splitlines()[-1])
    assert code == 0 and [r["run_id"] for r in listed] == [run_id]
    assert listed[0]["status"] == "finished" and listed[0]["metrics"] == m and listed[0]["epochs"] == 30
    code, out, _ = run_cli(capsys, "runs")
    assert code == 0 and "finished" in out

    new = tmp_path / "new.csv"
    pd.read_csv(tiny_csv).drop(columns=list(TASK_NAMES)).head(7).to_csv(new, index=False)
    out_csv = tmp_path / "preds.csv"
    code, out, err = run_cli(capsys, "predict", "--run", run_id, "--data", new, "--out", out_csv, "--json")
    assert code == 0, err
    assert strict_json(out.strip().splitlines()[-1]) == {"run_id": run_id, "rows": 7, "out": str(out_csv),
                                                         "status": "finished"}
    scored = pd.read_csv(out_csv)
    assert len(scored) == 7 and scored["pred:click"].between(0, 1).all()
    assert set(scored["pred:kind"]) <= {"hi", "lo", "mid"}
    assert {"pred:score", "gate:score:e1", "prob:kind:mid"} <= set(scored.columns)
    assert not any(c.startswith("target:") for c in scored.columns)    # no targets given, none invented


def test_predict_reproduces_the_stored_predictions(capsys, tmp_path, tiny_csv, mmoe_home):
    """`predict` on the training CSV gives, for the stored validation rows, exactly the stored predictions:
    every pred:, prob: and gate: column of a binary, a regression and a multiclass task. And those scores
    reproduce the run's reported metrics and the stored model's own gates. (fp32: with bf16 autocast the
    reported metrics come from the bf16 evaluation in training, about 1% off the stored fp32 model's.)"""
    _, rec = train(capsys, tiny_csv, *TASKS, *CONVERGE, "--experts", 3, "--precision", "fp32")
    store = RunStore(mmoe_home)
    stored = store.load_frame(rec.id, "predictions.parquet")
    # validation rows and the training rows (all of them: fewer than the 20,000-row sample), each row once
    assert stored["_split"].value_counts().to_dict() == {"train": rec.data_summary["splits"]["train"],
                                                         "val": rec.data_summary["splits"]["val"]}
    assert stored["_row"].is_unique and len(stored) == 200
    out_csv = tmp_path / "scored.csv"
    code, _, err = run_cli(capsys, "predict", "--run", rec.id, "--data", tiny_csv, "--out", out_csv)
    assert code == 0, err
    scored = pd.read_csv(out_csv)
    assert len(scored) == 200
    again = scored.iloc[stored["_row"].to_numpy()].reset_index(drop=True)
    cols = [c for c in stored.columns if str(c).startswith(("pred:", "prob:", "gate:"))]
    assert len(cols) == 3 + 3 + 3 * 3          # pred per task, prob per class of kind, 3 gates per task
    assert cols == [c for c in scored.columns if str(c).startswith(("pred:", "prob:", "gate:"))]
    for c in cols:
        if c == "pred:kind":
            assert again[c].tolist() == stored[c].tolist(), c
        else:
            np.testing.assert_allclose(again[c].to_numpy(float), stored[c].to_numpy(float), rtol=1e-4, atol=1e-6,
                                       err_msg=c)

    # the scores a user gets reproduce the metrics the run reports for its validation rows
    val = (stored["_split"] == "val").to_numpy()
    stored, again = stored[val].reset_index(drop=True), again[val].reset_index(drop=True)
    truth = pd.read_csv(tiny_csv).iloc[stored["_row"].to_numpy()].reset_index(drop=True)
    m = rec.final_metrics
    assert roc_auc_score(truth["click"] == "yes", again["pred:click"]) == pytest.approx(m["click"]["auc"], abs=1e-9)
    rmse = float(np.sqrt(np.mean((again["pred:score"] - truth["score"]) ** 2)))
    assert rmse == pytest.approx(m["score"]["rmse"], rel=1e-4)
    classes = ["hi", "lo", "mid"]
    probs = again[[f"prob:kind:{c}" for c in classes]].to_numpy()
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    p_true = probs[np.arange(len(truth)), truth["kind"].map(classes.index).to_numpy()]
    assert -np.mean(np.log(np.clip(p_true, 1e-7, 1))) == pytest.approx(m["kind"]["logloss"], rel=1e-4)
    assert (again["pred:kind"] == truth["kind"]).mean() == pytest.approx(m["kind"]["accuracy"])
    # ... and the gate columns are the stored model's gates ([T, B, E]) for each task, in task order
    model, pre = load_run(store, rec.id)
    x_num, x_cat, _, _ = prepare_for_prediction(truth, pre)
    with torch.no_grad():
        gates = model(x_num, x_cat).gates
    for t, task in enumerate(model.task_names):
        np.testing.assert_allclose(again[gate_columns(again, task)].to_numpy(float), gates[t].numpy(),
                                   rtol=1e-4, atol=1e-6, err_msg=task)


@pytest.mark.parametrize("top_k", [1, 2, None])
def test_top_k_routes_each_row_to_at_most_k_experts(capsys, tiny_csv, mmoe_home, top_k):
    """--top-k K with --experts 4: every stored gate row of every task has at most K non-zero weights
    and sums to 1; without --top-k the gates are dense (every expert gets weight) and sum to 1."""
    extra = () if top_k is None else ("--top-k", top_k)
    _, rec = train(capsys, tiny_csv, *TASKS, *SMALL, "--experts", 4, *extra)
    assert rec.model_config["top_k"] == top_k
    preds = RunStore(mmoe_home).load_frame(rec.id, "predictions.parquet")
    assert len(preds) == 200 and (preds["_split"] == "val").sum() == 40      # validation + training rows
    for task in TASK_NAMES:
        g = preds[gate_columns(preds, task)].to_numpy(float)
        assert g.shape == (200, 4) and (g >= 0).all()
        np.testing.assert_allclose(g.sum(1), 1.0, atol=1e-5, err_msg=task)
        nonzero = (g > 0).sum(1)
        if top_k is None:
            assert (nonzero == 4).all(), task
        else:
            assert nonzero.max() <= top_k, (task, nonzero)


def test_experts_sets_the_number_of_experts(capsys, tiny_csv, mmoe_home):
    """--experts 5: the stored run has gate columns e0..e4 for each task and a model with five experts."""
    _, rec = train(capsys, tiny_csv, *TASKS, *SMALL, "--experts", 5)
    assert rec.model_config["num_experts"] == 5
    store = RunStore(mmoe_home)
    preds = store.load_frame(rec.id, "predictions.parquet")
    for task in TASK_NAMES:
        assert gate_columns(preds, task) == [f"gate:{task}:e{e}" for e in range(5)]
    model, pre = load_run(store, rec.id)
    assert model.num_experts == 5
    experts = {k: v.shape for k, v in model.state_dict().items() if ".experts." in k}
    assert experts and all(shape[0] == 5 for shape in experts.values()), experts     # stacked [E, ...]
    x_num, x_cat, _, _ = prepare_for_prediction(pd.read_csv(tiny_csv).head(3), pre)
    with torch.no_grad():
        assert model(x_num, x_cat).gates.shape == (3, 3, 5)      # [T, B, E]


def test_shared_bottom_stores_no_gates(capsys, tiny_csv, mmoe_home):
    """--arch shared-bottom has no gate: the stored predictions have no gate columns."""
    _, rec = train(capsys, tiny_csv, *TASKS, *SMALL, "--arch", "shared-bottom")
    assert rec.arch == "shared-bottom" and rec.model_config["arch"] == "shared-bottom"
    preds = RunStore(mmoe_home).load_frame(rec.id, "predictions.parquet")
    assert not [c for c in preds.columns if str(c).startswith("gate:")]
    assert {f"pred:{t}" for t in TASK_NAMES} <= set(preds.columns)


@pytest.mark.parametrize("weighting", ["fixed", "uncertainty"])
def test_task_weighting_uncertainty_learns_log_variances(capsys, tiny_csv, mmoe_home, weighting):
    """--task-weighting uncertainty learns a log variance per task (0 at the start), logged each epoch;
    fixed weighting logs none."""
    _, rec = train(capsys, tiny_csv, *TASKS, "--epochs", 10, "--batch-size", 32, "--lr", 0.01,
                   "--expert-hidden", 8, "--task-weighting", weighting)
    assert rec.train_config["task_weighting"] == weighting
    h = RunStore(mmoe_home).history(rec.id)
    lv = h[h["metric"] == "uncertainty_log_var"]
    if weighting == "fixed":
        assert lv.empty
        return
    assert (lv["split"] == "train").all()
    lv = lv.pivot(index="epoch", columns="task", values="value")
    assert sorted(lv.columns) == sorted(TASK_NAMES) and list(lv.index) == list(range(1, 11))
    first, last = lv.iloc[0].abs(), lv.iloc[-1].abs()       # measured: |s| <= 0.05 after 1 epoch, >= 0.35 after 10
    assert (last > 0.2).all() and (last > first + 0.1).all(), lv


@pytest.mark.parametrize("extra", [(), ("--top-k", 2)], ids=["dense", "top-k"])
def test_weight_decay_shrinks_the_stored_weights(capsys, tiny_csv, mmoe_home, extra):
    """--optimizer adamw --weight-decay 0.5 stores a model with a smaller parameter norm than weight decay 0
    from the same initialisation and seed (measured: about 12% smaller), with dense and with sparse gates."""
    store, norms = RunStore(mmoe_home), {}
    for wd in (0.0, 0.5):
        _, rec = train(capsys, tiny_csv, *TASKS, "--optimizer", "adamw", "--weight-decay", wd, "--epochs", 10,
                       "--batch-size", 32, "--lr", 0.01, "--experts", 3, "--expert-hidden", 16, "--seed", 0, *extra)
        assert rec.train_config["weight_decay"] == wd and rec.train_config["optimizer"] == "adamw"
        model, _ = load_run(store, rec.id)
        norms[wd] = float(torch.sqrt(sum((p.detach() ** 2).sum() for p in model.parameters())))
    assert norms[0.5] < 0.95 * norms[0.0], norms


@pytest.mark.parametrize("epochs,val_fraction,drop,name", [(2, 0.1, None, "first"), (4, 0.3, "b", "second try")])
def test_epochs_val_fraction_drop_and_name_take_effect(capsys, tiny_csv, mmoe_home, epochs, val_fraction, drop,
                                                       name):
    """--epochs N: N epochs in the history; --val-fraction F: round(F * rows) stored validation rows;
    --drop COL: the model does not use COL; --name: the stored name."""
    extra = ("--drop", drop) if drop else ()
    _, rec = train(capsys, tiny_csv, *TASKS, "--epochs", epochs, "--val-fraction", val_fraction, "--name", name,
                   "--batch-size", 32, "--expert-hidden", 8, *extra)
    store = RunStore(mmoe_home)
    assert rec.name == name and rec.epochs == epochs
    assert sorted(store.history(rec.id)["epoch"].unique()) == list(range(1, epochs + 1))
    n_val = round(200 * val_fraction)
    preds = store.load_frame(rec.id, "predictions.parquet")
    assert preds["_split"].value_counts().to_dict() == {"train": 200 - n_val, "val": n_val}
    assert preds["_row"].is_unique
    assert rec.data_summary["splits"] == {"train": 200 - n_val, "val": n_val}
    used = ["a"] if drop else ["a", "b"]
    assert rec.data_summary["features"]["numeric"] == used
    _, pre = load_run(store, rec.id)
    assert list(pre.numeric_columns) == used and list(pre.categorical_columns) == ["color"]
    if drop:
        assert rec.data_summary["ignored"]["b"] == "dropped"


def test_json_is_strict_when_a_metric_is_nan(capsys, tmp_path, mmoe_home):
    """A validation split of one row has one class, so no AUC: train --json and runs --json say null
    (standard JSON), never a bare NaN; the table shows '-'."""
    p = tmp_path / "t20.csv"
    make_tiny_frame(20, seed=1).to_csv(p, index=False)
    summary, rec = train(capsys, p, "--task", "click:binary=yes", "--epochs", 1, "--val-fraction", 0.05)
    assert rec.data_summary["splits"]["val"] == 1
    assert summary["metrics"]["click"]["auc"] is None and summary["metrics"]["click"]["logloss"] > 0
    code, out, _ = run_cli(capsys, "runs", "--json")
    assert code == 0
    listed = strict_json(out.strip().splitlines()[-1])
    assert listed[0]["metrics"]["click"]["auc"] is None and listed[0]["metrics"]["click"]["logloss"] > 0
    code, out, _ = run_cli(capsys, "runs")
    assert code == 0 and "auc=-" in out


@pytest.mark.parametrize("arch,extra", [("omoe", []), ("shared-bottom", []), ("mmoe", ["--top-k", "2"]),
                                        ("mmoe", ["--gate-hidden", "8", "--task-weighting", "uncertainty"])])
def test_train_architectures(capsys, tiny_csv, mmoe_home, arch, extra):
    """Every architecture learns the tiny frame's three tasks (measured over six initialisations:
    AUC >= 0.972, RMSE <= 0.26, accuracy >= 0.9)."""
    summary, rec = train(capsys, tiny_csv, *TASKS, *CONVERGE, "--arch", arch, "--experts", 4, *extra)
    assert rec.arch == arch
    m = summary["metrics"]
    assert m["click"]["auc"] > 0.95, m
    assert m["score"]["rmse"] < 0.3, m
    assert m["kind"]["accuracy"] > 0.87, m


def test_same_seed_twice_in_one_process_gives_the_same_run(capsys, tiny_csv, mmoe_home):
    """One seed, one result within one process too (the dashboard trains many runs in one process)."""
    a, _ = train(capsys, tiny_csv, *TASKS, *SMALL, "--seed", 3)
    b, _ = train(capsys, tiny_csv, *TASKS, *SMALL, "--seed", 3)
    assert a["metrics"] == b["metrics"]


def test_diverged_run_exit_3(capsys, tiny_csv, mmoe_home, monkeypatch):
    import mmoe.training.step as train_mod
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


def test_a_threshold_task_trains_and_scores(tmp_path, mmoe_home, capsys):
    df = make_tiny_frame(300, seed=2)
    csv = tmp_path / "t.csv"
    df.to_csv(csv, index=False)
    code, out, err = run_cli(capsys, "train", "--data", csv, "--task", "score:binary>1", "--epochs", 3, "--json",
                             "--quiet")
    assert code == 0, err
    s = strict_json(out.strip().splitlines()[-1])
    assert "auc" in s["metrics"]["score"]
    rec = RunStore(mmoe_home).get_run(s["run_id"])
    assert rec.data_config["tasks"][0]["threshold"] == ">1"
    assert run_cli(capsys, "predict", "--run", s["run_id"], "--data", csv, "--out", tmp_path / "p.csv")[0] == 0
    pred = pd.read_csv(tmp_path / "p.csv")
    assert len(pred) == 300 and pred["pred:score"].between(0, 1).all()
    # the target column of the scored file is the rule applied to the number
    assert (pred["target:score"] == (df["score"] > 1).astype(float)).all()


def test_train_says_where_and_by_which_step_it_trained(capsys, tiny_csv, mmoe_home):
    """The closing line names the device and the step; a model the fused step cannot train says why."""
    code, out, _ = run_cli(capsys, "train", "--data", tiny_csv, *TASKS, "--epochs", 1, "--quiet")
    assert code == 0 and "samples/s on cpu, fused step)" in out.splitlines()[0]
    code, out, _ = run_cli(capsys, "train", "--data", tiny_csv, *TASKS, "--epochs", 1, "--quiet", "--top-k", 2)
    assert code == 0 and "samples/s on cpu, autograd (sparse top-k gating) step)" in out.splitlines()[0]
