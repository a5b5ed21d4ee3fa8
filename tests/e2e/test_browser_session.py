"""In a real chromium: an uploaded table and its chosen targets survive a browser refresh (the table is
kept in the run store, the dataset is in the address, the choices are saved with it)."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from test_browser import PAGE_TIMEOUT_MS, no_exceptions, pick_option, shot, wait_idle

pytestmark = pytest.mark.browser


def test_a_refresh_keeps_the_upload_and_the_targets(page, server, tmp_path):
    from playwright.sync_api import expect

    rng = np.random.default_rng(3)
    x = rng.normal(size=(400, 4))
    df = pd.DataFrame(x, columns=["alpha", "beta", "gamma", "delta"])
    df["grade"] = np.clip(np.round(5 + x[:, 0]), 2, 8).astype(int)
    df["passed"] = np.where(x[:, 1] + 0.3 * rng.normal(size=400) > 0, "yes", "no")
    csv = tmp_path / "exam results.csv"
    df.to_csv(csv, index=False, sep=";", decimal=",")          # a European export
    page.goto(server.url)
    expect(page.get_by_role("heading", name="Data", exact=True)).to_be_visible(timeout=PAGE_TIMEOUT_MS)
    page.set_input_files("input[type=file]", str(csv))
    expect(page.get_by_text("Pick at least one target column.")).to_be_visible(timeout=PAGE_TIMEOUT_MS)
    for col in ("grade", "passed"):
        pick_option(page, "Target columns (one task each)", col, col)
    ready = re.compile(r"Ready to train on exam results\.csv: 2 task\(s\), 4 feature column")
    expect(page.get_by_text(ready).first).to_be_visible(timeout=PAGE_TIMEOUT_MS)
    assert "dataset=dataset" in page.url
    page.reload()
    wait_idle(page)
    expect(page.get_by_text(ready).first).to_be_visible(timeout=PAGE_TIMEOUT_MS)
    tags = page.get_by_test_id("stMultiSelect").filter(
        has=page.get_by_role("combobox", name="Target columns (one task each)", exact=True))
    for col in ("grade", "passed"):
        expect(tags.get_by_role("button", name=f"Remove {col}", exact=True)).to_be_visible()
    # what the reader did is said: semicolons and decimal commas
    page.get_by_text("How the file was read").first.click()
    expect(page.get_by_text(re.compile(r"semicolon-separated")).first).to_be_visible()
    expect(page.get_by_text(re.compile(r"Decimal commas read as decimal points .* alpha")).first).to_be_visible()
    no_exceptions(page, "Data page after a refresh")
    shot(page, "30-data-after-refresh")
