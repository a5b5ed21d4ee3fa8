"""Background jobs: FIFO queue, concurrency per device, cancellation, failures, snapshots."""
from __future__ import annotations

import threading
import time

import pytest

from mmoe.runs.jobs import JobContext, JobManager, Progress, get_manager


@pytest.fixture
def make_manager():
    """Job managers owned by the test: every one made is shut down (jobs cancelled, threads joined)
    when the test ends, whether it passed or not."""
    made: list[JobManager] = []

    def make(max_concurrent=1) -> JobManager:
        m = JobManager(max_concurrent)
        made.append(m)
        return m

    yield make
    for m in made:
        m.shutdown(wait=True, cancel=True, timeout=30)


@pytest.fixture
def manager(make_manager):
    return make_manager()


def _idle(manager: JobManager) -> None:
    """Block until every job submitted so far to this one-slot manager has ended: a sentinel
    submitted now runs after all of them (FIFO, one at a time)."""
    sentinel = manager.submit(lambda ctx: None, name="sentinel")
    assert sentinel.wait(10) and sentinel.snapshot().status == "finished"


def _gate_job(log: list, gate: threading.Event, tag: str):
    def fn(ctx: JobContext):
        log.append(("start", tag))
        gate.wait(5)
        log.append(("end", tag))
    return fn


def _meet(barrier: threading.Barrier) -> None:
    barrier.wait()


def test_fifo_one_at_a_time(manager):
    log: list = []
    gates = [threading.Event() for _ in range(3)]
    jobs = [manager.submit(_gate_job(log, g, str(i)), name=f"j{i}") for i, g in enumerate(gates)]
    assert [j.snapshot().status for j in jobs][1:] == ["queued", "queued"]
    for g, j in zip(gates, jobs):
        g.set()
        assert j.wait(5)
    assert log == [("start", "0"), ("end", "0"), ("start", "1"), ("end", "1"), ("start", "2"), ("end", "2")]
    assert [j.snapshot().status for j in jobs] == ["finished"] * 3
    assert [j.id for j in manager.jobs()] == [j.id for j in reversed(jobs)]
    assert manager.get(jobs[0].id) is jobs[0] and manager.get(str(jobs[0].id)) is jobs[0]
    assert manager.get(12345) is None


def test_concurrency_two_and_per_device(make_manager):
    m = make_manager(max_concurrent=2)
    both = threading.Barrier(2, timeout=5)
    a = m.submit(lambda ctx: _meet(both), name="a")
    b = m.submit(lambda ctx: _meet(both), name="b")
    assert a.wait(10) and b.wait(10)  # would deadlock (BrokenBarrier -> failed) if serial
    assert a.snapshot().status == b.snapshot().status == "finished"

    m = make_manager()  # one per device key, but devices are independent
    both = threading.Barrier(2, timeout=5)
    a = m.submit(lambda ctx: _meet(both), name="cpu", device="cpu")
    b = m.submit(lambda ctx: _meet(both), name="gpu", device="cuda")
    assert a.wait(10) and b.wait(10)
    assert (a.snapshot().status, b.snapshot().status) == ("finished", "finished")
    assert b.device == "cuda:0"


def test_cancel_running_job(manager):
    started = threading.Event()

    def fn(ctx: JobContext):
        started.set()
        while not ctx.cancelled:
            time.sleep(0.01)

    job = manager.submit(fn, name="loop")
    assert started.wait(5)
    assert job.snapshot().status == "running" and not job.snapshot().cancel_requested
    job.cancel()
    assert job.wait(10), "a running job that polls ctx.cancelled must end once cancelled"
    p = job.snapshot()
    assert p.status == "cancelled" and p.cancel_requested and p.finished_at is not None
    assert p.error is None


def test_cancel_queued_never_runs(manager):
    gate = threading.Event()
    ran: list = []
    first = manager.submit(_gate_job([], gate, "0"), name="first")
    second = manager.submit(lambda ctx: ran.append(1), name="second")
    assert manager.cancel(second.id)
    assert second.done and second.snapshot().status == "cancelled"
    gate.set()
    assert first.wait(5)
    _idle(manager)   # had the cancelled job been started, it would have ended before the sentinel
    assert ran == [] and second.snapshot().started_at is None
    assert not manager.cancel(second.id)  # already done


def test_failure_and_returned_status(manager):
    def boom(ctx):
        ctx.update(message="about to fail")
        raise ValueError("column 'x' is empty\nsecond line")

    job = manager.submit(boom, name="boom")
    assert job.wait(5)
    p = job.snapshot()
    assert p.status == "failed" and p.error == "column 'x' is empty"
    assert "Traceback" in p.traceback and "ValueError" in p.traceback
    div = manager.submit(lambda ctx: "diverged", name="div")
    bad = manager.submit(lambda ctx: "weird", name="bad")
    assert div.wait(5) and bad.wait(5)
    assert div.snapshot().status == "diverged"
    assert bad.snapshot().status == "failed" and "weird" in bad.snapshot().error


def test_progress_and_snapshot_is_copy(manager):
    release = threading.Event()
    published = threading.Event()

    def fn(ctx: JobContext):
        ctx.set_run_id(7)
        ctx.update(epoch=1, epochs=4, batch=5, batches=10, samples_seen=1500,
                   last_metrics={"val": {"click": {"auc": 0.8}}}, message="epoch 2")
        ctx.append_curve("train", "click", 0.5)
        ctx.append_curve("val", "click", 0.6)
        with pytest.raises(TypeError, match="unknown field"):
            ctx.update(status="finished")
        published.set()
        release.wait(5)

    job = manager.submit(fn, name="progress")
    assert published.wait(5)
    p = job.snapshot()
    assert isinstance(p, Progress) and p.status == "running" and p.run_id == 7
    assert p.fraction == pytest.approx(1.5 / 4)
    assert p.eta_seconds is not None and p.samples_per_second is not None
    assert p.curves == {"train": {"click": [0.5]}, "val": {"click": [0.6]}}
    p.curves["train"]["click"].append(99.0)
    p.last_metrics["val"]["click"]["auc"] = 0.0
    with pytest.raises(Exception):
        p.status = "hacked"  # frozen
    q = job.snapshot()
    assert q.curves["train"]["click"] == [0.5] and q.last_metrics["val"]["click"]["auc"] == 0.8
    release.set()
    assert job.wait(5)
    assert job.snapshot().fraction == 1.0 and job.snapshot().status == "finished"


def test_thread_names_and_no_leak(manager):
    seen: list = []
    job = manager.submit(lambda ctx: seen.append(threading.current_thread()), name="t")
    assert job.wait(5)
    assert seen[0].name == f"mmoe-job-{job.id}" and seen[0].daemon
    seen[0].join(5)
    assert not seen[0].is_alive()


def test_shutdown_cancels_and_refuses(manager):
    gate = threading.Event()
    running = manager.submit(lambda ctx: ctx.cancel_event.wait(5) and None, name="r")
    queued = manager.submit(_gate_job([], gate, "q"), name="q")
    manager.shutdown(wait=True, cancel=True, timeout=5)
    assert running.snapshot().status == "cancelled" and queued.snapshot().status == "cancelled"
    with pytest.raises(RuntimeError, match="shut down"):
        manager.submit(lambda ctx: None, name="late")


def test_get_manager_singleton(process_manager):
    got: list = []
    threads = [threading.Thread(target=lambda: got.append(get_manager()), name=f"test-get-{i}")
               for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(got) == 8 and all(m is process_manager for m in got) and get_manager() is process_manager
    process_manager.shutdown()
    fresh = get_manager()   # shut down by the process_manager fixture at teardown
    assert fresh is not process_manager and not fresh.is_shutdown


def test_shutdown_without_cancel_drains_queue(manager):
    done: list = []
    jobs = [manager.submit(lambda ctx, i=i: done.append(i), name=f"j{i}") for i in range(3)]
    manager.shutdown(wait=True, cancel=False, timeout=10)
    assert done == [0, 1, 2] and all(j.snapshot().status == "finished" for j in jobs)


# A server process like the dashboard's: a background training job in the process-wide manager, and a
# SIGTERM handler that ends the main loop (what Streamlit's own handler does: the server stops and the
# interpreter exits normally). The job's run must end cancelled with its weights, not be cut off.
_SERVER = """
import signal, sys, threading, time
sys.path.insert(0, sys.argv[2])
from frames import make_tiny_frame
from mmoe.config import DataConfig, ModelConfig, TaskSpec, TrainConfig
from mmoe.runs.jobs import get_manager
from mmoe.runs.runner import DataSource, submit_training
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
data = DataSource(make_tiny_frame(3000, seed=1), DataConfig(tasks=(TaskSpec("click", "binary", positive="yes"),)))
submit_training(get_manager(), data, ModelConfig(num_experts=2, expert_hidden=(8,)),
                TrainConfig(epochs=100000, batch_size=8), store_home=sys.argv[1])
while not stop.wait(0.05):
    pass
"""


def test_a_server_stopped_by_sigterm_cancels_its_jobs_and_keeps_their_weights(tmp_path):
    import signal
    import subprocess
    import sys
    from pathlib import Path

    from mmoe.runs.store import RunStore

    home = tmp_path / "store"
    tests_dir = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen([sys.executable, "-c", _SERVER, str(home), str(tests_dir)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no epoch logged in 90 s"
            if home.exists() and (home / "runs.sqlite").exists():
                store = RunStore(home)
                runs = store.list_runs()
                logged = bool(runs) and len(store.history(runs[0].id)) > 0
                store.close()
                if logged:
                    break
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "cancelling 1 background job" in err and "Traceback" not in err
    store = RunStore(home)
    [rec] = store.list_runs()
    assert rec.status == "cancelled" and rec.epochs >= 1
    assert store.has_artifact(rec.id, "model.pt") and store.has_artifact(rec.id, "predictions.parquet")
