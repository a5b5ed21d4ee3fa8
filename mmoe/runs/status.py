"""The run status: one enum, the active/terminal groups and the allowed transitions.

    queued -> running -> finished | cancelled | diverged | failed
    queued -> cancelled | failed            (never started)
    queued | running -> interrupted         (owning process died)
"""
from __future__ import annotations

from enum import Enum


class RunStatus(str, Enum):
    """A run's status; a ``str`` so it compares equal to the stored text (``"finished"``)."""

    QUEUED = "queued"
    RUNNING = "running"
    FINISHED = "finished"
    CANCELLED = "cancelled"
    DIVERGED = "diverged"
    FAILED = "failed"
    INTERRUPTED = "interrupted"

    def __str__(self) -> str:
        return self.value

    @property
    def active(self) -> bool:
        return self in ACTIVE


STATUSES: tuple[str, ...] = tuple(s.value for s in RunStatus)
ACTIVE: tuple[str, ...] = (RunStatus.QUEUED.value, RunStatus.RUNNING.value)
TERMINAL: tuple[str, ...] = tuple(s for s in STATUSES if s not in ACTIVE)
ENDED_BADLY: tuple[str, ...] = (RunStatus.DIVERGED.value, RunStatus.FAILED.value)   # exit status 3
TRANSITIONS: dict[str, tuple[str, ...]] = {
    RunStatus.QUEUED.value: ("running", "cancelled", "failed", "interrupted"),
    RunStatus.RUNNING.value: ("finished", "cancelled", "diverged", "failed", "interrupted"),
}
