"""Run names: one line of at most 200 characters without control characters; stored text printed safely."""
from __future__ import annotations

import pytest

from mmoe.runs.naming import MAX_NAME, check_run_name, fit_run_name, optional_run_name, printable
from mmoe.runs.store import StoreError


@pytest.mark.parametrize("name, why", [
    ("two\nlines", "line break"), ("cr\rreturn", "line break"), ("sep\u2028arator", "line break"),
    ("red \x1b[31mtext\x1b[0m", "terminal escape"), ("csi \x9b31m", "terminal escape"),
    ("bell\x07", "control character"), ("tab\there", "control character"),
    ("rtl \u202eevil", "control character"), ("x" * (MAX_NAME + 1), "201 characters"),
    ("   ", "empty"),
])
def test_refused_with_what_and_how(name, why):
    with pytest.raises(StoreError) as e:
        check_run_name(name)
    msg = str(e.value)
    assert why in msg and "\n" not in msg and "\x1b" not in msg and "\x9b" not in msg
    assert "type" in msg or "shorten" in msg


def test_accepted_stripped():
    assert check_run_name("x" * MAX_NAME) == "x" * MAX_NAME
    assert check_run_name("  mmoe · 8×64 — 学習 😀  ") == "mmoe · 8×64 — 学習 😀"
    assert check_run_name(" " + "y" * MAX_NAME + " ") == "y" * MAX_NAME        # counted after stripping
    assert optional_run_name(None) is None and optional_run_name("  ") is None
    assert optional_run_name(" a ") == "a"


def test_printable_escapes_what_acts_on_a_terminal():
    assert printable("ok · 学習") == "ok · 学習"
    out = printable("a\x1b[2J\x1b]0;t\x07b\nc\td\u202ee\x9b")
    assert out == "a\\x1b[2J\\x1b]0;t\\x07b\\nc\\td\\u202ee\\x9b"
    assert all(ch.isprintable() for ch in out)


@pytest.mark.parametrize("made", ["mmoe on " + "f" * 300 + ".csv", "mmoe on evil\n\x1b[2J.csv", "  ", "ok [mmoe]"])
def test_generated_names_are_made_valid(made):
    name = fit_run_name(made)
    assert check_run_name(name) == name
    assert fit_run_name("ok [mmoe]") == "ok [mmoe]" and fit_run_name("x" * 300).endswith("…")
