"""Export runs to MLflow or TensorBoard from the dashboard (Inspect's Downloads tab: the run shown; Compare:
the selected runs), at the default locations of ``mmoe.runs.tracking``, saying where it wrote.

A missing optional package shows as a note with what to pip install; any other refusal as one error line.
"""
from __future__ import annotations

import streamlit as st

from mmoe.runs.extras import MissingExtra
from mmoe.runs.store import RunStore, StoreError
from mmoe.runs.tracking import default_logdir, default_tracking_uri, export_mlflow, export_tensorboard
from mmoe.views.formatting import plain


def _export(s: RunStore, ids: list[int], to: str) -> None:
    try:
        with st.spinner(f"Exporting {len(ids)} run(s) to {'MLflow' if to == 'mlflow' else 'TensorBoard'}…"):
            report = export_mlflow(s, ids) if to == "mlflow" else export_tensorboard(s, ids)
    except MissingExtra as e:
        st.info(plain(e))
        return
    except StoreError as e:      # TrackingError too: the tracker refused, the folder is not writable, ...
        st.error(plain(e))
        return
    st.success("  \n".join(plain(line.strip()) for line in report.lines()))


def tracking_section(s: RunStore, run_ids: list[int], key: str) -> None:
    """Two buttons that export ``run_ids`` (runs still training are refused with a note)."""
    ids = [int(i) for i in run_ids]
    st.markdown("**Export to an experiment tracker**")
    st.caption(plain(f"MLflow: {default_tracking_uri(s)} (view with: pip install mlflow; mlflow ui "
                     f"--backend-store-uri {default_tracking_uri(s)}) · TensorBoard: {default_logdir(s)} (view "
                     f"with: tensorboard --logdir {default_logdir(s)}). Exporting a run again replaces its "
                     "earlier export."))
    c1, c2 = st.columns(2)
    label = f"{len(ids)} runs" if len(ids) != 1 else "the run"
    to_mlflow = c1.button(f"Export {label} to MLflow", key=f"{key}.to_mlflow", disabled=not ids,
                          icon=":material/upload:")
    to_tb = c2.button(f"Export {label} to TensorBoard", key=f"{key}.to_tensorboard", disabled=not ids,
                      icon=":material/upload:")
    if to_mlflow:
        _export(s, ids, "mlflow")
    if to_tb:
        _export(s, ids, "tensorboard")
