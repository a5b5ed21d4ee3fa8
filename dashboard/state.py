"""What the pages share: the process-wide run store and job manager (st.cache_resource), the
session-state keys, and the one registry of pages (``page(name)``: the same st.Page for the
navigation, links and switches). Nothing here trains or computes: that lives in ``mmoe``.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pandas as pd
import streamlit as st

from mmoe.runs.artifacts import PREDICTIONS
from mmoe.runs.jobs import JobManager, get_manager
from mmoe.runs.store import RunStore, StoreError
from mmoe.views.formatting import plain

PAGES_DIR = Path(__file__).resolve().parent / "app_pages"
# name -> (title, icon); the first is the default page
PAGES = {
    "data": ("Data", ":material/table_view:"),
    "train": ("Model & training", ":material/model_training:"),
    "inspect": ("Inspect", ":material/search_insights:"),
    "compare": ("Compare", ":material/compare:"),
    "experiments": ("Experiments", ":material/science:"),
    "paper": ("Paper lab", ":material/article:"),
}


def page(name: str) -> st.Page:
    """The st.Page of page ``name`` (one of PAGES); equal objects for navigation, links and switches."""
    title, icon = PAGES[name]
    return st.Page(PAGES_DIR / f"{name}.py", title=title, icon=icon, default=name == next(iter(PAGES)))


@st.cache_resource(show_spinner=False)
def _store(home: str) -> RunStore:
    return RunStore(home)


def store() -> RunStore:
    """The run store in $MMOE_HOME (default ./runs), one per process and home folder.

    A store that cannot be opened (a damaged index, a lost one beside run folders, a folder that cannot
    be read) stops the page with the store's own message in place of a traceback, on every page; an
    index replaced since it was opened (``runs --repair``) is opened again."""
    home = os.environ.get("MMOE_HOME", "runs")
    try:
        s = _store(home)
        if s.index_replaced():
            s.close()
            _store.clear()
            s = _store(home)
    except StoreError as e:
        st.error("The run store cannot be opened; nothing in it was changed.", icon=":material/error:")
        st.code(str(e), language=None, wrap_lines=True)   # as it is: paths and the command to copy
        st.stop()
    return s


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


@st.cache_data(max_entries=12, show_spinner="Loading the run's predictions…")
def _predictions(home: str, run_id: int, version: float) -> pd.DataFrame:
    return store().load_frame(run_id, PREDICTIONS)


def predictions_version(run_id: int) -> float | None:
    """A cache key that changes when the run's predictions are rewritten (None: there are none)."""
    return store().artifact_version(run_id, PREDICTIONS)


def predictions(run_id: int) -> pd.DataFrame | None:
    """A stored run's predictions frame (cached per version), None when it has none. An unreadable
    file raises, so the page can say so."""
    version = predictions_version(run_id)
    return None if version is None else _predictions(str(store().home), int(run_id), version)


# session_state keys shared between pages
ADDRESS = "query-params"         # bind= of a view control: its value lives in the page's address (a refresh keeps it)
BACK_TO = "then"                  # query parameter: the page to return to once the Data page has the dataset ready
DATA_KEY = "mmoe.dataset"          # dict: name, frame, data_config (DataConfig), prepared (PreparedData | None)
INSPECT_RUN_KEY = "mmoe.inspect_run"
COMPARE_RUNS_KEY = "mmoe.compare_runs"
EXPERIMENT_KEY = "mmoe.experiment"

# what every table shows in a cell with no value (st.dataframe's own default is the word "None")
NA = "—"



def open_in_inspect(run_id: int) -> None:
    """Go to the Inspect page showing run ``run_id`` (Inspect reads ?run= first, then session_state)."""
    st.session_state[INSPECT_RUN_KEY] = int(run_id)
    st.switch_page(page("inspect"), query_params={"run": str(int(run_id))})


def open_experiment(exp_id: int) -> None:
    """Go to the Experiments page showing experiment ``exp_id`` (?experiment= works too)."""
    st.session_state[EXPERIMENT_KEY] = int(exp_id)
    st.switch_page(page("experiments"), query_params={"experiment": str(int(exp_id))})


def no_predictions(rec) -> None:
    """Why a run has no predictions frame (still running, or ended before saving one)."""
    if rec.active:
        st.info("Predictions are stored when the run ends.")
    else:
        why = f" ({plain(rec.error)})" if rec.error else ""
        st.info(f"This run has no stored predictions: it ended as **{rec.status}** before saving them{why}.")


def text_column(label: str, values, widest: int = 420, **kw):
    """A table column wide enough for its longest value (up to ``widest`` pixels): a table cell does not wrap,
    so a narrow column cut names such as "data.tasks[defaulted].kind" to "data.tasks[de…"."""
    longest = max([len(str(v)) for v in values] + [8])
    return st.column_config.TextColumn(label, width=min(widest, 24 + 8 * longest), **kw)



def run_ids(v) -> list[int]:
    """The ints in ``v`` (a widget's or the address's list of run ids; anything else is skipped)."""
    out = []
    for x in v or []:
        try:
            out.append(int(x))
        except (TypeError, ValueError):
            pass
    return out


def digest(parts) -> str:
    return hashlib.sha1("\x1f".join(map(str, parts)).encode()).hexdigest()[:10]


def labelled_key(base: str, labels: list[str]) -> str:
    """A widget key that changes whenever the option labels change (a rename), so the browser
    never keeps showing old labels; state under older keys of the same widget is dropped, and
    the current key is remembered in ``<base>_key``."""
    key = f"{base}.{digest(labels)}"
    for k in [k for k in st.session_state if isinstance(k, str) and k.startswith(base + ".") and k != key]:
        del st.session_state[k]
    st.session_state[f"{base}_key"] = key
    return key
