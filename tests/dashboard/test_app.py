"""The dashboard's entry script: it runs, and every page opens without an exception."""
from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from mmoe.jobs import get_manager

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")
PAGES = ["app_pages/data.py", "app_pages/train.py", "app_pages/inspect.py", "app_pages/compare.py"]


@pytest.fixture
def at(mmoe_home):
    app = AppTest.from_file(APP, default_timeout=60)
    yield app
    get_manager().shutdown(wait=True, cancel=True)


def test_app_runs_and_opens_on_the_data_page(at):
    at.run()
    assert not at.exception
    assert at.title[0].value == "Data"


@pytest.mark.parametrize("page", PAGES)
def test_every_page_opens(at, page):
    at.run()
    at.switch_page(page).run()
    assert not at.exception, at.exception


def test_pages_open_with_a_dataset_chosen(at):
    """Data page with a built-in dataset, then each other page (they may read the chosen dataset)."""
    at.run()
    at.radio(key="data.source").set_value("Built-in dataset").run()
    assert at.success, [e.value for e in at.error]
    for page in PAGES[1:]:
        at.switch_page(page).run()
        assert not at.exception, (page, at.exception)


def test_streamlit_config_hides_the_deploy_button():
    import tomllib
    config = tomllib.loads((Path(__file__).resolve().parents[2] / ".streamlit" / "config.toml").read_text())
    assert config["client"]["toolbarMode"] == "minimal"
