"""Compare's "Manage runs" section: rename a run, delete a run (after a confirmation), train again with a
run's settings. Every box starts empty and its button waits for a choice: a box that started on the
first ticked run changed with the ticks, and renamed a run nobody had chosen."""
from __future__ import annotations

import streamlit as st

from mmoe.runs.store import RunRecord, RunStore, StoreError
from mmoe.views.formatting import plain
from mmoe.views.jobview import run_label
from mmoe_dashboard.continuity import train_again
from mmoe_dashboard.state import COMPARE_RUNS_KEY, INSPECT_RUN_KEY, labelled_key, run_ids

FLASH = "compare.flash"
CHOOSE = "choose a run"


def _flash(kind: str, text: str) -> None:
    st.session_state[FLASH] = (kind, text)


def show_flash() -> None:
    """The outcome of the last rename or delete (kept across the rerun the button's callback causes)."""
    flash = st.session_state.pop(FLASH, None)
    if flash:
        (st.success if flash[0] == "success" else st.error)(flash[1])


def _chosen(base: str) -> int | None:
    return st.session_state.get(st.session_state.get(f"{base}_key", ""), st.session_state.get(base))


def _do_rename(s: RunStore) -> None:
    rid = _chosen("compare.rename_run")
    new = st.session_state.get("compare.rename_to", "")
    if rid is None:
        return
    try:
        old = s.get_run(rid).name
        s.rename(rid, new)
        _flash("success", f"Renamed run #{rid} from “{plain(old)}” to “{plain(new.strip())}”.")
        st.session_state["compare.rename_to"] = ""
    except StoreError as e:
        _flash("error", plain(e))


def _do_delete(s: RunStore) -> None:
    rid = st.session_state.pop("compare.confirm_delete", None)
    if rid is None:
        return
    try:
        name = s.get_run(rid).name
        s.delete(rid)
        _flash("success", f"Deleted run #{rid} “{plain(name)}” and its files.")
        st.session_state[COMPARE_RUNS_KEY] = [i for i in run_ids(st.session_state.get(COMPARE_RUNS_KEY)) if i != rid]
        if st.session_state.get(INSPECT_RUN_KEY) == rid:
            st.session_state.pop(INSPECT_RUN_KEY, None)
    except StoreError as e:
        _flash("error", plain(e))


def _run_select(label: str, ids: list[int], base: str, fmt) -> int | None:
    """A run selectbox, empty until the user picks a run, whose widget key follows its labels (see
    ``labelled_key``); the chosen id is kept in ``st.session_state[base]`` across key changes."""
    key = labelled_key(base, [fmt(i) for i in ids])
    if st.session_state.get(key) not in ids:
        prev = st.session_state.get(base)
        st.session_state[key] = prev if prev in ids else None
    value = st.selectbox(label, ids, key=key, format_func=fmt, placeholder=CHOOSE)
    st.session_state[base] = value
    return value


def manage_section(s: RunStore, runs: list[RunRecord]) -> None:
    ids = [r.id for r in runs]
    by_id = {r.id: r for r in runs}
    label = lambda i: run_label(i, by_id[i].name)  # noqa: E731
    c1, c2 = st.columns(2)
    with c1:
        st.markdown("**Rename a run**")
        target = _run_select("Run to rename", ids, "compare.rename_run", label)
        st.text_input("New name", key="compare.rename_to", max_chars=120, placeholder="e.g. mmoe-8x64-lr1e-3")
        st.button("Rename", key="compare.rename_btn", on_click=_do_rename, args=(s,),
                  disabled=target is None or not st.session_state.get("compare.rename_to", "").strip())
    with c2:
        st.markdown("**Delete a run**")
        doomed = _run_select("Run to delete", ids, "compare.delete_run", lambda i: f"{label(i)} ({by_id[i].status})")
        pending = st.session_state.get("compare.confirm_delete")
        if pending is None or pending not in by_id:
            if st.button("Delete…", key="compare.delete_btn", disabled=doomed is None):
                st.session_state["compare.confirm_delete"] = doomed
                st.rerun()
        else:
            r = by_id[pending]
            st.warning(f"Delete run #{r.id} “{plain(r.name)}” ({r.status}), its history and its files? "
                       "This cannot be undone.")
            b1, b2, _ = st.columns([1, 1, 2])
            b1.button("Yes, delete", key="compare.delete_yes", type="primary", on_click=_do_delete, args=(s,))
            if b2.button("Cancel", key="compare.delete_no"):
                st.session_state.pop("compare.confirm_delete", None)
                st.rerun()
    st.markdown("**Train again with a run's settings** (its table, targets, model, training settings and seed)")
    c1, c2 = st.columns([3, 1])
    with c1:
        again = _run_select("Run to train again", ids, "compare.again_run", label)
    if c2.button("Train again", key="compare.again", disabled=again is None):
        why = train_again(by_id[again])
        if why:
            st.warning(f"Cannot train again: {plain(why)}.")
