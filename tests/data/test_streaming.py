"""Streamed tables (``--stream``): blocks read with pyarrow, the preprocessing fitted in one pass equal to
the in-memory fit on the same rows, a cache written once and reused, bad input located by row and line,
nothing half-written, and a run trained from the cache end to end."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from frames import make_tiny_frame
from mmoe.config import DataConfig, TaskSpec
from mmoe.data import DataError, Preprocessor, read_csv, select_features
from mmoe.data import stream_cache, streaming
from mmoe.data.stream_cache import prepare_streamed
from mmoe.data.streaming import SPLIT_CODES, row_splits

TASKS = (TaskSpec("click", "binary", positive="yes"), TaskSpec("score", "regression"), TaskSpec("kind", "multiclass"))
CONFIG = DataConfig(tasks=TASKS, val_fraction=0.2, test_fraction=0.1, seed=3)


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of a few hundred rows, so a small file has many (pyarrow's and the cache's), and a head of 500
    rows deciding the column kinds, as 50,000 do in a large file."""
    monkeypatch.setattr(streaming, "HEAD_ROWS", 500)
    monkeypatch.setattr(streaming, "READ_BLOCK_BYTES", 16 << 10)
    monkeypatch.setattr(streaming, "BLOCK_ROWS", 256)
    monkeypatch.setattr(stream_cache, "BLOCK_ROWS", 256)


def _table(tmp_path, n=3000):
    df = make_tiny_frame(n)
    df.loc[df.index[::37], "a"] = np.nan                 # missing values: an indicator column
    df.loc[df.index[::53], "score"] = np.nan             # a missing target: masked
    path = tmp_path / "t.csv"
    df.to_csv(path, index=False)
    return path


def test_the_split_is_a_seeded_function_of_the_row_number():
    rows = np.arange(200_000)
    a = row_splits(rows, CONFIG)
    assert (row_splits(rows[1000:2000], CONFIG) == a[1000:2000]).all()        # any block, any order
    share = np.bincount(a, minlength=3) / len(rows)
    assert share[SPLIT_CODES["val"]] == pytest.approx(0.2, abs=0.005)
    assert share[SPLIT_CODES["test"]] == pytest.approx(0.1, abs=0.005)
    assert (row_splits(rows, DataConfig(tasks=TASKS, seed=4)) != a).any()


def test_one_streaming_pass_fits_what_memory_fits_on_the_same_rows(tmp_path, small_blocks):
    path = _table(tmp_path)
    data = prepare_streamed(path, CONFIG, tmp_path / "cache")
    assert data.n_blocks > 10
    df = read_csv(path)
    num, cat, ign = select_features(df, CONFIG)
    sp = row_splits(np.arange(len(df)), CONFIG)
    want = Preprocessor.fit(df, tasks=TASKS, numeric_columns=num, categorical_columns=cat,
                            train_rows=np.flatnonzero(sp == 0), ignored=ign)
    got = data.preprocessor
    assert got.numeric_columns == want.numeric_columns and got.indicator_columns == want.indicator_columns == ["a"]
    np.testing.assert_allclose(got.num_mean, want.num_mean, rtol=1e-12)
    np.testing.assert_allclose(got.num_std, want.num_std, rtol=1e-12)
    assert got.vocab == want.vocab
    for name, enc in want.targets.items():
        g, w = got.targets[name].to_dict(), enc.to_dict()
        assert (g.pop("mean"), g.pop("std")) == pytest.approx((w.pop("mean"), w.pop("std")), rel=1e-12)
        assert g == w
    assert data.split_counts == {k: int((sp == c).sum()) for k, c in SPLIT_CODES.items()}
    # the cached blocks are the in-memory transform of the same rows
    x_num, x_cat = want.transform_features(df)
    y, mask = want.transform_targets(df)
    blocks = [data.block(b) for b in range(data.n_blocks)]
    np.testing.assert_allclose(np.concatenate([b["x_num"].numpy() for b in blocks]), x_num.numpy(), rtol=1e-6)
    assert (np.concatenate([b["x_cat"].numpy() for b in blocks]) == x_cat.numpy()).all()
    assert (np.concatenate([b["split"] for b in blocks]) == sp).all()
    for t in TASKS:
        m = np.concatenate([b["mask"][t.column].numpy() for b in blocks])
        assert (m == mask[t.column].numpy()).all()
        np.testing.assert_allclose(np.concatenate([b["y"][t.column].numpy() for b in blocks])[m],
                                   y[t.column].numpy()[m], rtol=1e-6)
    sample = data.sample()
    assert (row_splits(sample["_row"].to_numpy(), CONFIG) == SPLIT_CODES["val"]).all()


def test_parquet_file_and_folder_give_the_same_cache_contents(tmp_path, small_blocks):
    df = pd.read_csv(_table(tmp_path))
    (tmp_path / "parts").mkdir()
    df.iloc[:1700].to_parquet(tmp_path / "parts" / "a.parquet", index=False)
    df.iloc[1700:].to_parquet(tmp_path / "parts" / "b.parquet", index=False)
    df.to_parquet(tmp_path / "t.parquet", index=False)
    one = prepare_streamed(tmp_path / "t.parquet", CONFIG, tmp_path / "cache")
    many = prepare_streamed(tmp_path / "parts", CONFIG, tmp_path / "cache")
    assert one.folder != many.folder and one.split_counts == many.split_counts
    a, b = one.preprocessor, many.preprocessor
    assert a.vocab == b.vocab and a.indicator_columns == b.indicator_columns
    np.testing.assert_allclose(a.num_mean, b.num_mean, rtol=1e-12)     # blocks cut elsewhere: float sums
    np.testing.assert_allclose(a.num_std, b.num_std, rtol=1e-12)
    xa = np.concatenate([one.block(i)["x_num"].numpy() for i in range(one.n_blocks)])
    xb = np.concatenate([many.block(i)["x_num"].numpy() for i in range(many.n_blocks)])
    np.testing.assert_allclose(xa, xb, rtol=1e-6)


def test_the_cache_is_reused_for_the_same_file_and_settings_only(tmp_path):
    path = _table(tmp_path)
    first = prepare_streamed(path, CONFIG, tmp_path / "cache")
    stamp = (first.folder / "manifest.json").stat().st_mtime_ns
    again = prepare_streamed(path, CONFIG, tmp_path / "cache")
    assert again.folder == first.folder and (again.folder / "manifest.json").stat().st_mtime_ns == stamp
    other = prepare_streamed(path, DataConfig(tasks=TASKS, seed=9), tmp_path / "cache")
    assert other.folder != first.folder
    path.write_text(path.read_text() + "0.1,0.2,red,yes,1.0,lo\n")      # the file changed: a new cache
    assert prepare_streamed(path, CONFIG, tmp_path / "cache").folder != first.folder


@pytest.mark.parametrize("column,value,message", [
    ("a", "oops", r"numeric column 'a' has the text 'oops' in row 2,500 \(line 2,501 of t.csv\)"),
    ("score", "n/a?", r"target column 'score' must be numeric for regression, but row 2,500 \(line 2,501 of t.csv\) "
                      r"has 'n/a\?'"),
])
def test_bad_input_deep_inside_is_located_and_nothing_is_left(tmp_path, small_blocks, column, value, message):
    df = make_tiny_frame(3000)
    df[column] = df[column].astype(object)
    df.loc[2499, column] = value
    path = tmp_path / "t.csv"
    df.to_csv(path, index=False)
    with pytest.raises(DataError, match=message):
        prepare_streamed(path, CONFIG, tmp_path / "cache")
    assert not list((tmp_path / "cache").iterdir())


def test_a_failure_while_writing_leaves_no_cache(tmp_path, monkeypatch):
    path = _table(tmp_path)

    def boom(*a, **k):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(stream_cache, "_write", boom)
    with pytest.raises(OSError):
        prepare_streamed(path, CONFIG, tmp_path / "cache")
    assert not list((tmp_path / "cache").iterdir())
    import os
    import time

    old, fresh = tmp_path / "cache" / ".tmp-killed", tmp_path / "cache" / ".tmp-being-written"
    old.mkdir()
    fresh.mkdir()
    os.utime(old, (time.time() - 2 * streaming.STALE_SECONDS,) * 2)   # a killed preparation's, an hour ago
    monkeypatch.undo()
    prepare_streamed(path, CONFIG, tmp_path / "cache")
    assert not old.exists() and fresh.exists()        # another process's preparation in progress is left alone


def test_train_stream_end_to_end_from_the_command_line(tmp_path, small_blocks, capsys):
    from mmoe.cli import main
    from mmoe.runs.store import RunStore

    path = _table(tmp_path)
    args = ["train", "--data", str(path), "--task", "click:binary=yes", "--task", "score:regression",
            "--task", "kind:multiclass", "--stream", "--test-fraction", "0.1", "--epochs", "3", "--batch-size", "64",
            "--store",
            str(tmp_path / "runs"), "--json", "--quiet", "--precision", "fp32", "--seed", "3"]
    runs = []
    for _ in range(2):
        assert main(args) == 0
        runs.append(json.loads(capsys.readouterr().out.strip().splitlines()[-1]))
    assert runs[0]["metrics"] == runs[1]["metrics"]                 # one seed, one result, streamed too
    assert runs[0]["metrics"]["click"]["auc"] > 0.9 and runs[0]["metrics"]["kind"]["accuracy"] > 0.8
    store = RunStore(tmp_path / "runs")
    rec = store.get_run(runs[0]["run_id"])
    assert rec.data_summary["streamed"]["blocks"] > 10 and rec.data_summary["splits"]["test"] > 0
    preds = store.load_frame(rec.id, "predictions.parquet")
    assert (preds["_split"] == "val").all() and len(preds) == rec.data_summary["splits"]["val"]
    assert len(list((tmp_path / "runs" / "cache").iterdir())) == 1   # the second run reused the cache
    out = tmp_path / "scored.csv"
    assert main(["predict", "--run", str(rec.id), "--data", str(path), "--out", str(out),
                 "--store", str(tmp_path / "runs")]) == 0
    scored = pd.read_csv(out).iloc[preds["_row"].to_numpy()]
    np.testing.assert_allclose(scored["pred:click"].to_numpy(), preds["pred:click"].to_numpy(), rtol=1e-4)


def test_a_table_of_numbers_only_streams_too(tmp_path, small_blocks, capsys):
    """No categorical column: the cache holds an empty x_cat and training runs (the fused step)."""
    from mmoe.cli import main

    df = make_tiny_frame(2000).drop(columns=["color", "kind"])
    df.to_csv(tmp_path / "n.csv", index=False)
    assert main(["train", "--data", str(tmp_path / "n.csv"), "--task", "click:binary=yes", "--task",
                 "score:regression", "--stream", "--epochs", "2", "--store", str(tmp_path / "runs"), "--json",
                 "--quiet"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["status"] == "finished" and out["metrics"]["score"]["r2"] > 0.5


def test_an_experiment_refuses_streamed_data_with_a_clear_message(tmp_path, capsys):
    from mmoe.cli import main

    path = _table(tmp_path, 300)
    code = main(["experiment", "--data", str(path), "--task", "click:binary=yes", "--stream", "--grid",
                 "arch=mmoe,omoe", "--seeds", "2", "--store", str(tmp_path / "runs")])
    assert code == 2 and "--stream (and Parquet data) is not supported yet" in capsys.readouterr().err


def test_a_cancel_during_preparation_stops_between_blocks_and_keeps_nothing(tmp_path, small_blocks):
    """The cancel event is checked between blocks of both passes: the run is not created, no cache is left,
    and the job's summary says so (the dashboard's Cancel on a large file)."""
    import threading

    from mmoe.config import ModelConfig, TrainConfig
    from mmoe.runs.runner import DataSource, run_training
    from mmoe.runs.store import RunStore

    path = _table(tmp_path)
    calls = {"n": 0}
    original = streaming.StreamSource.blocks

    def counting(self, columns):
        for block in original(self, columns):
            calls["n"] += 1
            if calls["n"] == 5:
                cancel.set()
            yield block
    cancel = threading.Event()
    streaming.StreamSource.blocks = counting
    try:
        store = RunStore(tmp_path / "runs")
        s = run_training(DataSource(path, CONFIG, stream=True), ModelConfig(num_experts=2, expert_hidden=(8,)),
                         TrainConfig(epochs=1), store=store, cancel_event=cancel)
    finally:
        streaming.StreamSource.blocks = original
    assert s.status == "cancelled" and s.run_id is None and "no run was created" in s.stop_reason
    assert calls["n"] == 5 and store.list_runs() == []
    assert not list((tmp_path / "runs" / "cache").iterdir())
