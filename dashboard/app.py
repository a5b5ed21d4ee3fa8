"""MMoE Lab dashboard: `streamlit run dashboard/app.py`.

The entry script only sets up the page and the navigation; each page is a thin script in
app_pages/ and all computing lives in the ``mmoe`` package.
"""
from pathlib import Path

import streamlit as st

HERE = Path(__file__).resolve().parent

st.set_page_config(page_title="MMoE Lab", page_icon=":material/hub:", layout="wide")

pages = [
    st.Page(HERE / "app_pages" / "data.py", title="Data", icon=":material/table_view:", default=True),
    st.Page(HERE / "app_pages" / "train.py", title="Model & training", icon=":material/model_training:"),
    st.Page(HERE / "app_pages" / "inspect.py", title="Inspect", icon=":material/search_insights:"),
    st.Page(HERE / "app_pages" / "compare.py", title="Compare", icon=":material/compare:"),
]
nav = st.navigation(pages)
st.sidebar.caption("MMoE Lab · multi-task mixture-of-experts on your tables")
nav.run()
