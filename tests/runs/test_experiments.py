"""Experiments: a grid of settings x paired seeds, stored as one record, summarised with Student-t
intervals; each member run is the run its settings and seed give alone; the paper's experiments."""
import math
import sqlite3
import threading

import numpy as np
import pytest
import torch
from scipy import stats

from mmoe.config import ConfigError, DataConfig, ModelConfig, TaskSpec, TrainConfig
from mmoe.nn import build_model, count_parameters
from mmoe.runs.experiments import (
    Experiment,
    grid_experiment,
    mean_ci,
    parse_grid,
    run_experiment,
    submit_experiment,
    summarize,
)
from mmoe.runs.jobs import JobManager
from mmoe.runs.paper import ARCHS, paper_experiment
from mmoe.runs.runner import DataSource, run_training
from mmoe.runs.store import SCHEMA_VERSION, RunStore

TASKS = (TaskSpec("click", "binary", positive="yes"), TaskSpec("score", "regression"))
MC = ModelConfig(num_experts=3, expert_hidden=(8,), tower_hidden=(4,))
TC = TrainConfig(epochs=2, batch_size=32, threads=1)


def _grid_exp(frame, grid=(("arch", ["mmoe", "shared-bottom"]),), seeds=(0, 1, 2), **kw):
    return grid_experiment(DataSource(frame, DataConfig(tasks=TASKS)), MC, TC, list(grid), seeds,
                           name="exp", dataset="tiny", split_follows_seed=True, **kw)


def test_mean_ci_is_the_student_t_interval():
    x = [0.80, 0.83, 0.78, 0.85]
    r = mean_ci(x)
    half = stats.t.ppf(0.975, 3) * np.std(x, ddof=1) / math.sqrt(4)
    assert r["mean"] == pytest.approx(np.mean(x)) and r["n"] == 4
    assert r["ci95"] == pytest.approx([np.mean(x) - half, np.mean(x) + half])
    assert mean_ci([0.5, None, float("nan")]) == {"mean": 0.5, "ci95": None, "n": 1, "sd": None}
    assert mean_ci([])["mean"] is None
    # two seeds: t(0.975, 1) = 12.71, a wide interval, as it should be
    assert mean_ci([1.0, 2.0])["ci95"] == pytest.approx([1.5 - 12.7062 * 0.5, 1.5 + 12.7062 * 0.5], rel=1e-4)


def test_parse_grid():
    assert parse_grid(["arch=mmoe,omoe", "expert-hidden=64,32/128", "lr=0.001,0.01", "top-k=0,2"]) == [
        ("arch", ["mmoe", "omoe"]), ("expert-hidden", ["64,32", "128"]), ("lr", [0.001, 0.01]), ("top-k", [0, 2])]
    for bad, why in [("arch", "KEY=V1,V2"), ("colour=red", "KEY one of"), ("lr=fast", "float"),
                     ("experts=2,2", "repeats")]:
        with pytest.raises(ConfigError, match=why):
            parse_grid([bad])
    with pytest.raises(ConfigError, match="twice"):
        parse_grid(["lr=0.1", "lr=0.2"])


def test_a_bad_grid_value_names_the_setting(tiny_frame):
    with pytest.raises(ConfigError, match="experts=0"):
        _grid_exp(tiny_frame, grid=[("experts", [2, 0])])


def test_experiment_is_one_record_with_paired_seeds(tiny_frame, mmoe_home):
    store = RunStore(mmoe_home)
    exp_id = run_experiment(_grid_exp(tiny_frame), store)
    rec = store.get_experiment(exp_id)
    assert (rec.status, rec.kind, rec.seeds) == ("finished", "grid", [0, 1, 2])
    runs = store.experiment_runs(exp_id)
    assert len(runs) == 6 and {r.experiment_id for r in runs} == {exp_id}
    # seed by seed: every point of seed 0 first, and the split follows the seed as --seed does
    assert [(r.experiment_point, r.train_config["seed"], r.data_config["seed"]) for r in runs] == [
        (0, 0, 0), (1, 0, 0), (0, 1, 1), (1, 1, 1), (0, 2, 2), (1, 2, 2)]
    assert runs[1].name == "exp · arch=shared-bottom · seed 0"                    # the experiment's name first
    s = summarize(store, exp_id)
    assert s["runs"] == [r.id for r in runs] and s["status"] == "finished"
    a, b = s["configs"]
    assert (a["settings"], b["settings"]) == ({"arch": "mmoe"}, {"arch": "shared-bottom"})
    assert a["runs"] == [runs[0].id, runs[2].id, runs[4].id]
    auc = a["metrics"]["click"]["auc"]
    assert auc["values"] == [runs[i].final_metrics["click"]["auc"] for i in (0, 2, 4)]
    assert auc["mean"] == pytest.approx(np.mean(auc["values"]))
    assert auc["ci95"][0] < auc["mean"] < auc["ci95"][1]
    # differences: the primary metric of each task, b - a seed by seed
    d = {x["task"]: x for x in s["differences"]}
    assert set(d) == {"click", "score"} and d["score"]["metric"] == "rmse" and d["click"]["metric"] == "auc"
    assert d["click"]["values"] == pytest.approx(
        [y - x for x, y in zip(auc["values"], b["metrics"]["click"]["auc"]["values"])])
    assert d["click"]["a"] == {"arch": "mmoe"} and d["click"]["b"] == {"arch": "shared-bottom"}
    assert "95% interval" in d["click"]["verdict"]


def test_member_runs_are_named_after_the_experiment(tiny_frame, mmoe_home):
    store = RunStore(mmoe_home)
    exp = grid_experiment(DataSource(tiny_frame, DataConfig(tasks=TASKS)), ModelConfig(num_experts=2),
                          TrainConfig(epochs=1, batch_size=32, threads=1), [], (4, 5), name="mmoe-8x")
    runs = store.experiment_runs(run_experiment(exp, store))
    assert [r.name for r in runs] == ["mmoe-8x · seed 4", "mmoe-8x · seed 5"]    # seeds only: no "base settings"
    exp = grid_experiment(DataSource(tiny_frame, DataConfig(tasks=TASKS)), ModelConfig(num_experts=2),
                          TrainConfig(epochs=1, batch_size=32, threads=1), [("lr", [0.01])], (0,))
    exp_id = run_experiment(exp, store)
    assert [r.name for r in store.experiment_runs(exp_id)] == [f"exp {exp_id} · lr=0.01 · seed 0"]   # no name


def test_a_member_run_trained_alone_gives_the_same_numbers(tiny_frame, mmoe_home):
    store = RunStore(mmoe_home)
    exp_id = run_experiment(_grid_exp(tiny_frame, seeds=(3, 4)), store)
    member = store.experiment_runs(exp_id)[3]          # shared-bottom, seed 4
    alone = run_training(DataSource(tiny_frame, DataConfig.from_dict(member.data_config)),
                         ModelConfig.from_dict(member.model_config), TrainConfig.from_dict(member.train_config),
                         store=store)
    assert store.get_run(alone.run_id).final_metrics == member.final_metrics
    mine, theirs = store.load_model_state(alone.run_id)[0], store.load_model_state(member.id)[0]
    assert all(torch.equal(mine[k], theirs[k]) for k in theirs)
    h1, h2 = store.history(alone.run_id), store.history(member.id)
    assert h1.equals(h2)


def test_two_keys_compare_against_the_first_value_of_the_first_key(tiny_frame, mmoe_home):
    store = RunStore(mmoe_home)
    exp = _grid_exp(tiny_frame, grid=[("arch", ["mmoe", "omoe"]), ("lr", [0.001, 0.01])], seeds=(0, 1))
    s = summarize(store, run_experiment(exp, store))
    pairs = {(tuple(d["a"].values()), tuple(d["b"].values())) for d in s["differences"]}
    assert pairs == {(("mmoe", 0.001), ("omoe", 0.001)), (("mmoe", 0.01), ("omoe", 0.01))}


def test_cancel_stops_the_run_in_progress_and_starts_no_more(tiny_frame, mmoe_home):
    store = RunStore(mmoe_home)
    cancel = threading.Event()
    seen = []

    def progress(p):
        seen.append(p)
        if p.runs_done == 2:
            cancel.set()

    exp_id = run_experiment(_grid_exp(tiny_frame), store, cancel_event=cancel, on_progress=progress)
    assert store.get_experiment(exp_id).status == "cancelled"
    assert len(store.experiment_runs(exp_id)) == 2
    s = summarize(store, exp_id)
    assert s["configs"][0]["statuses"] == ["finished", None, None]
    assert s["configs"][0]["metrics"]["click"]["auc"]["values"][1:] == [None, None]


def test_bad_data_stores_nothing(mmoe_home, tiny_frame):
    from mmoe.data import DataError

    store = RunStore(mmoe_home)
    bad = grid_experiment(DataSource(tiny_frame, DataConfig(tasks=(TaskSpec("nope"),))), MC, TC,
                          [("arch", ["mmoe"])], (0,))
    with pytest.raises(DataError):
        run_experiment(bad, store)
    assert store.list_experiments() == [] and store.list_runs() == []


def test_experiment_validation():
    with pytest.raises(ValueError, match="repeat"):
        Experiment("x", "grid", "d", [], (1, 1), [object()])
    with pytest.raises(ValueError, match="at least one seed"):
        Experiment("x", "grid", "d", [], (), [object()])


def test_a_job_runs_the_experiment_with_progress_for_the_whole(tiny_frame, mmoe_home):
    m = JobManager(1)
    try:
        job = submit_experiment(m, _grid_exp(tiny_frame, seeds=(0, 1)), store_home=mmoe_home)
        fractions = []
        while not job.wait(0.02):
            fractions.append(job.snapshot().fraction)
        p = job.snapshot()
        assert p.status == "finished" and p.fraction == 1.0
        assert p.extra["runs_total"] == 4 and p.extra["runs_done"] == 4
        assert fractions == sorted(fractions)
        store = RunStore(mmoe_home)
        assert len(store.experiment_runs(p.extra["experiment_id"])) == 4
    finally:
        m.shutdown()


def test_a_dead_owner_marks_the_experiment_interrupted(mmoe_home):
    store = RunStore(mmoe_home)
    exp_id = store.create_experiment("x", kind="grid", dataset="d", spec={"seeds": [0]})
    con = sqlite3.connect(store.db_path)
    con.execute("UPDATE experiments SET owner_pid = 999999999 WHERE id = ?", (exp_id,))
    con.commit()
    con.close()
    assert RunStore(mmoe_home).get_experiment(exp_id).status == "interrupted"


def test_a_schema_1_store_is_migrated(mmoe_home):
    from mmoe.runs import store as store_mod

    old = store_mod._SCHEMA.split("CREATE TABLE IF NOT EXISTS experiments")[0]
    old = old.replace(",\n    stop_reason        TEXT,\n    experiment_id      INTEGER,\n    experiment_point   INTEGER", "")
    assert "stop_reason" not in old
    mmoe_home.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(mmoe_home / "runs.sqlite")
    con.executescript(old + "; PRAGMA user_version = 1;")
    con.execute("INSERT INTO runs (name, dataset, status, created_at, data_config, model_config, train_config)"
                " VALUES ('old', 'd', 'finished', 'now', '{}', '{}', '{}')")
    con.commit()
    con.close()
    store = RunStore(mmoe_home)
    assert store.get_run(1).name == "old" and store.get_run(1).stop_reason is None
    assert store.list_experiments() == []
    con = sqlite3.connect(mmoe_home / "runs.sqlite")
    assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
    con.close()


def test_delete_experiment_removes_its_runs(tiny_frame, mmoe_home):
    store = RunStore(mmoe_home)
    exp_id = run_experiment(_grid_exp(tiny_frame, seeds=(0,)), store)
    other = run_training(DataSource(tiny_frame, DataConfig(tasks=TASKS)), MC, TC, store=store).run_id
    assert len(store.delete_experiment(exp_id)) == 2
    assert [r.id for r in store.list_runs()] == [other] and store.list_experiments() == []


# ----------------------------------------------------------------------------- the paper

def test_paper_experiment_grid_and_comparable_sizes():
    exp = paper_experiment((0.5, 1.0), seeds=2, rows=300, epochs=1)
    assert [tuple(p.settings.values()) for p in exp.points] == [(a, c) for a in ARCHS for c in (0.5, 1.0)]
    assert exp.seeds == (0, 1) and exp.split_follows_seed
    # the five architectures have about the same number of parameters (the paper's condition)
    from mmoe.data import prepare
    data = prepare(*[(d.source, d.config) for d in [exp.points[0].data(0)]][0])
    sizes = {p.settings["arch"]: count_parameters(build_model(p.model_config, data)) for p in exp.points}
    assert max(sizes.values()) / min(sizes.values()) < 1.07, sizes
    # one table per correlation and seed, shared by the architectures, fresh for another seed
    same = [p for p in exp.points if p.settings["correlation"] == 0.5]
    assert len({id(p.data) for p in same}) == 1
    assert not same[0].data(0).source.equals(same[0].data(1).source)
    with pytest.raises(ValueError, match="correlations"):
        paper_experiment((1.5,))
    with pytest.raises(ValueError, match="rows"):
        paper_experiment(rows=5)


def test_paper_experiment_runs_and_summarises(mmoe_home):
    store = RunStore(mmoe_home)
    s = summarize(store, run_experiment(paper_experiment((0.5, 0.9), seeds=2, rows=400, epochs=2,
                                                         train=TrainConfig(epochs=2, batch_size=64, threads=1)),
                                        store))
    assert s["kind"] == "paper" and len(s["runs"]) == 20
    assert [c["settings"] for c in s["configs"]][:2] == [{"arch": "mmoe", "correlation": 0.5},
                                                        {"arch": "mmoe", "correlation": 0.9}]
    # each architecture against MMoE at the same correlation, for both tasks
    assert {(d["b"]["arch"], d["b"]["correlation"], d["task"]) for d in s["differences"]} == {
        (a, c, t) for a in ("omoe", "shared-bottom", "cgc", "ple") for c in (0.5, 0.9) for t in ("y1", "y2")}
    assert all(d["a"] == {"arch": "mmoe", "correlation": d["b"]["correlation"]} for d in s["differences"])


def test_an_interval_stays_inside_the_metric_range(tiny_frame, mmoe_home):
    store = RunStore(mmoe_home)
    s = summarize(store, run_experiment(_grid_exp(tiny_frame, grid=[("arch", ["mmoe"])], seeds=(0, 1)), store))
    for task in s["configs"][0]["metrics"].values():
        for name, stat in task.items():
            lo, hi = stat["ci95"]
            raw = mean_ci(stat["values"])["ci95"]
            if name == "auc":
                assert 0 <= lo <= hi <= 1 and (raw[1] <= 1 or hi == 1)
            if name in ("rmse", "logloss"):
                assert lo >= 0 and (raw[0] >= 0 or lo == 0)


def test_a_grid_sweeps_pos_weight_for_every_binary_task_and_gradnorm_alpha(tiny_frame):
    """--grid pos-weight=none,balanced,3 gives each binary task the same setting (the regression task none);
    --grid gradnorm-alpha=0.5,1.5 sets GradNorm's alpha."""
    exp = _grid_exp(tiny_frame, grid=parse_grid(["pos-weight=none,balanced,3", "gradnorm-alpha=0.5,1.5"]),
                    seeds=(0,))
    got = [(p.train_config.pos_weight, p.train_config.gradnorm_alpha) for p in exp.points]
    assert got == [({}, 0.5), ({}, 1.5), ({"click": "balanced"}, 0.5), ({"click": "balanced"}, 1.5),
                   ({"click": 3.0}, 0.5), ({"click": 3.0}, 1.5)]
    with pytest.raises(ConfigError, match="pos_weight"):
        _grid_exp(tiny_frame, grid=parse_grid(["pos-weight=-1"]), seeds=(0,))
