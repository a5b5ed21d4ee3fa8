"""Inspect's Downloads tab: the predictions with gate weights as a CSV safe to open, the model as a zip, the
model as ONNX (exported on request: it takes seconds), and the run into MLflow / TensorBoard."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from mmoe import views as A
from mmoe.runs.artifacts import MODEL
from mmoe.runs.extras import MissingExtra
from mmoe.runs.onnx_export import onnx_archive
from mmoe.runs.predictions import rows_text
from mmoe.runs.store import RunRecord, RunStore, StoreError
from mmoe.views.formatting import plain
from mmoe_dashboard.state import no_predictions
from mmoe_dashboard.tracking_panel import tracking_section


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
        onnx_section(s, rec)
    else:
        st.info("No saved model for this run" + (f": it ended as {rec.status}." if not rec.active else " yet."))
    if not rec.active:
        tracking_section(s, [rec.id], key="inspect")


ONNX_KEY = "inspect.onnx"     # session state: ((run id, gates, model version), zip bytes) of the last export


def onnx_section(s: RunStore, rec: RunRecord) -> None:
    """Export on request (seconds: torch.onnx, then a check with onnxruntime), then offer the zip."""
    st.markdown("**ONNX**")
    if rec.model_config.get("arch", rec.arch) == "shared-bottom":   # no gates to export
        gates = False
    else:
        gates = st.checkbox("Gate weights as outputs too", value=True, key="inspect.onnx_gates")
    made_for = (rec.id, gates, s.artifact_version(rec.id, MODEL))
    if st.button("Export the model to ONNX", key="inspect.onnx_export", icon=":material/output:"):
        try:
            with st.spinner("Exporting to ONNX and checking it with onnxruntime…"):
                st.session_state[ONNX_KEY] = (made_for, onnx_archive(s, rec.id, gates=gates))
        except MissingExtra as e:
            st.info(plain(e))
        except StoreError as e:       # the export or its check failed: one line, no traceback
            st.error(plain(e))
    held = st.session_state.get(ONNX_KEY)
    if held and held[0] == made_for:
        st.download_button("Download the ONNX model (model.onnx + model.preprocessor.json, zip)", data=held[1],
                           file_name=f"run{rec.id}-{_slug(rec.name)}-onnx.zip", mime="application/zip",
                           on_click="ignore", icon=":material/download:", key="inspect.dl_onnx")
        st.caption("Inputs `x_num` (float32 [batch, numeric features]) and `x_cat` (int64 [batch, categorical "
                   "codes]), encoded as model.preprocessor.json says; outputs `raw:<task>` (logits, or a "
                   "standardised value for regression)" + (" and `gate:<task>` [batch, experts]" if gates else "")
                   + f"; the batch dimension is dynamic. Compare the backends on any file: `python -m mmoe predict "
                   f"--run {rec.id} --data FILE.csv --out preds.csv --backend onnx`.")


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in name)[:40] or "run"
