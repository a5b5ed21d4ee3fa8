"""In a real chromium: the paper experiment started from the Paper lab, its chart with bands and its
paired differences on the Experiments page; Compare with a regression and a multiclass run of one column."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from test_browser import PAGE_TIMEOUT_MS, TRAIN_TIMEOUT_MS, chart, no_exceptions, shot, wait_idle

from mmoe.cli import main as cli
from mmoe.runs.store import RunStore

pytestmark = pytest.mark.browser


def fill_number(page, label: str, value: int) -> None:
    box = page.get_by_label(label, exact=True).first
    box.fill(str(value))
    box.press("Enter")
    wait_idle(page)


def test_paper_lab_to_experiments(page, server):
    from playwright.sync_api import expect

    page.goto(server.url + "/paper")
    expect(page.get_by_role("heading", name="Paper lab")).to_be_visible(timeout=PAGE_TIMEOUT_MS)
    wait_idle(page)
    fill_number(page, "Rows per table", 300)
    fill_number(page, "Seeds per setting", 2)
    fill_number(page, "Epochs", 2)
    # the estimate is measured and shown before anything starts
    expect(page.get_by_text(re.compile(r"30 runs, about \d+:\d\d on this machine"))).to_be_visible(
        timeout=PAGE_TIMEOUT_MS)
    assert RunStore(server.home).list_experiments() == []
    shot(page, "20-paper-lab")
    page.get_by_role("button", name="Start", exact=True).first.click()
    expect(page.get_by_text("Experiment started").first).to_be_visible(timeout=PAGE_TIMEOUT_MS)
    no_exceptions(page, "Paper lab")

    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Experiments", exact=True).click()
    expect(page.get_by_role("heading", name="Experiments")).to_be_visible(timeout=PAGE_TIMEOUT_MS)
    expect(page.get_by_text("finished · 30 of 30 runs ended").first).to_be_visible(timeout=TRAIN_TIMEOUT_MS)
    wait_idle(page)
    sweep = chart(page, "exp.sweep")
    expect(sweep).to_be_visible(timeout=PAGE_TIMEOUT_MS)
    # five architectures, each a line over the correlations with its 95% band (a filled trace)
    expect(sweep.locator(".legend .traces")).to_have_count(5)
    expect(sweep.locator(".scatterlayer .trace")).to_have_count(10)
    diffs = chart(page, "exp.diffs")
    expect(diffs).to_be_visible(timeout=PAGE_TIMEOUT_MS)
    expect(page.get_by_text(re.compile(r"omoe vs mmoe · correlation=0\.5")).first).to_be_visible()
    expect(chart(page, "exp.curves")).to_be_visible(timeout=PAGE_TIMEOUT_MS)
    no_exceptions(page, "Experiments page")
    shot(page, "21-experiments")


def test_compare_keeps_a_regression_and_a_multiclass_run_apart(page, server, tmp_path, capsys):
    from playwright.sync_api import expect

    rng = np.random.default_rng(1)
    x = rng.normal(size=(600, 3))
    quality = np.clip(np.round(5 + x[:, 0] + 0.5 * x[:, 1]), 3, 8).astype(int)
    path = tmp_path / "quality.csv"
    pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "quality": quality}).to_csv(path, index=False)
    ids = []
    for kind in ("regression", "multiclass"):
        assert cli(["train", "--data", str(path), "--task", f"quality:{kind}", "--epochs", "3", "--batch-size", "64",
                    "--store", str(server.home), "--name", f"quality as {kind}", "--quiet"]) == 0
        ids.append(RunStore(server.home).list_runs()[0].id)
    capsys.readouterr()
    page.goto(server.url + f"/compare?runs={ids[0]},{ids[1]}")
    expect(page.get_by_role("heading", name="Compare runs")).to_be_visible(timeout=PAGE_TIMEOUT_MS)
    wait_idle(page)
    note = re.compile(r"quality is a (regression|multiclass) task in run #\d+ and a (regression|multiclass) task")
    expect(page.get_by_text(note).first).to_be_visible(timeout=PAGE_TIMEOUT_MS)
    expect(chart(page, "compare.curve.quality-regression")).to_be_visible(timeout=PAGE_TIMEOUT_MS)
    expect(chart(page, "compare.curve.quality-multiclass")).to_be_visible(timeout=PAGE_TIMEOUT_MS)
    no_exceptions(page, "Compare page")
    shot(page, "22-compare-kinds")
