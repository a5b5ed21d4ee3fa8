"""Background jobs: a process-wide FIFO queue, one worker thread per running job.

Generic: a job is any ``fn(ctx: JobContext) -> str | None``; it knows nothing
about training. The function publishes progress through ``ctx.update(...)`` /
``ctx.append_curve(...)`` and polls ``ctx.cancelled``; the UI polls
``job.snapshot()`` (a frozen, deep-copied ``Progress``) and never touches the
worker thread. The worker never calls Streamlit.

    manager = get_manager()                       # process-wide singleton
    job = manager.submit(fn, name="mmoe on census", device="cuda:0")
    job.snapshot().fraction                       # 0.0 .. 1.0
    job.cancel(); job.wait(5)

Concurrency: by default one job at a time per device key ("cpu", "cuda:0", ...);
``JobManager(max_concurrent=2)`` or ``{"cpu": 2, "cuda:0": 1}`` changes that.
Worker threads are daemons named ``mmoe-job-<id>`` and exit when their job ends.

Final status: what ``fn`` returns (finished | cancelled | diverged | failed), or,
when it returns None, "cancelled" if cancellation was requested else "finished".
An exception marks the job "failed": ``error`` is a one-line message, the full
``traceback`` is kept for logs. Raising ``JobCancelled`` (see
``ctx.raise_if_cancelled()``) ends the job as "cancelled".

Process exit: when the process ends normally -- the dashboard's Streamlit server stops on SIGTERM
(``docker stop``) or Ctrl-C and its interpreter exits -- the process-wide manager cancels its jobs
and waits up to ``EXIT_GRACE_SECONDS`` for them, so their runs end ``cancelled`` with their weights
saved instead of being cut off (worker threads are daemons: the interpreter would not wait).
"""
from __future__ import annotations

import atexit
import collections
import copy
import dataclasses
import itertools
import sys
import threading
import time
import traceback as tb
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from mmoe.runs.status import TERMINAL, RunStatus

# a job ends as its run does (a job never becomes "interrupted": its process is the one alive)
FINAL_STATUSES = tuple(s for s in TERMINAL if s != RunStatus.INTERRUPTED)
# Fields a job function may publish with ctx.update(**fields).
UPDATABLE = ("run_id", "epoch", "epochs", "batch", "batches", "samples_seen", "samples_per_second",
             "eta_seconds", "last_metrics", "message", "extra")


class JobCancelled(Exception):
    """Raised inside a job function to stop it; the job ends as "cancelled"."""


def _device_key(device: str) -> str:
    d = str(device or "cpu").strip().lower()
    return "cuda:0" if d == "cuda" else d


def _one_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    msg = lines[0] if lines else ""
    if not msg or isinstance(exc, (KeyError, AttributeError, IndexError, AssertionError)):
        return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__
    return msg


@dataclass(frozen=True)
class Progress:
    """A snapshot of one job. Safe to keep and mutate: it shares nothing with the job.

    epoch: epochs completed so far; batch: batches done in the current epoch.
    Times are ``time.time()`` seconds. eta_seconds / samples_per_second are
    estimated from elapsed time when the job does not publish them.
    """

    job_id: int
    name: str
    status: str
    run_id: int | None
    epoch: int
    epochs: int | None
    batch: int
    batches: int | None
    samples_seen: int
    samples_per_second: float | None
    eta_seconds: float | None
    curves: dict[str, dict[str, list[float]]]
    last_metrics: dict
    message: str
    error: str | None
    submitted_at: float
    started_at: float | None
    finished_at: float | None
    device: str
    traceback: str | None = None
    cancel_requested: bool = False
    extra: dict = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def fraction(self) -> float:
        """Fraction of the work done, in [0, 1] (1 once the job finished)."""
        if self.status == "finished":
            return 1.0
        if not self.epochs:
            return 0.0
        part = (self.batch / self.batches) if self.batches else 0.0
        return float(min(1.0, max(0.0, (self.epoch + min(part, 1.0)) / self.epochs)))

    @property
    def elapsed_seconds(self) -> float:
        if self.started_at is None:
            return 0.0
        end = self.finished_at if self.finished_at is not None else time.time()
        return max(0.0, end - self.started_at)


class JobContext:
    """Handed to the job function: cancellation flag and progress publishing (thread-safe)."""

    def __init__(self, job: "Job"):
        self._job = job
        self.cancel_event = threading.Event()

    @property
    def job_id(self) -> int:
        return self._job.id

    @property
    def device(self) -> str:
        return self._job.device

    @property
    def cancelled(self) -> bool:
        return self.cancel_event.is_set()

    def raise_if_cancelled(self) -> None:
        if self.cancel_event.is_set():
            raise JobCancelled("cancelled")

    def update(self, **fields: Any) -> None:
        """Publish progress: any of run_id, epoch, epochs, batch, batches, samples_seen,
        samples_per_second, eta_seconds, last_metrics, message, extra (merged)."""
        bad = sorted(set(fields) - set(UPDATABLE))
        if bad:
            raise TypeError(f"JobContext.update: unknown field(s) {bad}; use {', '.join(UPDATABLE)}")
        with self._job._lock:
            st = self._job._state
            for k, v in fields.items():
                if k == "extra":
                    st["extra"].update(copy.deepcopy(dict(v or {})))
                elif k == "last_metrics":
                    st[k] = copy.deepcopy(dict(v or {}))
                else:
                    st[k] = v

    def set_run_id(self, run_id: int | None) -> None:
        self.update(run_id=run_id)

    def append_curve(self, split: str, task: str, value: float) -> None:
        """Append one point (e.g. this epoch's loss) to curves[split][task]."""
        with self._job._lock:
            self._job._state["curves"].setdefault(str(split), {}).setdefault(str(task), []).append(float(value))


class Job:
    """A submitted job. Read it through ``snapshot()``; stop it with ``cancel()``."""

    def __init__(self, job_id: int, name: str, device: str, fn: Callable[[JobContext], str | None],
                 manager: "JobManager"):
        self.id = job_id
        self.name = name
        self.device = device
        self._fn = fn
        self._manager = manager
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._state: dict[str, Any] = dict(
            status="queued", run_id=None, epoch=0, epochs=None, batch=0, batches=None, samples_seen=0,
            samples_per_second=None, eta_seconds=None, curves={}, last_metrics={}, message="",
            error=None, traceback=None, submitted_at=time.time(), started_at=None, finished_at=None,
            extra={})
        self.ctx = JobContext(self)

    def __repr__(self) -> str:
        return f"Job(id={self.id}, name={self.name!r}, device={self.device!r}, status={self.status!r})"

    @property
    def status(self) -> str:
        with self._lock:
            return self._state["status"]

    @property
    def done(self) -> bool:
        return self._done.is_set()

    @property
    def cancel_event(self) -> threading.Event:
        return self.ctx.cancel_event

    def snapshot(self) -> Progress:
        with self._lock:
            st = copy.deepcopy(self._state)
        sps, eta = st["samples_per_second"], st["eta_seconds"]
        p = Progress(job_id=self.id, name=self.name, device=self.device,
                     cancel_requested=self.ctx.cancelled, **st)
        if st["status"] == "running" and p.started_at is not None:
            elapsed = p.elapsed_seconds
            if sps is None and p.samples_seen and elapsed > 0:
                sps = p.samples_seen / elapsed
            f = p.fraction
            if eta is None and 0 < f < 1 and elapsed > 0:
                eta = elapsed * (1 - f) / f
            if (sps, eta) != (p.samples_per_second, p.eta_seconds):
                p = dataclasses.replace(p, samples_per_second=sps, eta_seconds=eta)
        return p

    def cancel(self) -> None:
        """Ask the job to stop: a queued job is dropped at once, a running one is signalled."""
        self._manager.cancel(self.id)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job ended (True) or the timeout passed (False)."""
        return self._done.wait(timeout)

    # -- run in the worker thread -----------------------------------------------------

    def _finish(self, status: str, error: str | None = None, trace: str | None = None) -> None:
        with self._lock:
            self._state.update(status=status, finished_at=time.time())
            if error is not None:
                self._state["error"] = error
                self._state["traceback"] = trace
            if status == "finished":
                self._state["eta_seconds"] = 0.0

    def _run(self) -> None:
        with self._lock:
            self._state.update(status="running", started_at=time.time())
        status, error, trace = "failed", None, None
        try:
            result = self._fn(self.ctx)
            if result is None:
                status = "cancelled" if self.ctx.cancelled else "finished"
            elif result in FINAL_STATUSES:
                status = result
            else:
                status, error = "failed", f"job function returned unknown status {result!r}"
        except JobCancelled:
            status = "cancelled"
        except BaseException as e:  # noqa: BLE001 - a job must never kill its thread silently
            status, error, trace = "failed", _one_line(e), tb.format_exc()
        finally:
            self._finish(status, error, trace)
            self._manager._job_ended(self)
            self._done.set()


class JobManager:
    """FIFO job queue with a concurrency limit per device key. Thread-safe."""

    def __init__(self, max_concurrent: Mapping[str, int] | int = 1):
        if isinstance(max_concurrent, Mapping):
            self._limits = {_device_key(k): int(v) for k, v in max_concurrent.items()}
            self._default_limit = int(self._limits.pop("*", 1))
        else:
            self._limits, self._default_limit = {}, int(max_concurrent)
        if self._default_limit < 1 or any(v < 1 for v in self._limits.values()):
            raise ValueError("max_concurrent: every limit must be at least 1")
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._jobs: dict[int, Job] = {}
        self._queue: collections.deque[Job] = collections.deque()
        self._running: dict[str, int] = collections.defaultdict(int)
        self._closed = False

    def limit(self, device: str) -> int:
        return self._limits.get(_device_key(device), self._default_limit)

    @property
    def is_shutdown(self) -> bool:
        return self._closed

    def submit(self, fn: Callable[[JobContext], str | None], *, name: str, device: str = "cpu") -> Job:
        """Queue ``fn`` to run in a worker thread; returns its Job at once."""
        with self._lock:
            if self._closed:
                raise RuntimeError("JobManager was shut down; use get_manager() for a live one")
            job = Job(next(self._ids), str(name), _device_key(device), fn, self)
            self._jobs[job.id] = job
            self._queue.append(job)
            self._dispatch_locked()
        return job

    def _dispatch_locked(self) -> None:
        """Start queued jobs, oldest first, while their device has a free slot."""
        for job in list(self._queue):
            if self._running[job.device] < self.limit(job.device):
                self._queue.remove(job)
                self._running[job.device] += 1
                job._thread = threading.Thread(target=job._run, name=f"mmoe-job-{job.id}", daemon=True)
                job._thread.start()

    def _job_ended(self, job: Job) -> None:
        with self._lock:
            self._running[job.device] -= 1
            self._dispatch_locked()  # also after shutdown(cancel=False): drain the queue

    def jobs(self) -> list[Job]:
        """All jobs this manager knows, newest first."""
        with self._lock:
            return sorted(self._jobs.values(), key=lambda j: j.id, reverse=True)

    def get(self, job_id: int | str) -> Job | None:
        """The job with this id, or None (e.g. an id from before a restart)."""
        try:
            key = int(job_id)
        except (TypeError, ValueError):
            return None
        with self._lock:
            return self._jobs.get(key)

    def cancel(self, job_id: int | str) -> bool:
        """Cancel a job: a queued one is removed and marked cancelled without running;
        a running one gets its cancel_event set. Returns False if unknown or already done."""
        job = self.get(job_id)
        if job is None or job.done:
            return False
        job.ctx.cancel_event.set()
        with self._lock:
            queued = job in self._queue
            if queued:
                self._queue.remove(job)
        if queued:
            job._finish("cancelled")
            job._done.set()
        return True

    def forget(self, job_id: int | str) -> bool:
        """Drop a finished job from the registry (running/queued jobs are kept)."""
        job = self.get(job_id)
        if job is None or not job.done:
            return False
        with self._lock:
            self._jobs.pop(job.id, None)
        return True

    def shutdown(self, wait: bool = True, cancel: bool = True, timeout: float | None = 30.0) -> None:
        """Stop accepting jobs. cancel: cancel queued and running jobs (else the queue drains).
        wait: block until every job ended and its thread exited (at most ``timeout`` s)."""
        with self._lock:
            self._closed = True
            jobs = list(self._jobs.values())
        if cancel:
            for job in jobs:
                self.cancel(job.id)
        if wait:
            deadline = None if timeout is None else time.monotonic() + timeout

            def left() -> float | None:
                return None if deadline is None else max(0.0, deadline - time.monotonic())

            for job in jobs:
                job._done.wait(left())
                t = job._thread
                if t is not None and t is not threading.current_thread():
                    t.join(left())


_manager: JobManager | None = None
_manager_lock = threading.Lock()
EXIT_GRACE_SECONDS = 8.0    # docker stop sends SIGKILL 10 s after SIGTERM


def _cancel_jobs_at_exit() -> None:
    """Cancel the process-wide manager's jobs and wait for them (their runs end cancelled, weights saved)."""
    m = _manager
    if m is None or m.is_shutdown:
        return
    active = [j for j in m.jobs() if not j.done]
    if active:
        print(f"mmoe: cancelling {len(active)} background job(s) before exiting", file=sys.stderr, flush=True)
    m.shutdown(wait=True, cancel=True, timeout=EXIT_GRACE_SECONDS)


atexit.register(_cancel_jobs_at_exit)


def get_manager() -> JobManager:
    """The process-wide JobManager (created on first use; a new one after shutdown())."""
    global _manager
    with _manager_lock:
        if _manager is None or _manager.is_shutdown:
            _manager = JobManager()
        return _manager
