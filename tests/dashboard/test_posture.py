"""The dashboard's posture as a single-user local tool: the repository's Streamlit config listens on
127.0.0.1 and keeps tracebacks in the terminal; MMOE_DEV=1 shows full error details in the browser."""
from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from streamlit import config
from streamlit.testing.v1 import AppTest

REPO = Path(__file__).resolve().parents[2]


def test_repository_config_binds_localhost_and_hides_tracebacks():
    cfg = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    assert cfg["server"]["address"] == "127.0.0.1"
    assert cfg["client"]["showErrorDetails"] == "type"


def test_the_dockerfile_binds_every_interface_on_purpose():
    text = (REPO / "Dockerfile").read_text()
    cmd = next(line for line in text.splitlines() if line.startswith("CMD"))
    assert "--server.address=0.0.0.0" in cmd
    before = text[:text.index(cmd)].splitlines()[-3:]
    assert any("0.0.0.0 on purpose" in line for line in before)


@pytest.mark.parametrize("dev, shown", [("1", "full"), (None, "type")])
def test_mmoe_dev_shows_full_error_details(monkeypatch, tmp_path, dev, shown):
    before = config.get_option("client.showErrorDetails")
    monkeypatch.setenv("MMOE_HOME", str(tmp_path / "runs"))
    if dev is None:
        monkeypatch.delenv("MMOE_DEV", raising=False)
    else:
        monkeypatch.setenv("MMOE_DEV", dev)
    config.set_option("client.showErrorDetails", "type")      # what config.toml / mmoe dashboard set
    try:
        at = AppTest.from_file(str(REPO / "dashboard" / "app.py"), default_timeout=60)
        at.run()
        assert not at.exception
        assert config.get_option("client.showErrorDetails") == shown
    finally:
        config.set_option("client.showErrorDetails", before)
