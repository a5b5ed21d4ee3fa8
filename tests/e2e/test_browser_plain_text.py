"""In a real browser: run, file, task and error text full of Markdown and HTML shows as typed on the
Inspect and Compare pages: no bold, no link, no image, no HTML element made of it."""
from __future__ import annotations

import pytest

from mmoe.config import DataConfig, ModelConfig, TaskSpec, TrainConfig
from mmoe.runs.store import RunStore

NAME = "**bold** <b>x</b> [link](http://evil) www.evil.com :red[r] $x^2$"
DATASET = "<img src=x onerror=alert(1)>.csv"
TASK = "<i>t</i>"
ERROR = "column `*a*` <script>window.__pwned=1</script> [here](http://evil)"


@pytest.fixture(scope="module")
def hostile_run(server):
    store = RunStore(server.home)
    dc = DataConfig(tasks=(TaskSpec(TASK, "regression"),))
    rid = store.create_run(NAME, dataset=DATASET, data_config=dc.to_dict(),
                           model_config=ModelConfig(num_experts=2).to_dict(), train_config=TrainConfig().to_dict())
    store.set_status(rid, "running")
    store.finish(rid, "failed", final_metrics={}, epochs=0, train_seconds=0.0, samples_per_second=0.0, error=ERROR)
    store.close()
    return rid


def _text(locator) -> str:
    return locator.inner_text().replace("\u2060", "")


def _no_markup_made_of_user_text(page) -> None:
    main = page.locator("[data-testid=stMain]")
    hrefs = [a.get_attribute("href") or "" for a in main.locator("a").all()]
    assert not [h for h in hrefs if "evil" in h and not h.startswith("#")], hrefs     # a heading's own anchor is fine
    assert main.locator("img[src=x], script, i:text('t'), .katex").count() == 0
    assert not [s.inner_text() for s in main.locator("strong, b, em").all() if s.inner_text().strip() in ("bold", "x")]
    assert page.evaluate("window.__pwned") is None


def test_inspect_shows_user_text_as_typed(page, server, hostile_run):
    page.goto(f"{server.url}/inspect?run={hostile_run}")
    title = page.locator("h1").first
    title.wait_for()
    assert _text(title) == NAME
    main = page.locator("[data-testid=stMain]")
    main.locator("[data-testid=stAlertContentError]").first.wait_for()     # the header has been drawn
    main.get_by_text("Tasks:").first.wait_for()
    assert DATASET in _text(main)
    assert f"Tasks: {TASK} (regression)" in _text(main)
    assert ERROR in _text(main.locator("[data-testid=stAlertContentError]").first)
    _no_markup_made_of_user_text(page)
    assert page.evaluate("window.__stExceptions") == []


def test_compare_shows_user_text_as_typed(page, server, hostile_run):
    page.goto(f"{server.url}/compare?runs={hostile_run}")
    page.locator("h1", has_text="Compare runs").wait_for()
    page.get_by_text("■").first.wait_for()             # the run's swatch above its gates
    main = page.locator("[data-testid=stMain]")
    swatch = main.locator("[data-testid=stMarkdownContainer]", has_text="■").first
    assert f"#{hostile_run} {NAME}" in _text(swatch)
    _no_markup_made_of_user_text(page)
    assert page.evaluate("window.__stExceptions") == []
