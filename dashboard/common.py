"""Process-wide objects shared by all pages (cached with st.cache_resource) and small UI helpers.

Pages import from here; nothing here trains or computes: that lives in ``mmoe``.
"""
from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from mmoe.runs.jobs import JobManager, get_manager
from mmoe.runs.store import RunStore

REPO = Path(__file__).resolve().parents[1]
BUILTIN_DATA = REPO / "data"


@st.cache_resource(show_spinner=False)
def _store(home: str) -> RunStore:
    return RunStore(home)


def store() -> RunStore:
    """The run store in $MMOE_HOME (default ./runs), one per process and home folder."""
    return _store(os.environ.get("MMOE_HOME", "runs"))


@st.cache_resource(show_spinner=False)
def _manager() -> JobManager:
    return get_manager()


def manager() -> JobManager:
    """The process-wide background job queue (runs survive page refreshes and closed tabs).

    A manager that was shut down (tests do that) is replaced by a fresh one."""
    m = _manager()
    if m.is_shutdown:
        _manager.clear()
        m = _manager()
    return m


# session_state keys shared between pages
DATA_KEY = "mmoe.dataset"          # dict: name, frame, data_config (DataConfig), prepared (PreparedData | None)
INSPECT_RUN_KEY = "mmoe.inspect_run"
COMPARE_RUNS_KEY = "mmoe.compare_runs"

# what every table shows in a cell with no value (st.dataframe's own default is the word "None")
NA = "—"

DATA_PAGE = "app_pages/data.py"
TRAIN_PAGE = "app_pages/train.py"
INSPECT_PAGE = "app_pages/inspect.py"
COMPARE_PAGE = "app_pages/compare.py"


def open_in_inspect(run_id: int) -> None:
    """Go to the Inspect page showing run ``run_id`` (Inspect reads ?run= first, then session_state)."""
    st.session_state[INSPECT_RUN_KEY] = int(run_id)
    st.switch_page(INSPECT_PAGE, query_params={"run": str(int(run_id))})
