"""python -m mmoe in real subprocesses when the store or a run's files are damaged: a damaged, emptied or
read-only index, ``runs --repair``, damaged model files. Each refusal: exit 2, one line on stderr, no
traceback, and nothing on disk changed (every file's hash and every folder compared before and after)."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys

import pytest
from test_cli_process import TIMEOUT, last_json, one_clean_line

from mmoe.config import DataConfig, ModelConfig, TaskSpec, TrainConfig
from mmoe.runs.runner import DataSource, run_training
from mmoe.runs.store import RunStore

TASKS = (TaskSpec("click", "binary", positive="yes"), TaskSpec("score", "regression"))
TRAIN = ("--task", "click:binary=yes", "--task", "score:regression", "--epochs", "1", "--batch-size", "32",
         "--experts", "2", "--expert-hidden", "8", "--quiet")


def snapshot(root) -> dict[str, str]:
    """Every file under ``root`` (relative path -> sha256) and every folder: what 'unchanged' means."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "<dir>"
            for p in sorted(root.rglob("*"))}


@pytest.fixture
def store_home(tmp_path, tiny_frame):
    """A store with two finished runs (trained in this process: faster than two CLI trainings)."""
    home = tmp_path / "store"
    store = RunStore(home)
    for epochs in (2, 1):
        s = run_training(DataSource(tiny_frame, DataConfig(tasks=TASKS)),
                         ModelConfig(num_experts=2, expert_hidden=(8,), tower_hidden=(4,)),
                         TrainConfig(epochs=epochs, batch_size=32), store=store)
        assert s.status == "finished"
    store.close()
    return home


@pytest.fixture
def csv(tmp_path, tiny_frame):
    p = tmp_path / "new.csv"
    tiny_frame.to_csv(p, index=False)
    return p


def _all_at_once(commands: dict[str, list[str]], prefix: list[str] = ()) -> dict[str, subprocess.CompletedProcess]:
    """Run the CLI commands side by side (each a fresh process) and collect them."""
    procs = {k: subprocess.Popen([*prefix, sys.executable, "-m", "mmoe", *map(str, args)], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True) for k, args in commands.items()}
    done = {}
    try:
        for k, proc in procs.items():
            out, err = proc.communicate(timeout=TIMEOUT)
            done[k] = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.communicate(timeout=TIMEOUT)
    return done


def _commands(home, csv, out):
    return {"runs": ["runs", "--store", home], "train": ["train", "--data", csv, *TRAIN, "--store", home],
            "predict": ["predict", "--run", "1", "--data", csv, "--out", out, "--store", home]}


@pytest.mark.parametrize("state", ["damaged", "emptied", "missing"])
def test_a_damaged_or_lost_index_exits_2_with_one_line_and_changes_nothing(store_home, csv, tmp_path, state):
    for suffix in ("", "-wal", "-shm"):
        (store_home / f"runs.sqlite{suffix}").unlink(missing_ok=True)
    if state != "missing":
        (store_home / "runs.sqlite").write_bytes(os.urandom(4096) if state == "damaged" else b"")
    before = snapshot(store_home)
    done = _all_at_once(_commands(store_home, csv, tmp_path / "out.csv"))
    for cmd, p in done.items():
        assert p.returncode == 2, (cmd, p.stdout, p.stderr)
        line = one_clean_line(p.stderr)
        assert line.startswith("error: ") and f"python -m mmoe runs --repair --store {store_home}" in line, line
        assert ("damaged" if state == "damaged" else "2 run folders exist") in line
    assert snapshot(store_home) == before and not (tmp_path / "out.csv").exists()


def test_runs_repair_brings_every_run_back(store_home, csv, tmp_path):
    listed = json.loads(subprocess.run([sys.executable, "-m", "mmoe", "runs", "--json", "--store", store_home],
                                       capture_output=True, text=True, timeout=TIMEOUT, check=True).stdout)
    for suffix in ("", "-wal", "-shm"):
        (store_home / f"runs.sqlite{suffix}").unlink(missing_ok=True)
    (store_home / "runs.sqlite").write_bytes(b"not a database, not at all" * 100)
    p = subprocess.run([sys.executable, "-m", "mmoe", "runs", "--repair", "--store", store_home],
                       capture_output=True, text=True, timeout=TIMEOUT)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    assert "rebuilt the run index" in p.stdout and "2 runs restored from their run.json: 1, 2" in p.stdout
    assert "moved aside to" in p.stdout and list(store_home.glob("runs.sqlite.corrupt-*"))
    after = subprocess.run([sys.executable, "-m", "mmoe", "runs", "--json", "--store", store_home],
                           capture_output=True, text=True, timeout=TIMEOUT)
    assert after.returncode == 0 and json.loads(after.stdout) == listed
    p = subprocess.run([sys.executable, "-m", "mmoe", "predict", "--run", "1", "--data", csv, "--out",
                        tmp_path / "out.csv", "--store", store_home], capture_output=True, text=True, timeout=TIMEOUT)
    assert p.returncode == 0, p.stderr


@pytest.mark.parametrize("name", ["model.pt", "model.json"])
def test_a_damaged_model_file_makes_predict_exit_2_naming_it(store_home, csv, tmp_path, name):
    (store_home / "1" / name).write_bytes(b"\x00garbage" * 40)
    p = subprocess.run([sys.executable, "-m", "mmoe", "predict", "--run", "1", "--data", csv, "--out",
                        tmp_path / "out.csv", "--store", store_home], capture_output=True, text=True, timeout=TIMEOUT)
    assert p.returncode == 2, (p.stdout, p.stderr)
    line = one_clean_line(p.stderr)
    assert name in line and str(store_home / "1") in line and "cannot be read" in line
    assert not (tmp_path / "out.csv").exists()
    runs = subprocess.run([sys.executable, "-m", "mmoe", "runs", "--json", "--store", store_home],
                          capture_output=True, text=True, timeout=TIMEOUT)   # only what needs the file fails
    assert runs.returncode == 0 and len(last_json(runs.stdout)) == 2


def _read_only_prefix(home) -> list[str]:
    """A command prefix under which ``home`` is read-only for real: for root (which chmod does not stop)
    a read-only bind mount in a private mount namespace; for others, nothing (the test chmods)."""
    if os.geteuid() != 0:
        return []
    unshare = shutil.which("unshare")
    probe = subprocess.run([unshare or "unshare", "-m", "sh", "-c", f"mount --bind '{home}' '{home}' && "
                            f"mount -o remount,ro,bind '{home}' '{home}' && ! touch '{home}/.probe'"],
                           capture_output=True, timeout=60) if unshare else None
    if probe is None or probe.returncode != 0:
        pytest.skip("running as root and no read-only mount possible here (unshare -m): root writes read-only "
                    "files anyway")
    script = 'mount --bind "$0" "$0" && mount -o remount,ro,bind "$0" "$0" && exec "$@"'
    return [unshare, "-m", "sh", "-c", script, str(home)]


def test_a_read_only_store_lists_and_scores_but_refuses_training(store_home, csv, tmp_path):
    """A store this process may not write: runs and predict work (a note says it is read-only), train
    exits 2 with one line before reading any data, and nothing in the store changes."""
    prefix = _read_only_prefix(store_home)
    modes = {p: p.stat().st_mode for p in [store_home, *store_home.rglob("*")]}
    if not prefix:
        for p in modes:
            p.chmod(p.stat().st_mode & ~0o222)
    before = snapshot(store_home)
    try:
        done = _all_at_once(_commands(store_home, csv, tmp_path / "out.csv"), prefix)
    finally:
        for p, mode in modes.items():
            p.chmod(mode)
    runs, train, predict = done["runs"], done["train"], done["predict"]
    assert runs.returncode == 0, runs.stderr
    assert "read-only" in one_clean_line(runs.stderr) and len(runs.stdout.strip().splitlines()) >= 3
    assert predict.returncode == 0, predict.stderr
    assert (tmp_path / "out.csv").is_file()
    assert train.returncode == 2, (train.stdout, train.stderr)
    line = one_clean_line(train.stderr)
    assert "is read-only" in line and str(store_home) in line
    assert snapshot(store_home) == before
