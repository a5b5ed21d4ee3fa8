"""python -m mmoe in real subprocesses, as a shell script or a scheduler runs it: every exit status
(0 finished, 2 bad input, 3 diverged, 3 failed, 130 Ctrl-C), standard JSON on stdout, no tracebacks,
what the store records in each case, and one seed giving one result across fresh processes.

Every subprocess has a timeout; waiting for a training to reach a point polls the store with a deadline.
MMOE_THREADS=1 (set by conftest) is inherited, and so is MMOE_HOME (the ``mmoe_home`` fixture).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
from frames import make_tiny_frame

from mmoe.runs.store import RunStore

TIMEOUT = 120      # seconds for one CLI process (each takes a few on this machine)
TASKS = ("--task", "click:binary=yes", "--task", "score:regression", "--task", "kind:multiclass")
SMALL = ("--epochs", 3, "--batch-size", 32, "--expert-hidden", 8, "--experts", 3)

# The disk fills up when the model is written: a fault at the library boundary (torch.save), with the
# real CLI entry point around it; nothing inside mmoe is patched.
DISK_FULL = """
import sys, torch, mmoe.cli
def disk_full(*args, **kwargs):
    raise OSError(28, "No space left on device")
torch.save = disk_full
sys.exit(mmoe.cli.main(sys.argv[1:]))
"""


def strict_json(line: str):
    """Parse one line as standard JSON: a bare NaN or Infinity (not JSON) fails the test."""
    return json.loads(line, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))


def cli(*args, code: str | None = None, cwd=None) -> subprocess.CompletedProcess:
    """``python -m mmoe ARGS`` (or ``python -c CODE ARGS``) in a fresh process, with a timeout."""
    head = [sys.executable, "-c", code] if code else [sys.executable, "-m", "mmoe"]
    return subprocess.run([*head, *map(str, args)], check=False, capture_output=True, text=True,
                          timeout=TIMEOUT, cwd=cwd)


def last_json(stdout: str, stderr: str = ""):
    """The JSON value on the last stdout line (``--json``)."""
    lines = stdout.strip().splitlines()
    assert lines, f"nothing on stdout; stderr: {stderr}"
    return strict_json(lines[-1])


def one_clean_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.fixture
def tiny_csv(tmp_path, tiny_frame):
    p = tmp_path / "tiny.csv"
    tiny_frame.to_csv(p, index=False)
    return p


def test_finished_run_exits_0_and_every_json_is_standard(tmp_path, tiny_csv, mmoe_home):
    """A finished run: exit 0, nothing on stderr; train, runs and predict --json each end stdout with one
    standard JSON value; predict --json is the documented {run_id, rows, out, status}."""
    p = cli("train", "--data", tiny_csv, *TASKS, *SMALL, "--seed", 0, "--json", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr and "error" not in p.stderr.lower()
    summary = last_json(p.stdout, p.stderr)
    assert summary["status"] == "finished" and summary["epochs"] == 3
    assert set(summary["metrics"]) == {"click", "score", "kind"}
    rec = RunStore(mmoe_home).get_run(summary["run_id"])
    assert rec.status == "finished" and rec.epochs == 3 and rec.final_metrics == summary["metrics"]

    p = cli("runs", "--json", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    listed = last_json(p.stdout, p.stderr)
    assert [(r["run_id"], r["status"]) for r in listed] == [(summary["run_id"], "finished")]

    out = tmp_path / "scored.csv"
    p = cli("predict", "--run", summary["run_id"], "--data", tiny_csv, "--out", out, "--json", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert last_json(p.stdout, p.stderr) == {"run_id": summary["run_id"], "rows": 200, "out": str(out),
                                             "status": "finished"}
    assert len(pd.read_csv(out)) == 200


def test_bad_input_exits_2_with_one_line(tmp_path, tiny_csv, mmoe_home):
    """Bad input: exit 2, one line on stderr that names the problem, no traceback, no run created.
    (Both cases run side by side, each in a fresh process; test_cli.py holds the full list of bad inputs.)"""
    cases = {"nope": ("--data", tiny_csv, "--task", "nope"),                         # refused by the data checks
             "--epochs": ("--data", tiny_csv, "--task", "click", "--epochs", "many")}   # by the argument parser
    procs = {phrase: subprocess.Popen([sys.executable, "-m", "mmoe", "train", "--quiet", *map(str, args)],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
             for phrase, args in cases.items()}
    try:
        for phrase, proc in procs.items():
            out, err = proc.communicate(timeout=TIMEOUT)
            assert proc.returncode == 2, (phrase, out, err)
            assert phrase in one_clean_line(err)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.communicate(timeout=TIMEOUT)
    assert not RunStore(mmoe_home).list_runs()


def test_diverged_run_exits_3(tmp_path, tiny_csv, mmoe_home):
    """A learning rate that blows the loss up: exit 3, status diverged in JSON and store, with advice."""
    p = cli("train", "--data", tiny_csv, "--task", "score:regression", "--task", "click", "--epochs", 5,
            "--batch-size", 16, "--lr", 9.9, "--seed", 0, "--json", "--quiet", cwd=tmp_path)
    assert p.returncode == 3, (p.stdout, p.stderr)
    summary = last_json(p.stdout, p.stderr)
    assert summary["status"] == "diverged" and "learning rate" in summary["message"]
    assert "diverged" in one_clean_line(p.stderr)
    rec = RunStore(mmoe_home).get_run(summary["run_id"])
    assert rec.status == "diverged" and "diverged" in rec.error


def test_failed_run_exits_3_and_records_the_error(tmp_path, tiny_csv, mmoe_home):
    """The disk is full when the model is saved: exit 3, status failed (not diverged) in JSON and store,
    the OS error recorded, one line on stderr and no traceback, and no half-written model offered."""
    p = cli("train", "--data", tiny_csv, "--task", "click", *SMALL, "--json", "--quiet", code=DISK_FULL,
            cwd=tmp_path)
    assert p.returncode == 3, (p.stdout, p.stderr)
    summary = last_json(p.stdout, p.stderr)
    assert summary["status"] == "failed" and "No space left on device" in summary["message"]
    line = one_clean_line(p.stderr)
    assert "failed" in line and "No space left on device" in line
    store = RunStore(mmoe_home)
    rec = store.get_run(summary["run_id"])
    assert rec.status == "failed" and "No space left on device" in rec.error
    assert not store.has_artifact(rec.id, "model.pt")


def _wait_for_first_epoch(store: RunStore, proc: subprocess.Popen, deadline_s: float) -> int:
    """Poll the store until the child's run has logged an epoch; the run id."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate(timeout=TIMEOUT)
        runs = store.list_runs()
        if runs and len(store.history(runs[0].id)):
            return runs[0].id
        time.sleep(0.05)
    pytest.fail(f"no epoch logged within {deadline_s} s")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_exits_130_and_keeps_the_model(tmp_path, mmoe_home, sig):
    """Ctrl-C, or SIGTERM (docker stop, kill, a scheduler), during a long training: exit 130, status
    cancelled, and the model of the finished epochs kept."""
    store = RunStore(mmoe_home)      # the store exists before the child opens it
    run_id, out, err, code = _signal_after_first_epoch(
        store, tmp_path, ["train", *TASKS, "--epochs", "1000", "--batch-size", "8", "--expert-hidden", "8",
                          "--seed", "0", "--json", "--quiet"], sig)
    assert code == 130, (out, err)
    assert "Traceback" not in err
    summary = last_json(out, err)
    assert summary["run_id"] == run_id and summary["status"] == "cancelled"
    rec = store.get_run(run_id)
    assert rec.status == "cancelled" and 1 <= rec.epochs < 1000
    assert store.has_artifact(run_id, "model.pt") and store.has_artifact(run_id, "predictions.parquet")


def _signal_after_first_epoch(store: RunStore, tmp_path, command: list[str], sig) -> tuple[int, str, str, int]:
    """Start ``python -m mmoe COMMAND`` on a 3000-row CSV, send ``sig`` once it logged an epoch;
    (run id, stdout, stderr, exit status). The child is always killed at the end."""
    csv = tmp_path / "big.csv"
    make_tiny_frame(3000, seed=1).to_csv(csv, index=False)
    proc = subprocess.Popen([sys.executable, "-m", "mmoe", command[0], "--data", str(csv), *command[1:]],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        run_id = _wait_for_first_epoch(store, proc, deadline_s=90)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=TIMEOUT)
    return run_id, out, err, proc.returncode


def test_one_seed_one_result_across_fresh_processes(tmp_path, tiny_csv):
    """The same CSV, settings and --seed in two fresh processes give identical metrics and history;
    another seed gives different ones."""
    runs = {}
    procs = {}
    for key, seed in (("a", 3), ("b", 3), ("c", 4)):
        home = tmp_path / f"store-{key}"
        procs[key] = (home, subprocess.Popen(
            [sys.executable, "-m", "mmoe", "train", "--data", str(tiny_csv), *map(str, TASKS), *map(str, SMALL),
             "--seed", str(seed), "--json", "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            cwd=tmp_path, env={**os.environ, "MMOE_HOME": str(home)}))
    try:
        for key, (home, proc) in procs.items():
            out, err = proc.communicate(timeout=TIMEOUT)
            if proc.returncode != 0:
                raise RuntimeError(f"run {key} exited {proc.returncode}: {err}")
            summary = json.loads(out.strip().splitlines()[-1])
            runs[key] = (summary["metrics"], RunStore(home).history(summary["run_id"]))
    finally:
        for _, proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.communicate(timeout=TIMEOUT)
    assert runs["a"][0] == runs["b"][0]
    pd.testing.assert_frame_equal(runs["a"][1], runs["b"][1], check_exact=True)
    assert runs["a"][0] != runs["c"][0]


def test_ctrl_c_cancels_an_experiment_and_starts_no_more_runs(tmp_path, mmoe_home):
    """Ctrl-C during an experiment: exit 130, the run in progress cancelled, no later run started, the
    experiment recorded as cancelled, and the JSON still printed."""
    store = RunStore(mmoe_home)
    run_id, out, err, code = _signal_after_first_epoch(
        store, tmp_path, ["experiment", *TASKS, "--epochs", "1000", "--batch-size", "8", "--expert-hidden", "8",
                          "--grid", "arch=mmoe,omoe", "--seeds", "3", "--json", "--quiet"], signal.SIGINT)
    assert code == 130, (out, err)
    assert "Traceback" not in err
    summary = last_json(out, err)
    assert summary["status"] == "cancelled" and summary["runs"] == [run_id]
    [exp] = store.list_experiments()
    assert exp.status == "cancelled" and [r.status for r in store.experiment_runs(exp.id)] == ["cancelled"]


# exit_now: the end of `python -m mmoe` without the interpreter's teardown must still flush what was
# written, run the exit handlers, keep the status, and wait for a thread that is still working.
EXIT_NOW = """
import atexit, sys, threading, time
from mmoe.runs.signals import exit_now
atexit.register(lambda: print("exit handler ran"))
if sys.argv[1] == "thread":
    threading.Thread(target=lambda: (time.sleep(0.3), print("thread finished", flush=True))).start()
print("x" * 200000, end="")             # more than a pipe holds: still buffered when exit_now is called
sys.stderr.write("to stderr")
exit_now(int(sys.argv[2]))
"""


@pytest.mark.parametrize("mode,code", [("plain", 0), ("plain", 3), ("thread", 2)])
def test_exit_now_flushes_runs_exit_handlers_and_keeps_the_status(mode, code):
    out = cli(mode, code, code=EXIT_NOW)
    assert out.returncode == code
    assert out.stdout.startswith("x" * 200000) and "exit handler ran" in out.stdout
    assert out.stderr == "to stderr"
    assert ("thread finished" in out.stdout) == (mode == "thread")


def test_python_m_mmoe_exits_with_its_status_and_whole_output(tmp_path):
    """The real entry point: a bad argument gives status 2 and its one line; --json output arrives whole."""
    bad = cli("train", "--data", tmp_path / "nope.csv", "--task", "y:binary", "--store", tmp_path)
    assert bad.returncode == 2 and "nope.csv" in one_clean_line(bad.stderr)
    ok = cli("runs", "--json", "--store", tmp_path)
    assert ok.returncode == 0 and last_json(ok.stdout, ok.stderr) == []
