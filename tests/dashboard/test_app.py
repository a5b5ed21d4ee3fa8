"""The dashboard's entry script: it runs, and every page opens without an exception."""
from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from helpers import shown

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")
PAGES = ["app_pages/data.py", "app_pages/train.py", "app_pages/inspect.py", "app_pages/compare.py"]
# the title each page shows (Inspect and Compare with an empty store)
TITLES = {"app_pages/data.py": "Data", "app_pages/train.py": "Model & training",
          "app_pages/inspect.py": "Inspect a run", "app_pages/compare.py": "Compare runs"}


@pytest.fixture
def at(mmoe_home, process_manager):
    return AppTest.from_file(APP, default_timeout=60)


def test_app_runs_and_opens_on_the_data_page(at):
    at.run()
    assert not at.exception
    assert at.title[0].value == "Data"


@pytest.mark.parametrize("page", PAGES)
def test_every_page_opens(at, page):
    at.run()
    at.switch_page(page).run()
    assert not at.exception, at.exception
    assert at.title[0].value == TITLES[page]


def test_pages_open_with_a_dataset_chosen(at):
    """Data page with a built-in dataset, then each other page (they may read the chosen dataset)."""
    at.run()
    at.radio(key="data.source").set_value("Built-in dataset").run()
    assert any("Ready to train on **click_like.csv**" in s.value.replace("\\", "") for s in at.success), \
        [e.value for e in at.error]
    for page in PAGES[1:]:
        at.switch_page(page).run()
        assert not at.exception, (page, at.exception)
        assert at.title[0].value == TITLES[page]
        if page == "app_pages/train.py":          # the chosen dataset reached the training page
            assert any("Dataset **click_like.csv**" in shown(c.value) for c in at.caption)


def test_streamlit_config_hides_the_deploy_button():
    import tomllib
    config = tomllib.loads((Path(__file__).resolve().parents[2] / ".streamlit" / "config.toml").read_text())
    assert config["client"]["toolbarMode"] == "minimal"
