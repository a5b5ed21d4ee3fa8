"""What the RunStore tests share: a queued run, the CLI training command, waiting for a condition (or a
helper process's death), killing a process, and helper processes that own runs."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from mmoe.runs.store import RunStore

PROC_TIMEOUT = 120   # seconds any one helper process may take (CLI startup alone is a few seconds)


def _new(store: RunStore, name: str | None = None, status: str = "queued", arch: str = "mmoe") -> int:
    return store.create_run(name, dataset="tiny.csv", data_config={"tasks": [{"column": "click"}]},
                            model_config={"arch": arch, "num_experts": 4, "expert_hidden": (8, 4)},
                            train_config={"epochs": 2, "lr": 1e-3}, data_summary={"rows": 200},
                            status=status)


def _train_cmd(csv: Path, home: Path, *, epochs: int, batch_size: int, name: str | None = None) -> list[str]:
    cmd = [sys.executable, "-m", "mmoe", "train", "--data", str(csv), "--task", "click:binary=yes",
           "--task", "score:regression", "--epochs", str(epochs), "--batch-size", str(batch_size),
           "--experts", "2", "--expert-hidden", "8", "--tower-hidden", "4", "--seed", "0",
           "--json", "--quiet", "--store", str(home)]
    return cmd + (["--name", name] if name else [])


def _wait_until(check, what: str, *, proc: subprocess.Popen | None = None, timeout: float = PROC_TIMEOUT):
    """Poll ``check()`` until it returns something truthy (returned); fail at the deadline or when
    ``proc`` ends first."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"process {proc.pid} ended (exit {proc.returncode}) before {what}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=PROC_TIMEOUT)
    if proc.stdin is not None:
        proc.stdin.close()


# A helper process that owns runs through the public API: it creates one run per argument
# (queued | running | finished), writes their ids to a file, then stays alive until killed (or
# until its stdin closes, so it never outlives the test process).
_OWNER = """
import sys
from pathlib import Path
from mmoe.runs.store import RunStore
home, out, wanted = sys.argv[1], Path(sys.argv[2]), sys.argv[3:]
store = RunStore(home)
ids = []
for want in wanted:
    rid = store.create_run(None, dataset="owned.csv", data_config={}, model_config={}, train_config={},
                           status="queued" if want == "queued" else "running")
    if want == "finished":
        store.finish(rid, "finished", final_metrics={}, epochs=1, train_seconds=1.0, samples_per_second=1.0)
    ids.append(rid)
tmp = out.with_suffix(".tmp")
tmp.write_text(" ".join(map(str, ids)) + "\\n")
tmp.replace(out)
sys.stdin.read()
"""


def _owner(home: Path, out: Path, *statuses: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", _OWNER, str(home), str(out), *statuses],
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _owned_ids(out: Path, proc: subprocess.Popen) -> list[int]:
    text = _wait_until(lambda: out.is_file() and out.read_text(), f"run ids from process {proc.pid}", proc=proc)
    return [int(x) for x in text.split()]
