"""Process-wide objects shared by all pages (cached with st.cache_resource) and small UI helpers.

Pages import from here; nothing here trains or computes: that lives in ``mmoe``.
"""
from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from mmoe.jobs import JobManager, get_manager
from mmoe.store import RunStore

REPO = Path(__file__).resolve().parents[1]
BUILTIN_DATA = REPO / "data"


@st.cache_resource(show_spinner=False)
def _store(home: str) -> RunStore:
    return RunStore(home)


def store() -> RunStore:
    """The run store in $MMOE_HOME (default ./runs), one per process and home folder."""
    return _store(os.environ.get("MMOE_HOME", "runs"))


@st.cache_resource(show_spinner=False)
def manager() -> JobManager:
    """The process-wide background job queue (runs survive page refreshes and closed tabs)."""
    return get_manager()


# session_state keys shared between pages
DATA_KEY = "mmoe.dataset"          # dict: name, frame, data_config (DataConfig), prepared (PreparedData | None)
INSPECT_RUN_KEY = "mmoe.inspect_run"
COMPARE_RUNS_KEY = "mmoe.compare_runs"
