"""Data-parallel training under torchrun (gloo, 2 CPU processes): one model, the same numbers as one
process at the same global batch, one stored run, and processes that always stop together.

Each torchrun start costs a few seconds (two fresh interpreters importing torch); every launch has a
timeout, so a rank that hangs fails its test instead of stalling the suite."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mmoe.runs.store import RunStore
from mmoe.training.distributed import World

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 180
TASKS = ("--task", "click:binary=yes", "--task", "score:regression", "--task", "kind:multiclass")


def _env(tmp_path: Path) -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MMOE_THREADS": "1", "MMOE_HOME": str(tmp_path / "default-store"),
            "PYTHONPATH": str(ROOT)}


def _launch(args: list, tmp_path: Path, nproc: int | None = 2) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc-per-node=N ...`` (or plain ``python`` with nproc None), killed as a
    whole process group if it outlives TIMEOUT."""
    head = ([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"]
            if nproc else [sys.executable])
    p = subprocess.Popen([*head, *map(str, args)], cwd=ROOT, env=_env(tmp_path), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = p.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        pytest.fail(f"hung: {' '.join(map(str, args))} did not end within {TIMEOUT} s\n{err[-3000:]}")
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


def _train(csv: Path, store: Path, tmp_path: Path, *extra, nproc: int | None) -> dict:
    r = _launch(["-m", "mmoe", "train", "--data", csv, *TASKS, "--store", store, "--json", "--quiet",
                 "--precision", "fp32", *extra], tmp_path, nproc)
    assert r.returncode == 0, r.stderr[-3000:]
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    assert len(lines) == 1, r.stdout          # only rank 0 prints the JSON
    return json.loads(lines[0])


def _close(a: dict, b: dict, rel: float) -> None:
    for task, ms in b.items():
        for k, v in ms.items():
            assert a[task][k] == pytest.approx(v, rel=rel, abs=1e-6), (task, k)


def test_each_process_takes_a_contiguous_shard_and_an_empty_one_weighs_nothing():
    shards = [World(r, 3, r, "gloo").share(10) for r in range(3)]
    assert shards == [(0, 3, 0.3), (3, 6, 0.3), (6, 10, 0.4)]
    assert sum(w for _, _, w in shards) == pytest.approx(1.0)
    # a last batch of one row on two processes: rank 0's shard is empty, so it computes on the row with weight 0
    assert [World(r, 2, r, "gloo").share(1) for r in range(2)] == [(0, 1, 0.0), (0, 1, 1.0)]


@pytest.mark.parametrize("extra", [
    (),                                                           # the fused step: its flat gradient all-reduced
    ("--task-weighting", "uncertainty", "--batch-size", "53"),    # autograd + DDP; the last batch has one row
], ids=["fused", "autograd-uneven"])
def test_two_processes_train_one_model_like_one_process(tmp_path, extra):
    """Two gloo processes at the same global batch give the single process's metrics (equal up to float
    summation order: measured within 1e-6 after one epoch) and store exactly one run, which records
    the world size and backend."""
    from frames import make_tiny_frame

    csv = tmp_path / "tiny.csv"
    make_tiny_frame().to_csv(csv, index=False)
    opts = ("--epochs", "1", "--batch-size", "32", *extra)
    two = _train(csv, tmp_path / "two", tmp_path, *opts, nproc=2)
    one = _train(csv, tmp_path / "one", tmp_path, *opts, nproc=None)
    assert two["world_size"] == 2 and one["world_size"] == 1 and two["status"] == "finished"
    _close(two["metrics"], one["metrics"], rel=1e-5)
    store = RunStore(tmp_path / "two")
    runs = store.list_runs()
    assert [r.id for r in runs] == [two["run_id"]] and runs[0].status == "finished"
    assert runs[0].data_summary["distributed"] == {"world_size": 2, "backend": "gloo"}
    assert store.has_artifact(two["run_id"], "model.pt") and store.has_artifact(two["run_id"], "predictions.parquet")
    assert not (tmp_path / "default-store").exists()      # rank 1 opened no store of its own


@pytest.mark.parametrize("how,status,epochs", [("stop", "finished", 2), ("cancel", "cancelled", 1)])
def test_a_stop_or_cancel_on_one_process_ends_both_on_the_same_step(tmp_path, how, status, epochs):
    """Rank 1 alone asks to stop (or is cancelled) in epoch 2: both processes end together (no hang),
    with the same status, epochs, metrics and weights (a cancel restores epoch 1's on both)."""
    r = _launch([ROOT / "tests" / "training" / "ddp_worker.py", how, tmp_path], tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{i}.json").read_text()) for i in range(2)]
    for rank in ranks:
        assert (rank["status"], rank["epochs"]) == (status, epochs), rank["message"]
    assert ranks[0]["weights"] == ranks[1]["weights"]
    assert ranks[0]["metrics"] == ranks[1]["metrics"]


def test_a_streamed_table_trains_on_two_processes_each_reading_its_own_blocks(tmp_path):
    """--stream under torchrun: the cache's blocks are dealt out (3 blocks: rank 0 reads two, rank 1 one, and
    rank 1 runs out of rows first), one run is stored, and its validation metrics cover every validation
    row: the stored model, scored alone over the whole cache, gives the same numbers."""
    import torch
    from frames import make_tiny_frame

    from mmoe.config import DataConfig, TrainConfig
    from mmoe.data.stream_cache import StreamedData
    from mmoe.runs.runner import load_run
    from mmoe.training.step import TrainStep
    from mmoe.training.streamed import _evaluate

    csv = tmp_path / "big.csv"
    make_tiny_frame(140_000).to_csv(csv, index=False)
    two = _train(csv, tmp_path / "two", tmp_path, "--stream", "--epochs", "2", "--batch-size", "512", nproc=2)
    assert two["world_size"] == 2 and two["status"] == "finished"
    assert two["metrics"]["click"]["auc"] > 0.9
    store = RunStore(tmp_path / "two")
    [rec] = store.list_runs()
    assert rec.data_summary["streamed"]["blocks"] == 3 and rec.data_summary["distributed"]["world_size"] == 2
    assert len(list((tmp_path / "two" / "cache").iterdir())) == 1       # rank 0 wrote it, rank 1 waited and read it
    assert not (tmp_path / "default-store").exists()
    model, _ = load_run(store, rec.id)
    data = StreamedData(rec.data_summary["streamed"]["cache"], DataConfig.from_dict(rec.data_config))
    step = TrainStep(model, list(data.tasks), TrainConfig(precision="fp32"), torch.device("cpu"))
    alone = _evaluate(model, data, step, torch.device("cpu"), lambda: False)
    _close(rec.final_metrics, alone, rel=1e-5)
