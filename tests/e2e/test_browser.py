"""End to end in a real chromium: upload a CSV, pick targets, train, watch the live curve, inspect the
gates (click a sample), train a second architecture and compare both runs.

Skips with a reason without chromium or playwright (see conftest.py). Screenshots of every page go to
tests/artifacts/ (gitignored). Run alone: ``python -m pytest tests/e2e -q -m browser``.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from mmoe.runs.predictions import rows_of_split
from mmoe.runs.store import RunStore
from mmoe.synthetic import click_like

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"     # tests/artifacts (gitignored)

pytestmark = pytest.mark.browser

TRAIN_TIMEOUT_MS = 240_000      # a slow 2-core CI machine, the server competing with chromium
PAGE_TIMEOUT_MS = 60_000
EXCEPTION = '[data-testid="stException"]'


# ----------------------------------------------------------------------------- helpers

def no_exceptions(page, where: str) -> None:
    """No Streamlit exception box now, and none ever appeared (the init script records them)."""
    seen = page.evaluate("() => window.__stExceptions || []")
    assert not seen, f"{where}: Streamlit showed an exception box: {seen}"
    assert page.locator(EXCEPTION).count() == 0, f"{where}: Streamlit shows an exception box"


def shot(page, name: str) -> None:
    """A screenshot of the whole page: the viewport grows to the height of the app's scroll area."""
    from playwright.sync_api import expect

    vp = page.viewport_size
    height = page.evaluate("() => (document.querySelector('[data-testid=\"stMain\"]') || document.body)"
                           ".scrollHeight")
    page.set_viewport_size({"width": vp["width"], "height": min(max(vp["height"], int(height)), 12_000)})
    # elements below the fold are drawn lazily (skeletons) and plotly redraws on resize
    try:
        expect(page.get_by_test_id("stSkeleton")).to_have_count(0, timeout=10_000)
    except AssertionError:
        pass
    page.wait_for_timeout(700)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    page.set_viewport_size(vp)


def goto_page(page, title: str, heading: str | re.Pattern) -> None:
    """Switch pages with the sidebar (a page load would start a new session and lose the dataset).

    A click that lands while a rerun is ending can be superseded by that rerun, so it is retried."""
    from playwright.sync_api import expect

    target = page.get_by_role("heading", name=heading).first
    for attempt in range(3):
        wait_idle(page)
        page.get_by_test_id("stSidebarNav").get_by_role("link", name=title, exact=True).click()
        try:
            expect(target).to_be_visible(timeout=PAGE_TIMEOUT_MS // 3)
            if attempt:
                print(f"navigation to {title!r} needed {attempt + 1} clicks")
            return
        except AssertionError:
            if attempt == 2:
                raise


def wait_idle(page) -> None:
    """Wait until the script has finished its rerun (the attribute Streamlit's own e2e tests use)."""
    page.wait_for_timeout(300)
    page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]').wait_for(timeout=PAGE_TIMEOUT_MS)


def pick_option(page, combobox_name: str, typed: str, option: str | re.Pattern) -> None:
    """Choose an option of a Streamlit multiselect by typing part of it and clicking the option;
    returns when the tag shows and the rerun it caused is over (a pick during a rerun can be lost)."""
    from playwright.sync_api import expect

    wait_idle(page)
    box = page.get_by_role("combobox", name=combobox_name, exact=True)
    box.click()
    box.press_sequentially(typed, delay=20)
    choice = page.get_by_role("option", name=option, exact=isinstance(option, str))
    label = choice.inner_text().strip()
    choice.click()
    page.keyboard.press("Escape")
    expect(page.get_by_role("listbox")).to_have_count(0)
    widget = page.get_by_test_id("stMultiSelect").filter(has=page.get_by_role("combobox", name=combobox_name,
                                                                                exact=True))
    expect(widget.get_by_role("button", name=f"Remove {label}", exact=True)).to_be_visible(
        timeout=PAGE_TIMEOUT_MS)
    wait_idle(page)


def wait_job_finished(page, job: int) -> None:
    """The job card says `finished` and shows its loss curve (a plotly chart)."""
    from playwright.sync_api import expect

    expect(page.get_by_text(re.compile(rf"· job {job} · run \d+ · finished on")).first).to_be_visible(
        timeout=TRAIN_TIMEOUT_MS)
    curve = chart(page, f"train.curve.{job}")
    expect(curve).to_be_visible(timeout=PAGE_TIMEOUT_MS)
    expect(curve.locator(".scatterlayer .trace").first).to_be_attached()


def shown(locator):
    """``locator`` scrolled into view (Streamlit draws elements below the fold lazily)."""
    locator.scroll_into_view_if_needed(timeout=PAGE_TIMEOUT_MS)
    return locator


def chart(page, key: str, prefix: bool = False):
    """The plotly chart of the element with widget key ``key`` (dots become dashes in the class; with
    ``prefix``, the first key that starts so). During a rerun Streamlit keeps the previous element too
    (``data-stale="true"``): skip it."""
    cls = key.replace(".", "-")
    sel = f"[class*='st-key-{cls}']" if prefix else f".st-key-{cls}"
    box = shown(page.locator(f"{sel}:not([data-stale='true'])").first)
    return box.get_by_test_id("stPlotlyChart")


def table_after(page, heading_id: str):
    """The first dataframe after the heading with HTML id ``heading_id``."""
    return shown(page.locator(f'xpath=//div[@data-testid="stElementContainer"][.//*[@id="{heading_id}"]]'
                              '/following-sibling::div[@data-testid="stElementContainer"]'
                              '[.//*[@data-testid="stDataFrame"] or .//*[@data-testid="stSkeleton"]][1]')
                 ).get_by_test_id("stDataFrame")


def trace_names(plotly_chart) -> list[str]:
    return plotly_chart.locator(".js-plotly-plot").evaluate("gd => gd._fullData.map(t => t.name || '')")


# ----------------------------------------------------------------------------- the flow

def test_upload_train_inspect_compare(page, server, tmp_path):
    from playwright.sync_api import expect

    csv = tmp_path / "impressions.csv"
    click_like(2000, seed=1).to_csv(csv, index=False)

    # -- Data: upload, choose the two targets, wait for the "ready" summary
    page.goto(server.url)
    expect(page.get_by_role("heading", name="Data", exact=True)).to_be_visible(timeout=PAGE_TIMEOUT_MS)
    expect(page.get_by_text("Upload a CSV file, or choose a recent or a built-in dataset")).to_be_visible()
    page.set_input_files("input[type=file]", str(csv))
    expect(page.get_by_text("Pick at least one target column.")).to_be_visible(timeout=PAGE_TIMEOUT_MS)
    for col in ("click", "like"):
        pick_option(page, "Target columns (one task each)", col, col)
    ready = re.compile(r"Ready to train on impressions\.csv: 2 task\(s\), \d+ feature column")
    expect(page.get_by_text(ready).first).to_be_visible(timeout=PAGE_TIMEOUT_MS)
    no_exceptions(page, "Data page")
    shot(page, "01-data")

    # -- Model & training: the "Quick look" preset, 3 epochs, Train; live curve; finished
    goto_page(page, "Model & training", "Model & training")
    expect(page.get_by_text("Dataset impressions.csv").first).to_be_visible()
    expect(page.get_by_role("combobox", name="Preset")).to_have_value("Quick look")
    page.get_by_text("Batch size and epochs from the data", exact=True).click()   # set them by hand
    wait_idle(page)
    epochs = page.get_by_role("spinbutton", name="Epochs", exact=True)
    expect(epochs).to_be_enabled()
    epochs.fill("3")
    epochs.press("Enter")
    expect(epochs).to_have_value("3")
    wait_idle(page)                  # the rerun that stores the new value is over before Train
    page.get_by_role("button", name="Train", exact=True).click()
    expect(page.get_by_text("Queued 1 run(s)").first).to_be_visible(timeout=PAGE_TIMEOUT_MS)
    wait_job_finished(page, 1)
    expect(page.get_by_text(re.compile(r"epoch 3/3")).first).to_be_visible()
    names = trace_names(chart(page, "train.curve.1"))
    assert {"click · training", "click · validation", "like · training", "like · validation"} <= set(names), names
    no_exceptions(page, "Model & training page")
    shot(page, "02-train")

    # -- Inspect (from the job card): Training, Predictions, Gates tabs; click a sample in a heatmap
    page.get_by_role("button", name="Inspect", exact=True).first.click()
    expect(page.get_by_role("tab", name="Training")).to_be_visible(timeout=PAGE_TIMEOUT_MS)
    expect(page.get_by_role("heading", name="mmoe on impressions.csv")).to_be_visible()
    expect(page.get_by_text(re.compile(r"finished · run #1")).first).to_be_visible()
    expect(chart(page, "inspect.curves")).to_be_visible()
    expect(page.get_by_role("heading", name="Final metrics")).to_be_visible()
    no_exceptions(page, "Inspect, Training tab")
    shot(page, "03-inspect-training")

    page.get_by_role("tab", name="Predictions").click()
    for kind in ("roc", "pr", "cal", "hist"):
        for task in ("click", "like"):
            expect(chart(page, f"inspect.{kind}.{task}")).to_be_visible(timeout=PAGE_TIMEOUT_MS)
    no_exceptions(page, "Inspect, Predictions tab")
    shot(page, "04-inspect-predictions")

    page.get_by_role("tab", name="Gates").click()
    expect(chart(page, "inspect.heat.1.like")).to_be_visible(timeout=PAGE_TIMEOUT_MS)
    heat = chart(page, "inspect.heat.1.click")
    expect(heat).to_be_visible(timeout=PAGE_TIMEOUT_MS)
    expect(page.get_by_text("No sample chosen yet.")).to_be_visible()
    # Click the middle of the first expert's column, a third of the way down the samples: the
    # invisible scatter overlay turns the click into a selected sample.
    plot_area = heat.locator(".nsewdrag").first
    plot_area.scroll_into_view_if_needed()
    experts = heat.locator(".xaxislayer-above .xtick text").count()
    assert experts == 4, f"the Quick look preset has 4 experts, the heatmap shows {experts} columns"
    box = plot_area.bounding_box()
    plot_area.click(position={"x": box["width"] / (2 * experts), "y": box["height"] * 0.3})
    expect(page.get_by_text(re.compile(r"^Row \d+ \(\w+ split\): features$")).first).to_be_visible(
        timeout=PAGE_TIMEOUT_MS)
    expect(page.get_by_text("No sample chosen yet.")).to_have_count(0)
    expect(chart(page, "inspect.sample_gates")).to_be_visible(timeout=PAGE_TIMEOUT_MS)
    row = page.get_by_role("spinbutton", name=re.compile("^Row number"))
    assert re.fullmatch(r"\d+", row.input_value()), row.input_value()
    # the row shown is the clicked sample: the point plotly selected carries its position in the
    # run's stored predictions (customdata), and that position holds this row number
    picked = heat.locator(".js-plotly-plot").evaluate(
        "gd => ({points: Array.from(gd.data[1].selectedpoints || []),"
        " customdata: Array.from(gd._fullData[1].customdata || [])})")
    assert len(picked["points"]) == 1, picked["points"]
    point = int(picked["points"][0])
    assert point % experts == 0, f"the click was in expert e0's column, plotly picked point {point}"
    store = RunStore(server.home)
    stored = rows_of_split(store.load_frame(1, "predictions.parquet"), "val")    # the split shown by default
    store.close()
    assert int(row.input_value()) == int(stored["_row"].iloc[int(picked["customdata"][point])])
    no_exceptions(page, "Inspect, Gates tab")
    shot(page, "05-inspect-gates")

    # -- a second run: same data and settings as OMoE
    goto_page(page, "Model & training", "Model & training")
    page.get_by_text("OMoE (one shared gate)", exact=True).click()
    expect(page.get_by_role("radio", name="OMoE (one shared gate)")).to_be_checked()
    expect(page.get_by_role("spinbutton", name="Epochs", exact=True)).to_have_value("3")
    wait_idle(page)
    page.get_by_role("button", name="Train", exact=True).click()
    expect(page.get_by_text("Queued 1 run(s)").first).to_be_visible(timeout=PAGE_TIMEOUT_MS)
    wait_job_finished(page, 2)
    expect(page.get_by_text(re.compile(r"omoe on impressions\.csv · job 2")).first).to_be_visible()
    no_exceptions(page, "Model & training page, second run")

    # -- Compare both runs
    goto_page(page, "Compare", "Compare runs")
    for rid in (1, 2):
        pick_option(page, "Selected runs", f"#{rid} ", re.compile(rf"^#{rid} "))
    # one curve chart per task and kind, keyed by its label ("click (binary=...)")
    expect(chart(page, "compare.curve.click-binary", prefix=True)).to_be_visible(timeout=PAGE_TIMEOUT_MS)
    expect(chart(page, "compare.curve.like-binary", prefix=True)).to_be_visible(timeout=PAGE_TIMEOUT_MS)
    names = trace_names(chart(page, "compare.curve.click-binary", prefix=True))
    assert any(n.startswith("#1 ") for n in names) and any(n.startswith("#2 ") for n in names), names
    expect(page.get_by_role("heading", name="Final metrics")).to_be_visible()
    expect(table_after(page, "final-metrics")).to_be_visible(timeout=PAGE_TIMEOUT_MS)
    expect(page.get_by_role("heading", name="Settings")).to_be_visible()
    expect(table_after(page, "settings")).to_be_visible(timeout=PAGE_TIMEOUT_MS)
    for rid in (1, 2):
        expect(chart(page, f"compare.util.{rid}")).to_be_visible(timeout=PAGE_TIMEOUT_MS)
    no_exceptions(page, "Compare page")
    shot(page, "06-compare")

    assert "Traceback" not in server.output(), server.output()[-6000:]
