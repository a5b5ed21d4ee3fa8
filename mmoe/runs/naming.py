"""Run (and experiment) names: what a name may be, and stored text made safe for a terminal.

    check_run_name(name)   the name stripped, or StoreError saying what is wrong and how to fix it:
                           one line, at most MAX_NAME characters, no control characters (so no
                           terminal escape sequences, tabs or bidirectional overrides)
    optional_run_name(n)   the same for an optional name (``--name``): None when none was given
    fit_run_name(text)     a name made up by the program (from a file name, settings): made valid
                           instead of refused (escaped, cut to MAX_NAME characters with "…")
    printable(text)        text for a terminal: every such character written as an escape (``\\x1b``),
                           for names stored before the rule existed

Cheap to import (the CLI imports it at start): StoreError is imported when a name is refused.
"""
from __future__ import annotations

import unicodedata

MAX_NAME = 200
# reorder text when shown (the "Trojan Source" characters); not control characters to unicodedata
BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
PREVIEW = 40


def _unsafe(ch: str) -> bool:
    """A character that does something instead of showing: C0/C1 controls (ESC starts every ANSI
    sequence, newline, tab, DEL), line and paragraph separators, bidi controls, lone surrogates."""
    return unicodedata.category(ch) in ("Cc", "Zl", "Zp", "Cs") or ch in BIDI_CONTROLS


def _escape(ch: str) -> str:
    o = ord(ch)
    if ch in "\n\r\t":
        return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}[ch]
    return f"\\x{o:02x}" if o < 0x100 else f"\\u{o:04x}"


def printable(text) -> str:
    """``text`` with every character that would act on a terminal (see ``_unsafe``) written as its
    escape, so a stored name can never move the cursor, recolour, clear the screen or break a table."""
    s = str(text)
    if not any(_unsafe(ch) for ch in s):
        return s
    return "".join(_escape(ch) if _unsafe(ch) else ch for ch in s)


def _preview(text: str) -> str:
    shown = printable(text[:PREVIEW])
    return f"“{shown}…”" if len(text) > PREVIEW else f"“{shown}”"


def check_run_name(name) -> str:
    """A user-typed run or experiment name, stripped; StoreError (one clear line) when it is not
    one line of at most MAX_NAME characters without control characters."""
    from mmoe.runs.errors import StoreError

    text = str(name if name is not None else "").strip()
    if not text:
        raise StoreError("the name is empty; type a name")
    bad = [ch for ch in text if _unsafe(ch)]
    if bad:
        if any(unicodedata.category(ch) in ("Zl", "Zp") or ch in "\n\r" for ch in bad):
            what = "a line break; a name is one line"
        elif "\x1b" in bad or "\x9b" in bad:
            what = "a terminal escape sequence"
        elif any(unicodedata.category(ch) == "Cs" for ch in bad):
            what = "bytes that are not valid text"
        else:
            what = f"the control character {_escape(bad[0])}"
        raise StoreError(f"the name {_preview(text)} contains {what}; type it again with letters, digits, "
                         "spaces and punctuation only")
    if len(text) > MAX_NAME:
        raise StoreError(f"the name {_preview(text)} is {len(text):,} characters long; a name has at most "
                         f"{MAX_NAME} characters, so shorten it")
    return text


def optional_run_name(name) -> str | None:
    """``check_run_name`` for a name that may be left out: None or blank gives None (the default name)."""
    return None if name is None or not str(name).strip() else check_run_name(name)


def fit_run_name(text) -> str:
    """A generated name ("mmoe on <file name>", "exp 3 · lr=0.01 · seed 2") that always passes
    ``check_run_name``: unsafe characters written as escapes, cut to MAX_NAME characters."""
    name = printable(str(text).strip()) or "run"
    return name if len(name) <= MAX_NAME else name[:MAX_NAME - 1].rstrip() + "…"
