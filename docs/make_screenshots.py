"""Make the README screenshots (docs/screenshots/*.png) by driving the dashboard in chromium.

    python docs/make_screenshots.py [--out docs/screenshots] [--epochs N]

Starts `streamlit run dashboard/app.py` on a free port with a temporary run store, then goes through
the census walkthrough of the README: the built-in census sample (income_50k is "50000+.",
marital_stat is "Never married", instance_weight dropped), the "Paper (census)" preset, "Train MMoE,
OMoE and Shared-Bottom", Inspect (gates with a clicked sample, predictions) and Compare (all three).
Needs Debian's chromium (/usr/bin/chromium) and playwright (requirements-dev.txt).
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

REPO = Path(__file__).resolve().parents[1]
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WIDTH, HEIGHT = 1400, 1000
MAX_BYTES = 400_000
LONG = 600_000     # ms: three census trainings on a slow CPU


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"streamlit exited with status {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.read().decode().strip() == "ok":
                    return
        except OSError:
            pass
        time.sleep(0.25)
    raise SystemExit("streamlit did not become healthy")


def idle(page) -> None:
    page.wait_for_timeout(300)
    page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]').wait_for(timeout=60_000)


def choose(page, combobox: str, option: str) -> None:
    """Pick ``option`` in a selectbox or multiselect (react-aria combobox)."""
    idle(page)
    box = page.get_by_role("combobox", name=combobox, exact=True)
    box.click()
    box.press_sequentially(option[:12], delay=20)
    page.get_by_role("option", name=option, exact=True).click()
    page.keyboard.press("Escape")
    expect(page.get_by_role("listbox")).to_have_count(0)
    idle(page)


def nav(page, title: str, heading: str | re.Pattern) -> None:
    for attempt in range(3):
        idle(page)
        page.get_by_test_id("stSidebarNav").get_by_role("link", name=title, exact=True).click()
        try:
            expect(page.get_by_role("heading", name=heading).first).to_be_visible(timeout=20_000)
            return
        except AssertionError:
            if attempt == 2:
                raise


def blur(page) -> None:
    """No focus ring, no tooltip, no hover label in the picture."""
    page.evaluate("() => document.activeElement && document.activeElement.blur()")
    page.mouse.move(WIDTH - 30, 300)    # the right margin of the main area: nothing to hover
    page.wait_for_timeout(300)


def shot(page, path: Path) -> None:
    """Full-page screenshot (the viewport grows to the app's height), made smaller if it is large."""
    blur(page)
    height = page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    page.set_viewport_size({"width": WIDTH, "height": max(HEIGHT, min(int(height), 9000))})
    try:
        expect(page.get_by_test_id("stSkeleton")).to_have_count(0, timeout=15_000)
    except AssertionError:
        pass
    page.wait_for_timeout(1500)
    blur(page)
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size({"width": WIDTH, "height": HEIGHT})
    shrink(path)
    print(f"{path} {path.stat().st_size / 1e3:,.0f} KB")


def shrink(path: Path) -> None:
    """Quantise to a 256-colour palette (screenshots of flat UI lose nothing visible)."""
    try:
        from PIL import Image
    except ImportError:
        return
    img = Image.open(path).convert("RGB")
    img.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(path, optimize=True)
    if path.stat().st_size > MAX_BYTES:
        print(f"warning: {path} is {path.stat().st_size / 1e3:,.0f} KB")


def exceptions(page) -> list[str]:
    return page.locator('[data-testid="stException"]').all_inner_texts()


def run(out: Path, epochs: int | None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="mmoe-shots-"))
    port = free_port()
    url = f"http://localhost:{port}"
    log = home / "streamlit.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "dashboard/app.py", "--server.port",
                                 str(port), "--server.headless", "true", "--server.fileWatcherType", "none"],
                                cwd=REPO, env={**os.environ, "MMOE_HOME": str(home / "runs")},
                                stdout=fh, stderr=subprocess.STDOUT)
    try:
        wait_healthy(url, proc)
        with sync_playwright() as p:
            exe = "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else shutil.which("chromium")
            browser = p.chromium.launch(executable_path=exe, args=ARGS)
            page = browser.new_page(viewport={"width": WIDTH, "height": HEIGHT})
            page.set_default_timeout(60_000)
            drive(page, url, out, epochs)
            bad = exceptions(page)
            browser.close()
        if bad:
            raise SystemExit(f"exception boxes: {bad}")
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        text = log.read_text(errors="replace")
        if "Traceback" in text:
            print(text[-4000:])
            raise SystemExit("the server printed a traceback")
        shutil.rmtree(home, ignore_errors=True)


def drive(page, url: str, out: Path, epochs: int | None) -> None:
    # Data: the built-in census sample; its targets and the dropped column are pre-filled
    page.goto(url)
    expect(page.get_by_role("heading", name="Data", exact=True)).to_be_visible()
    page.get_by_text("Built-in dataset", exact=True).click()
    choose(page, "Built-in dataset", "Census income (UCI, 15,000-row sample)")
    expect(page.get_by_text(re.compile(r"Ready to train on census_sample\.csv\.gz: 2 task\(s\)"))).to_be_visible()
    expect(page.get_by_role("combobox", name="Positive value of income_50k")).to_have_value("income_50k = 50000+.")
    expect(page.get_by_role("combobox", name="Positive value of marital_stat")).to_have_value(
        "marital_stat = Never married")
    shot(page, out / "data.png")

    # Model & training: paper preset, all three architectures
    nav(page, "Model & training", "Model & training")
    choose(page, "Preset", "Paper (census)")
    if epochs:
        box = page.get_by_role("spinbutton", name="Epochs", exact=True)
        box.fill(str(epochs))
        box.press("Enter")
        idle(page)
    page.get_by_role("button", name="Train MMoE, OMoE and Shared-Bottom").click()
    expect(page.get_by_text("Queued 3 run(s)")).to_be_visible()
    for job in (1, 2, 3):
        expect(page.get_by_text(re.compile(rf"· job {job} · run \d+ · finished on"))).to_be_visible(timeout=LONG)
    idle(page)
    page.wait_for_timeout(1500)
    shot(page, out / "train.png")

    # Inspect run 1 (MMoE): gates with a clicked sample, then predictions
    button = page.locator(".st-key-train-inspect-1").get_by_role("button", name="Inspect")
    button.scroll_into_view_if_needed()
    button.click()
    expect(page.get_by_text(re.compile(r"finished · run #1"))).to_be_visible()
    page.get_by_role("tab", name="Gates").click()
    heat = page.locator(".st-key-inspect-heat-1-income_50k")
    heat.scroll_into_view_if_needed()
    plot = heat.get_by_test_id("stPlotlyChart")
    expect(plot).to_be_visible()
    area = plot.locator(".nsewdrag").first
    experts = plot.locator(".xaxislayer-above .xtick text").count()
    box = area.bounding_box()
    area.click(position={"x": box["width"] * 3 / (2 * experts), "y": box["height"] * 0.45})
    expect(page.get_by_text(re.compile(r"^Row \d+ \(\w+ split\): features$"))).to_be_visible()
    page.locator(".st-key-inspect-sample_gates").scroll_into_view_if_needed()
    shot(page, out / "inspect-gates.png")
    page.get_by_role("tab", name="Predictions").click()
    expect(page.locator(".st-key-inspect-roc-income_50k").get_by_test_id("stPlotlyChart")).to_be_visible()
    shot(page, out / "inspect-predictions.png")

    # Compare all three
    nav(page, "Compare", "Compare runs")
    for rid in (1, 2, 3):
        idle(page)
        box = page.get_by_role("combobox", name="Selected runs", exact=True)
        box.click()
        box.press_sequentially(f"#{rid} ", delay=20)
        page.get_by_role("option", name=re.compile(rf"^#{rid} ")).click()
        page.keyboard.press("Escape")
        idle(page)
    page.locator(".st-key-compare-curve-income_50k").scroll_into_view_if_needed()
    expect(page.locator(".st-key-compare-curve-income_50k").get_by_test_id("stPlotlyChart")).to_be_visible()
    shot(page, out / "compare.png")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "screenshots")
    ap.add_argument("--epochs", type=int, default=None, help="override the preset's epochs (faster)")
    a = ap.parse_args()
    run(a.out, a.epochs)
