"""dashboard/state.py: a run store that cannot be opened stops every page with its one message (never a
traceback, nothing changed on disk); an index replaced by ``runs --repair`` is opened again."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from mmoe.runs.repair import repair_store
from mmoe.runs.store import RunStore

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")
STORE_PAGES = ["app_pages/train.py", "app_pages/inspect.py", "app_pages/compare.py", "app_pages/experiments.py"]


def _with_a_run(home: Path) -> int:
    store = RunStore(home)
    rid = store.create_run("kept", dataset="d.csv", data_config={"tasks": [{"column": "click"}]},
                           model_config={"arch": "mmoe"}, train_config={}, status="running")
    store.finish(rid, "finished", final_metrics={}, epochs=1, train_seconds=1.0, samples_per_second=1.0)
    store.close()
    return rid


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("state", ["damaged", "emptied"])
@pytest.mark.parametrize("page", STORE_PAGES)
def test_a_store_that_cannot_be_opened_shows_its_message_on_every_page(mmoe_home, process_manager, page, state):
    _with_a_run(mmoe_home)
    for suffix in ("", "-wal", "-shm"):
        (mmoe_home / f"runs.sqlite{suffix}").unlink(missing_ok=True)
    (mmoe_home / "runs.sqlite").write_bytes(os.urandom(4096) if state == "damaged" else b"")
    before = _files(mmoe_home)
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page(page).run()
    assert not at.exception, at.exception
    assert any("cannot be opened" in e.value for e in at.error), [e.value for e in at.error]
    [code] = [c.value for c in at.code if "runs --repair" in c.value]
    assert f"python -m mmoe runs --repair --store {mmoe_home}" in code
    assert _files(mmoe_home) == before


def test_an_index_rebuilt_by_repair_is_opened_again(mmoe_home, process_manager):
    rid = _with_a_run(mmoe_home)
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page("app_pages/inspect.py").run()
    assert not at.exception and not at.error
    for suffix in ("", "-wal", "-shm"):
        (mmoe_home / f"runs.sqlite{suffix}").unlink(missing_ok=True)
    at.run()
    assert not at.exception and any("cannot be opened" in e.value for e in at.error)
    repair_store(mmoe_home)
    at.run()
    assert not at.exception and not [e.value for e in at.error if "cannot be opened" in e.value]
    assert RunStore(mmoe_home).get_run(rid).name == "kept"
