"""python -m mmoe experiment | paper | runs --experiments: the JSON the issue gives, paired seeds, a
member run reproduced alone with train, bad grids, why a run stopped."""
import pytest
from frames import make_tiny_frame
from test_cli import run_cli, strict_json

from mmoe.runs.store import RunStore

TASKS = ("--task", "click:binary=yes", "--task", "score:regression")
SMALL = ("--epochs", 2, "--batch-size", 32, "--expert-hidden", 8, "--experts", 3, "--threads", 1)


@pytest.fixture
def csv(tmp_path):
    path = tmp_path / "tiny.csv"
    make_tiny_frame(240, seed=5).to_csv(path, index=False)
    return path


def test_experiment_json_is_paired_and_a_member_reproduces_alone(csv, mmoe_home, capsys):
    code, out, err = run_cli(capsys, "experiment", "--data", csv, *TASKS, *SMALL, "--grid", "arch=mmoe,shared-bottom",
                             "--seeds", 3, "--seed", 7, "--json")
    assert code == 0, err
    s = strict_json(out.strip().splitlines()[-1])
    assert set(s) >= {"experiment_id", "status", "runs", "configs", "differences"}
    assert s["status"] == "finished" and len(s["runs"]) == 6
    assert [c["settings"] for c in s["configs"]] == [{"arch": "mmoe"}, {"arch": "shared-bottom"}]
    assert all(c["seeds"] == [7, 8, 9] for c in s["configs"])
    auc = s["configs"][1]["metrics"]["click"]["auc"]
    assert len(auc["values"]) == 3 and auc["ci95"][0] <= auc["mean"] <= auc["ci95"][1]
    assert {(d["task"], d["metric"]) for d in s["differences"]} == {("click", "auc"), ("score", "rmse")}
    assert all(d["a"] == {"arch": "mmoe"} and d["b"] == {"arch": "shared-bottom"} for d in s["differences"])
    assert "run 6/6" in err   # progress per run on stderr
    # shared-bottom with seed 8, trained alone with train's options
    run_id = s["configs"][1]["runs"][1]
    code, out, err = run_cli(capsys, "train", "--data", csv, *TASKS, *SMALL, "--arch", "shared-bottom",
                             "--seed", 8, "--json", "--quiet")
    alone = strict_json(out.strip().splitlines()[-1])
    assert alone["metrics"] == RunStore(mmoe_home).get_run(run_id).final_metrics
    assert alone["metrics"]["click"]["auc"] == auc["values"][1]


def test_experiment_text_report_and_runs_listing(csv, mmoe_home, capsys):
    code, out, err = run_cli(capsys, "experiment", "--data", csv, *TASKS, *SMALL, "--grid", "lr=0.001,0.01",
                             "--seeds", 2, "--name", "lr sweep", "--quiet")
    assert code == 0, err
    assert "mean over seeds [95% interval]" in out and "paired differences" in out
    assert "lr=0.01 vs lr=0.001" in out and "took" in out
    code, out, _ = run_cli(capsys, "runs", "--experiments")
    assert code == 0 and "lr sweep" in out and "4 runs" in out and "lr (2) x 2 seeds" in out
    code, out, _ = run_cli(capsys, "runs", "--experiments", "--json")
    [listed] = strict_json(out.strip().splitlines()[-1])
    assert listed["name"] == "lr sweep" and len(listed["runs"]) == 4
    code, out, _ = run_cli(capsys, "runs")
    assert "all 2 epochs done" in out


@pytest.mark.parametrize("grid, why", [("colour=red", "KEY one of"), ("experts=2,0", "experts=0"),
                                       ("lr", "KEY=V1,V2"), ("epochs=two", "int")])
def test_a_bad_grid_is_exit_2_with_one_line(csv, mmoe_home, capsys, grid, why):
    code, out, err = run_cli(capsys, "experiment", "--data", csv, *TASKS, *SMALL, "--grid", grid, "--seeds", 2)
    assert code == 2 and why in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert RunStore(mmoe_home).list_runs() == []


def test_experiment_seeds_out_of_range(csv, mmoe_home, capsys):
    code, _, err = run_cli(capsys, "experiment", "--data", csv, *TASKS, "--seeds", 0)
    assert code == 2 and "--seeds" in err


def test_paper_json_carries_arch_and_correlation(mmoe_home, capsys):
    code, out, err = run_cli(capsys, "paper", "--correlations", "0.5,1.0", "--seeds", 2, "--rows", 300,
                             "--epochs", 1, "--threads", 1, "--json")
    assert code == 0, err
    s = strict_json(out.strip().splitlines()[-1])
    assert s["kind"] == "paper" and len(s["runs"]) == 20 and s["seconds"] > 0
    assert {tuple(sorted(c["settings"])) for c in s["configs"]} == {("arch", "correlation")}
    assert {c["settings"]["arch"] for c in s["configs"]} == {"mmoe", "omoe", "shared-bottom", "cgc", "ple"}


def test_a_paper_run_reproduces_from_synth_and_train(tmp_path, mmoe_home, capsys):
    code, out, err = run_cli(capsys, "paper", "--correlations", "0.9", "--seeds", 1, "--rows", 300, "--epochs", 2,
                             "--threads", 1, "--json")
    s = strict_json(out.strip().splitlines()[-1])
    member = RunStore(mmoe_home).get_run(s["configs"][0]["runs"][0])    # mmoe, correlation 0.9, seed 0
    path = tmp_path / "p.csv"
    assert run_cli(capsys, "synth", "--correlation", 0.9, "--rows", 300, "--seed", 0, "--out", path)[0] == 0
    mc, tc = member.model_config, member.train_config
    code, out, err = run_cli(capsys, "train", "--data", path, "--task", "y1:regression", "--task", "y2:regression",
                             "--experts", mc["num_experts"], "--expert-hidden", 16, "--tower-hidden", 8,
                             "--epochs", 2, "--batch-size", tc["batch_size"], "--lr", tc["lr"], "--seed", 0,
                             "--threads", 1, "--json", "--quiet")
    assert code == 0, err
    assert strict_json(out.strip().splitlines()[-1])["metrics"] == member.final_metrics


@pytest.mark.parametrize("args, why", [(("--correlations", "high"), "numbers"), (("--correlations", "2"), "between"),
                                       (("--rows", 3), "rows"), (("--census", "--rows", 100), "--rows"),
                                       (("--census", "/nope.csv"), "no such file"),
                                       (("--archs", "mmoe,moe"), "architectures must be some of"),
                                       (("--archs", ","), "got none")])
def test_paper_bad_input(mmoe_home, capsys, args, why):
    code, _, err = run_cli(capsys, "paper", *args)
    assert code == 2 and why in err


def test_paper_runs_the_architectures_asked_for(mmoe_home, capsys):
    code, out, err = run_cli(capsys, "paper", "--archs", "omoe, MMoE", "--correlations", "0.5", "--seeds", 1,
                             "--rows", 300, "--epochs", 1, "--threads", 1, "--json")
    assert code == 0, err
    s = strict_json(out.strip().splitlines()[-1])
    assert [c["settings"]["arch"] for c in s["configs"]] == ["mmoe", "omoe"] and len(s["runs"]) == 2
    assert s["name"] == "paper synthetic: 2 architectures x 1 correlations x 1 seeds"


def test_paper_census_on_the_packaged_sample(mmoe_home, capsys):
    code, out, err = run_cli(capsys, "paper", "--census", "--seeds", 1, "--epochs", 1, "--threads", 1, "--json")
    assert code == 0, err
    s = strict_json(out.strip().splitlines()[-1])
    assert s["kind"] == "census"
    assert [c["settings"]["arch"] for c in s["configs"]] == ["mmoe", "omoe", "shared-bottom", "cgc", "ple"]
    assert set(s["configs"][0]["metrics"]) == {"income_50k", "marital_stat"}


def test_why_a_run_stopped_is_in_the_json(csv, mmoe_home, capsys):
    code, out, _ = run_cli(capsys, "train", "--data", csv, *TASKS, *SMALL, "--epochs", 40, "--patience", 1,
                           "--lr", 0.05, "--json", "--quiet")
    s = strict_json(out.strip().splitlines()[-1])
    assert s["epochs"] < 40 and s["stop_reason"].startswith(f"early stopping at epoch {s['epochs']}")
    assert "restored" in s["stop_reason"]
    assert RunStore(mmoe_home).get_run(s["run_id"]).stop_reason == s["stop_reason"]
