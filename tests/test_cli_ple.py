"""python -m mmoe with --arch cgc | ple on a tiny table: the flags reach the stored model, one seed gives
one result, `runs` lists the arch, `predict` scores with the stored model (gates zero on other tasks'
experts), an experiment sweeps arch=mmoe,cgc,ple, and bad combinations are one line with exit 2."""
import json

import numpy as np
import pandas as pd
import pytest
from frames import make_tiny_frame

from mmoe.cli import main
from mmoe.runs.runner import load_run
from mmoe.runs.store import RunStore

TASKS = ("--task", "click:binary=yes", "--task", "score:regression", "--task", "kind:multiclass")
SMALL = ("--epochs", 3, "--batch-size", 32, "--expert-hidden", 8, "--threads", 1)


def run_cli(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def csv(tmp_path):
    path = tmp_path / "tiny.csv"
    make_tiny_frame(200, seed=3).to_csv(path, index=False)
    return path


def _train(capsys, csv, *args):
    code, out, err = run_cli(capsys, "train", "--data", csv, *TASKS, *SMALL, "--json", "--quiet", *args)
    assert code == 0, err
    return json.loads(out.strip().splitlines()[-1])


def test_ple_flags_reach_the_stored_model_and_predict_uses_it(capsys, csv, tmp_path, mmoe_home):
    s = _train(capsys, csv, "--arch", "ple", "--shared-experts", 3, "--task-experts", 1, "--levels", 3)
    assert s["status"] == "finished"
    rec = RunStore().get_run(s["run_id"])
    assert rec.arch == "ple"
    assert {k: rec.model_config[k] for k in ("arch", "shared_experts", "task_experts", "levels")} == {
        "arch": "ple", "shared_experts": 3, "task_experts": 1, "levels": 3}
    model, _ = load_run(RunStore(), rec.id)                  # saved and loaded back
    assert type(model.core).__name__ == "PLE" and model.core.num_levels == 3 and model.num_experts == 6
    code, out, _ = run_cli(capsys, "runs", "--json")
    assert code == 0 and json.loads(out.strip().splitlines()[-1])[0]["arch"] == "ple"
    code, out, _ = run_cli(capsys, "runs")
    assert code == 0 and " ple " in out

    new = tmp_path / "new.csv"
    pd.read_csv(csv).drop(columns=["click", "score", "kind"]).head(9).to_csv(new, index=False)
    scored = tmp_path / "scored.csv"
    code, _, err = run_cli(capsys, "predict", "--run", rec.id, "--data", new, "--out", scored)
    assert code == 0, err
    df = pd.read_csv(scored)
    assert len(df) == 9
    # 3 shared + 3 tasks x 1 own expert = 6 gate columns per task; each task's gate sees s0-s2 and its own
    for t, task in enumerate(("click", "score", "kind")):
        g = df[[f"gate:{task}:e{j}" for j in range(6)]].to_numpy()
        np.testing.assert_allclose(g.sum(1), 1.0, atol=1e-5)
        own = 3 + t
        assert (g[:, [j for j in range(3, 6) if j != own]] == 0).all()
        assert (g[:, [0, 1, 2, own]] > 0).all()


@pytest.mark.parametrize("arch", ["cgc", "ple"])
def test_one_seed_one_result(capsys, csv, mmoe_home, arch):
    a = _train(capsys, csv, "--arch", arch, "--seed", 4)
    b = _train(capsys, csv, "--arch", arch, "--seed", 4)
    assert a["metrics"] == b["metrics"]
    store = RunStore()
    pa = store.load_frame(a["run_id"], "predictions.parquet")
    pb = store.load_frame(b["run_id"], "predictions.parquet")
    pd.testing.assert_frame_equal(pa, pb)
    c = _train(capsys, csv, "--arch", arch, "--seed", 5)
    assert c["metrics"] != a["metrics"]


@pytest.mark.parametrize("args, why", [
    (("--arch", "cgc", "--levels", 2), "CGC has one extraction level"),
    (("--arch", "ple", "--top-k", 2), "sparse top-k gating is not available for PLE"),
    (("--arch", "cgc", "--shared-experts", 0), "--shared-experts"),
    (("--arch", "ple", "--task-experts", 100), "--task-experts"),
    (("--arch", "ple", "--levels", 0), "--levels"),
    (("--arch", "ple", "--levels", "two"), "--levels"),
])
def test_bad_combinations_are_one_line_exit_2(capsys, csv, mmoe_home, args, why):
    code, out, err = run_cli(capsys, "train", "--data", csv, *TASKS, *SMALL, *args)
    assert code == 2 and why in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert RunStore().list_runs() == []


def test_an_experiment_sweeps_the_architectures(capsys, csv, mmoe_home):
    code, out, err = run_cli(capsys, "experiment", "--data", csv, "--task", "click:binary=yes", "--task",
                             "score:regression", *SMALL, "--grid", "arch=mmoe,cgc,ple", "--seeds", 1, "--json")
    assert code == 0, err
    s = json.loads(out.strip().splitlines()[-1])
    assert [c["settings"] for c in s["configs"]] == [{"arch": "mmoe"}, {"arch": "cgc"}, {"arch": "ple"}]
    archs = {r.arch: r for r in RunStore().list_runs()}
    assert set(archs) == {"mmoe", "cgc", "ple"}
    assert archs["ple"].model_config["levels"] is None          # PLE's default: two levels
    assert all(r.status == "finished" for r in archs.values())


def test_the_grid_sweeps_levels_and_expert_counts(capsys, csv, mmoe_home):
    code, out, err = run_cli(capsys, "experiment", "--data", csv, "--task", "click:binary=yes", *SMALL,
                             "--arch", "ple", "--grid", "levels=1,2", "--grid", "shared-experts=1,2", "--seeds", 1,
                             "--json")
    assert code == 0, err
    got = sorted((r.model_config["levels"], r.model_config["shared_experts"]) for r in RunStore().list_runs())
    assert got == [(1, 1), (1, 2), (2, 1), (2, 2)]
