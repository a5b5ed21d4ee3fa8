"""Inspect's "Score a file" tab: upload a CSV, score it with the selected stored run, and show the
scored rows, each task's gate heatmap for them, and a download of the scored CSV.

Reading and scoring live in ``mmoe.data`` / ``mmoe.runs.runner``; what a refusal says comes from them
(a missing feature column is named there) and is shown as one error box, never a traceback.
"""
from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import streamlit as st

from mmoe import views as A
from mmoe.data import DataError, read_csv
from mmoe.runs.artifacts import MODEL
from mmoe.runs.predictions import pred_col
from mmoe.runs.runner import predict_frame
from mmoe.runs.store import RunRecord, RunStore, StoreError
from mmoe.views.downloads import people_csv, readable_predictions
from mmoe.views.formatting import chart_text, plain
from mmoe_dashboard.gates_panel import heatmap_of, shared_scale
from mmoe_dashboard.state import NA

PREVIEW_ROWS = 1000


@st.cache_data(max_entries=8, show_spinner=False)
def _scored(home: str, run_id: int, version: float | None, digest: str, name: str,
            _store: RunStore, _data: bytes) -> tuple[pd.DataFrame, bytes]:
    """(the scored rows as a user reads them, predictions columns first; that table as a CSV for people).
    Keyed on (store, run id, model version, file hash, file name); the bytes themselves are not hashed again.
    A refusal raises (DataError / StoreError) and is not cached."""
    df = read_csv(_data, filename=name, min_rows=1)
    scored = readable_predictions(predict_frame(_store, run_id, df))
    first = [c for c in scored.columns if str(c).startswith(("pred:", "prob:"))]
    scored = scored[first + [c for c in scored.columns if c not in first]]
    return scored, people_csv(scored)


def score_tab(store: RunStore, rec: RunRecord) -> None:
    if rec.status != "finished" or not store.has_artifact(rec.id, MODEL):
        st.info("Only a finished run with a saved model can score a file"
                + (f"; this run is {rec.status}." if rec.status != "finished" else "; this run saved none."))
        return
    up = st.file_uploader("CSV to score (the run's feature columns; target columns are optional)",
                          type=["csv", "txt", "tsv", "gz", "bz2", "xz"], key=f"inspect.score_file.{rec.id}")
    if up is None:
        gated = rec.model_config.get("arch", rec.arch) != "shared-bottom"
        st.caption(f"Scores every row with run #{rec.id}'s saved model" + (
            " and shows which experts each task's gate uses for them." if gated else "."))
        return
    data = up.getvalue()
    try:
        scored, csv_bytes = _scored(str(store.home), int(rec.id), store.artifact_version(rec.id, MODEL),
                                    hashlib.sha256(data).hexdigest(), up.name, store, data)
    except (DataError, StoreError) as e:
        st.error(plain(str(e)), icon=":material/error:")
        return
    n = len(scored)
    st.subheader("Scored rows")
    more = f"; the first {PREVIEW_ROWS:,} are shown" if n > PREVIEW_ROWS else ""
    st.caption(f"{n:,} row{'s' if n != 1 else ''} scored{more}.")
    st.dataframe(scored.head(PREVIEW_ROWS), placeholder=NA, key="inspect.score_preview")
    st.download_button("Download the scored rows (CSV)", data=csv_bytes,
                       file_name=f"run{rec.id}-scored-{_stem(up.name)}.csv", mime="text/csv", on_click="ignore",
                       icon=":material/download:", key="inspect.score_dl")
    st.caption("Text that a spreadsheet would run as a formula (starting with = + - @) is written with a "
               "leading ' so it opens as text.")
    _heatmaps(rec, scored)


def _heatmaps(rec: RunRecord, scored: pd.DataFrame) -> None:
    tasks = A.gate_tasks(scored)
    if not tasks:
        st.caption("This run has no gates (Shared-Bottom), so there is no expert routing to show.")
        return
    st.subheader("Gate weights of the scored rows")
    n = len(scored)
    shown = min(n, A.MAX_HEATMAP_ROWS)
    st.caption((f"Each panel shows {shown:,} of {n:,} rows, sampled stratified by dominant expert; "
                if n > shown else f"All {n:,} rows, ") + "sorted by dominant expert, then by its weight.")
    per_row = min(len(tasks), 3)
    zmax = shared_scale([scored], tasks)          # one colour scale for the panels side by side
    for i in range(0, len(tasks), per_row):
        cols = st.columns(per_row)
        for col, task in zip(cols, tasks[i:i + per_row]):
            prd = scored.get(pred_col(task))
            hover = lambda pos, prd=prd: [f"<b>row {int(p)}</b>" + (  # noqa: E731
                "" if prd is None else f"<br>predicted: {_value(prd.iat[p])}") for p in pos]
            fig, _, _ = heatmap_of(rec, scored, task, shown, selectable=False, zmax=zmax, hover_of=hover)
            col.plotly_chart(fig, key=f"inspect.score_heat.{rec.id}.{task}", config={"displayModeBar": False})


def _value(v) -> str:
    return A.format_number(v) if isinstance(v, (float, np.floating)) else chart_text(v)


def _stem(name: str) -> str:
    stem = name.rsplit("/", 1)[-1].split(".", 1)[0]
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in stem)[:40] or "file"
