"""The Data page's "File on the server": a small CSV is read whole; a Parquet file (or a CSV over the size
limit) is streamed: the page works on its first rows and the Train button's job trains on the whole file
through the streamed path. A missing path is one clear error."""
from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from frames import make_tiny_frame
from helpers import poll, shown
from mmoe.runs.store import RunStore
from mmoe_dashboard import server_file

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")
DATA_KEY = "mmoe.dataset"


def _open(path) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.radio(key="data.source").set_value("File on the server").run()
    at.text_input(key="data.server_path").set_value(str(path)).run()
    assert not at.exception, at.exception
    return at


def _pick_targets(at: AppTest) -> None:
    key = next(m.key for m in at.multiselect if m.key.startswith("data.targets."))
    at.multiselect(key=key).set_value(["click", "score"]).run()
    assert not at.exception, at.exception


def test_a_missing_path_says_so(mmoe_home, process_manager, tmp_path):
    at = _open(tmp_path / "nope.csv")
    assert any("does not exist on this server" in shown(e.value) for e in at.error)
    assert DATA_KEY not in at.session_state


def test_a_small_csv_on_the_server_is_read_whole(mmoe_home, process_manager, tmp_path):
    make_tiny_frame(300).to_csv(tmp_path / "t.csv", index=False)
    at = _open(tmp_path / "t.csv")
    _pick_targets(at)
    ds = at.session_state[DATA_KEY]
    assert ds["server_file"]["streamed"] is False and len(ds["prepared"]) == 300
    assert at.query_params["dataset"] == "path:" + str((tmp_path / "t.csv").resolve())


def test_a_parquet_file_is_streamed_and_trained_whole(mmoe_home, process_manager, tmp_path, monkeypatch):
    monkeypatch.setattr("mmoe.data.streaming.HEAD_ROWS", 500)     # the page sees 500 of the 3,000 rows
    make_tiny_frame(3000).to_parquet(tmp_path / "t.parquet", index=False)
    at = _open(tmp_path / "t.parquet")
    assert any("is streamed" in shown(i.value) and "3,000 rows" in shown(i.value) for i in at.info)
    _pick_targets(at)
    ds = at.session_state[DATA_KEY]
    assert ds["server_file"]["streamed"] is True and len(ds["prepared"]) == 500
    at.switch_page("app_pages/train.py").run()
    assert any("streamed from the server: about 2," in c.value for c in at.caption)
    codes = [c.value for c in at.code]
    assert any(c.startswith("python -m mmoe train --data") and " --stream " in c for c in codes)
    at.checkbox(key="train.auto_schedule").uncheck().run()
    at.number_input(key="train.epochs").set_value(2).run()
    at.button(key="train.go").click().run()
    assert not at.exception, at.exception
    jobs = process_manager.jobs()
    poll(at, lambda: all(j.done for j in jobs), 90, jobs=jobs)
    p = jobs[0].snapshot()
    assert p.status == "finished", (p.error, p.message)
    rec = RunStore(mmoe_home).get_run(p.run_id)
    assert rec.data_summary["rows"] == 3000 and rec.data_summary["streamed"]["blocks"] == 1
    assert server_file.KEY_PREFIX == "path:"
