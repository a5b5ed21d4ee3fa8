"""MMoE Lab dashboard: `streamlit run dashboard/app.py`.

The entry script only sets up the page and the navigation; each page is a thin script in
app_pages/ and all computing lives in the ``mmoe`` package.

Uncaught errors show only their type in the browser (``client.showErrorDetails = "type"`` in
.streamlit/config.toml and ``mmoe dashboard``; the terminal has the traceback); ``MMOE_DEV=1`` shows
the full details in the browser too, for development.
"""
import os

import streamlit as st

from mmoe_dashboard.state import PAGES, page

if os.environ.get("MMOE_DEV") == "1":
    st.set_option("client.showErrorDetails", "full")
st.set_page_config(page_title="MMoE Lab", page_icon=":material/hub:", layout="wide")

nav = st.navigation([page(name) for name in PAGES])
st.sidebar.caption("MMoE Lab · multi-task mixture-of-experts on your tables")
nav.run()
