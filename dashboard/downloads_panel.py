"""Inspect's Downloads tab: the predictions with gate weights as a CSV safe to open, and the model as a zip."""
from __future__ import annotations

import pandas as pd
import streamlit as st
from mmoe_dashboard.state import no_predictions

from mmoe import views as A
from mmoe.runs.artifacts import MODEL
from mmoe.runs.predictions import rows_text
from mmoe.runs.store import RunRecord, RunStore
from mmoe.views.formatting import plain


def downloads_section(s: RunStore, rec: RunRecord, frame: pd.DataFrame | None) -> None:
    if frame is not None:
        st.download_button("Download predictions with gate weights (CSV)", data=lambda: A.predictions_csv(frame),
                           file_name=f"run{rec.id}-{_slug(rec.name)}-predictions.csv", mime="text/csv",
                           on_click="ignore", icon=":material/download:", key="inspect.dl_preds")
        st.caption(f"{len(frame):,} rows ({rows_text(frame)}) · columns: `_split`, raw features, "
                   "`target:<task>`, `pred:<task>`, `prob:<task>:<class>`, `gate:<task>:e<i>`. Text that a spreadsheet would run as a formula "
                   "(starting with = + - @) is written with a leading ' so it opens as text.")
    else:
        no_predictions(rec)
    if s.has_artifact(rec.id, MODEL):
        st.download_button("Download the model (model.pt + model.json + preprocessor.json, zip)",
                           data=lambda: A.model_archive(s, rec.id) or b"", file_name=f"run{rec.id}-{_slug(rec.name)}-model.zip",
                           mime="application/zip", on_click="ignore", icon=":material/download:", key="inspect.dl_model")
        st.caption(f"Score new data with it: `python -m mmoe predict --run {rec.id} --data FILE.csv --out preds.csv`.")
        for problem in A.model_archive_problems(s, rec.id):
            st.warning(plain(problem))
    else:
        st.info("No saved model for this run" + (f": it ended as {rec.status}." if not rec.active else " yet."))


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in name)[:40] or "run"
