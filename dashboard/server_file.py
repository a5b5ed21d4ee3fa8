"""The Data page's "File on the server" source: a table too big to upload, read where the dashboard runs.

A CSV up to STREAM_ABOVE_BYTES is read whole, like an upload (but not copied into the store). A larger
CSV, a Parquet file or a folder of Parquet files is *streamed*: the page shows its first rows (the
column kinds, targets and features are chosen and checked on them), and the training job reads the
whole file block by block (``python -m mmoe train --stream``; see ``mmoe.data.streaming``).
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from mmoe.data import DataError, read_csv
from mmoe.data.streaming import HEAD_ROWS, StreamSource, _head_bytes
from mmoe.views.formatting import plain

STREAM_ABOVE_BYTES = 200_000_000
KEY_PREFIX = "path:"
SERVER_FILE = "File on the server"


def file_bytes(path: Path) -> int:
    if path.is_dir():
        return sum(f.stat().st_size for f in path.rglob("*.parquet"))
    return path.stat().st_size


def _is_parquet(path: Path) -> bool:
    if path.is_dir():
        return True
    with open(path, "rb") as f:
        return f.read(4) == b"PAR1"


def _rows(p: Path, src: StreamSource) -> tuple[int | None, bool]:
    """(the table's rows, exact?): Parquet's metadata; a plain CSV's size over its head's bytes per row."""
    if src.parquet:
        import pyarrow.dataset as pads

        return int(pads.dataset(p, format="parquet").count_rows()), True
    if src.report.get("compression"):
        return None, False
    head = len(_head_bytes(p, len(src.head)))
    return int(len(src.head) * p.stat().st_size / max(head, 1)), False


@st.cache_data(max_entries=4, show_spinner="Reading the file…")
def load_server_file(path: str, stamp: tuple) -> tuple[pd.DataFrame | None, dict, str | None]:
    """(frame or its first rows, {"streamed", "rows", "rows_exact"}, None) or (None, {}, why not); cached on
    the path and its size and modification time (``stamp``), so a changed file is read again."""
    p = Path(path)
    try:
        if _is_parquet(p) or file_bytes(p) > STREAM_ABOVE_BYTES:
            src = StreamSource.open(p)
            head = src.head.copy()
            head.attrs["read_report"] = {**src.report, "rows": len(head)}
            rows, exact = _rows(p, src)
            return head, {"streamed": True, "rows": rows, "rows_exact": exact}, None
        df = read_csv(p)
        return df, {"streamed": False, "rows": len(df), "rows_exact": True}, None
    except DataError as e:
        return None, {}, str(e)
    except OSError as e:
        return None, {}, f"cannot read {path}: {e.strerror or e}; check the path and its permissions"
    except Exception as e:  # noqa: BLE001 - an unreadable file must never show a traceback
        return None, {}, f"{p.name} cannot be read as a table ({type(e).__name__}: {e})"


def server_file_source() -> tuple[pd.DataFrame, str, str, dict]:
    """The path box and what it names: (frame, name, dataset key, facts about the file); stops the page
    with a clear message while there is no readable file."""
    text = st.text_input("Path of a CSV file (.csv, .csv.gz), a Parquet file or a folder of Parquet files on the "
                         "machine that runs the dashboard", key="data.server_path", persist_state="session",
                         placeholder="/data/events-2026.csv.gz",
                         help=f"Files over {STREAM_ABOVE_BYTES / 1e6:,.0f} MB and Parquet are streamed: the page "
                              f"shows the first {HEAD_ROWS:,} rows and training reads the whole file in blocks.")
    if not text.strip():
        st.info("Type the path of a table on this server (for files too big to upload).")
        st.stop()
    p = Path(text.strip()).expanduser()
    if not p.exists():
        st.error(plain(f"{p} does not exist on this server; check the path (it is read where the dashboard "
                       "runs, not on your computer)."), icon=":material/block:")
        st.stop()
    p = p.resolve()
    size = file_bytes(p)
    df, facts, problem = load_server_file(str(p), (size, p.stat().st_mtime_ns))
    if problem:
        st.error(plain(problem), icon=":material/block:")
        st.stop()
    facts = {**facts, "path": str(p), "bytes": size}
    if facts["streamed"]:
        rows = facts.get("rows")
        total = (f"{rows:,} rows" if facts.get("rows_exact") else f"about {rows:,} rows") if rows else "its rows"
        st.info(plain(f"{p.name} ({size / 1e9:,.2f} GB, {total}) is streamed: below are its first {len(df):,} rows; "
                      "the column kinds, targets and features are chosen and checked on them, and training reads "
                      "the whole file block by block (prepared once into a cache in the run store)."))
    return df, p.name, KEY_PREFIX + str(p), facts
