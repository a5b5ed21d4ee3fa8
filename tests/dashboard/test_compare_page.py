"""Compare page (AppTest): the runs table filters and selects; selected runs get curves,
settings, highlighted metrics and gates side by side; runs can be renamed and deleted."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from mmoe.config import DataConfig, ModelConfig, TrainConfig
from mmoe.runs.predictions import rows_of_split
from mmoe.runs.runner import DataSource, run_training
from mmoe.runs.store import RunStore

from helpers import (HIGHER_IS_BETTER, TASKS, COMPARE_PAGE, best_rows, chart, curve_key, figure, headers, highlighted,
                     make_frame, select_rows, shown, table, task_of, w)

PAGE = COMPARE_PAGE
SEED = 0
CLICK, SCORE, KIND = "click (binary=yes)", "score (regression)", "kind (multiclass)"   # TASKS, as Compare names them
DIAGNOSTICS = {"gate_entropy"}          # written out here, not imported: no direction, never "best"


def make_runs(home: Path) -> dict[str, int]:
    store = RunStore(home)
    df = make_frame()
    dc = DataConfig(tasks=TASKS)
    ids = {}
    for arch, lr in (("mmoe", 1e-3), ("omoe", 1e-3), ("shared-bottom", 3e-3)):
        mc = ModelConfig(arch=arch, num_experts=3, expert_hidden=(8,), tower_hidden=(4,))
        s = run_training(DataSource(df, dc), mc, TrainConfig(epochs=2, batch_size=64, lr=lr, device="cpu", seed=SEED),
                         store=store, name=f"{arch}-run", dataset="tiny.csv")
        assert s.status == "finished", s.message
        ids[arch] = s.run_id
    rid = store.create_run("failed-run", dataset="other.csv", data_config=dc.to_dict(),
                           model_config=ModelConfig().to_dict(), train_config=TrainConfig().to_dict())
    store.set_status(rid, "running")
    store.finish(rid, "failed", final_metrics={}, epochs=0, train_seconds=0.0, samples_per_second=0.0,
                 error="RuntimeError: boom")
    ids["failed"] = rid
    store.close()
    return ids


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    home = tmp_path_factory.mktemp("compare") / "runs"
    return home, make_runs(home)


@pytest.fixture
def page(built, tmp_path, monkeypatch):
    """A private copy of the store per test (rename/delete change it)."""
    src, ids = built
    home = tmp_path / "runs"
    shutil.copytree(src, home)
    monkeypatch.setenv("MMOE_HOME", str(home))

    def open_page(**state) -> AppTest:
        at = AppTest.from_file(PAGE, default_timeout=60)
        for k, v in state.items():
            at.session_state[k] = v
        at.run()
        assert not at.exception, at.exception
        return at
    return open_page, ids, home


def stored_value(rec, task: str, metric: str) -> float:
    return float((rec.final_metrics or {}).get(task, {}).get(metric, np.nan))


def val_trace(fig: dict, label: str, split: str = "validation") -> dict:
    got = [t for t in fig["data"] if t.get("hovertemplate", "").startswith(f"{label} ({split})")]
    assert len(got) == 1, (label, split, [t.get("hovertemplate", "")[:40] for t in fig["data"]])
    return got[0]


def test_table_lists_all_runs_with_their_stored_metrics(page):
    open_page, ids, home = page
    at = open_page()
    t = table(at)
    assert sorted(t["id"]) == sorted(ids.values())
    assert {"name", "status", "dataset", "arch", CLICK + " · auc", SCORE + " · rmse", KIND + " · accuracy",
            "train s", "created"} <= set(t.columns)
    # each task's primary metric comes right after the status, so it is on screen without scrolling
    assert list(t.columns)[:6] == ["id", "name", "status", CLICK + " · auc", SCORE + " · rmse", KIND + " · accuracy"]
    assert any("Tick one or more runs" in i.value for i in at.info)
    store = RunStore(home)
    for row in t.to_dict("records"):
        rec = store.get_run(int(row["id"]))
        assert (row["name"], row["status"], row["arch"], row["dataset"]) == (rec.name, rec.status, rec.arch,
                                                                              rec.dataset)
        for col in (CLICK + " · auc", SCORE + " · rmse", KIND + " · accuracy"):
            want = stored_value(rec, task_of(col), col.split(" · ")[-1])
            assert (np.isnan(want) and pd.isna(row[col])) or row[col] == pytest.approx(want, rel=1e-9), (rec.id, col)
        # a Shared-Bottom run has no experts (its config's num_experts is unused)
        experts = None if rec.arch == "shared-bottom" else rec.model_config["num_experts"]
        assert pd.isna(row["experts"]) if experts is None else row["experts"] == experts, rec.id
    store.close()


def test_filters_and_sort(page):
    open_page, ids, _ = page
    at = open_page()
    at.multiselect(key="compare.f_status").set_value(["failed"]).run()
    assert list(table(at)["id"]) == [ids["failed"]]
    at.multiselect(key="compare.f_status").set_value([]).run()
    at.text_input(key="compare.f_text").set_value("OMOE").run()
    assert list(table(at)["id"]) == [ids["omoe"]]
    at.text_input(key="compare.f_text").set_value("").run()
    at.multiselect(key="compare.f_arch").set_value(["mmoe", "shared-bottom"]).run()
    assert set(table(at)["arch"]) == {"mmoe", "shared-bottom"}
    at.multiselect(key="compare.f_arch").set_value([]).run()
    at.multiselect(key="compare.f_dataset").set_value(["other.csv"]).run()
    assert list(table(at)["id"]) == [ids["failed"]]
    at.multiselect(key="compare.f_dataset").set_value([]).run()
    at.selectbox(key="compare.sort").set_value(CLICK + " · auc").run()
    at.toggle(key="compare.desc").set_value(False).run()
    aucs = table(at)[CLICK + " · auc"].dropna().tolist()
    assert aucs == sorted(aucs) and pd.isna(table(at)[CLICK + " · auc"].iloc[-1])   # NaN last
    assert not at.exception


def test_selecting_runs_shows_comparisons(page):
    open_page, ids, home = page
    at = open_page()
    chosen = [ids["mmoe"], ids["omoe"], ids["shared-bottom"]]
    at = select_rows(at, chosen)
    assert sorted(at.session_state["mmoe.compare_runs"]) == sorted(chosen)
    assert sorted(at.multiselect(key=w(at, "compare.pick")).value) == sorted(chosen)
    assert [h.value for h in at.header][:2] == ["Curves", "Gates"]
    charts = at.get("plotly_chart")
    # 3 curve charts (one per task) + per gated run: utilisation + heatmap (shared-bottom: none)
    assert len(charts) == 3 + 2 * 2
    assert any("Shared-Bottom: no gates" in i.value for i in at.info)
    metrics = at.dataframe[1]
    assert list(metrics.value.index) == [f"#{i} {n}-run" for i, n in
                                         sorted(((ids[a], a) for a in ("mmoe", "omoe", "shared-bottom")), reverse=True)]
    # the main table: each task's primary metric only, with its direction; the rest in "All final metrics"
    assert list(metrics.value.columns) == [CLICK + " · auc", SCORE + " · rmse", KIND + " · accuracy"]
    assert list(headers(metrics).values()) == [CLICK + " · auc ↑", SCORE + " · rmse ↓", KIND + " · accuracy ↑"]
    assert any(e.label.startswith("All final metrics") for e in at.expander)
    m = at.dataframe[2].value
    assert CLICK + " · logloss" in m.columns and CLICK + " · loss" not in m.columns   # the loss *is* the log loss
    assert SCORE + " · loss (MSE, standardised target)" in m.columns                   # regression keeps it, named
    sb = f"#{ids['shared-bottom']} shared-bottom-run"
    assert m[CLICK + " · gate_entropy"].dtype == np.float64 and np.isnan(m.loc[sb, CLICK + " · gate_entropy"])
    assert not at.text                                     # every task is the same kind in every run: no note
    # no table shows the word "None" for a missing value
    assert all(d.proto.placeholder == "—" for d in at.dataframe)
    # what is drawn is what is stored: validation loss curves, gate weights per sample, utilisation
    store = RunStore(home)
    tops = []
    for arch in ("mmoe", "omoe", "shared-bottom"):
        rec = store.get_run(ids[arch])
        hist = store.history(rec.id)
        for task, group in (("click", CLICK), ("score", SCORE), ("kind", KIND)):
            want = hist[(hist.task == task) & (hist.split == "val") & (hist.metric == "loss")].sort_values("epoch")
            got = val_trace(figure(chart(at, curve_key(group))), f"#{rec.id} {rec.name}")
            assert list(got["x"]) == want["epoch"].tolist()
            np.testing.assert_allclose(np.asarray(got["y"], float), want["value"].to_numpy(), rtol=1e-9)
        if arch == "shared-bottom":
            continue
        frame = rows_of_split(store.load_frame(rec.id, "predictions.parquet"), "val")   # what a run is judged on
        heat = figure(chart(at, f"compare.heat.{rec.id}"))["data"][0]
        stored_gates = frame[[f"gate:click:{e}" for e in heat["x"]]].to_numpy(float)   # the first task's
        z = np.asarray(heat["z"], float)
        assert z.shape == stored_gates.shape                      # 40 rows <= HEATMAP_ROWS: all drawn
        np.testing.assert_allclose(np.unique(z.round(6), axis=0), np.unique(stored_gates.round(6), axis=0))
        assert (np.diff(z.argmax(1)) >= 0).all(), "sorted by dominant expert"
        tops.append((heat["zmax"], z.max()))
        for bar in figure(chart(at, f"compare.util.{rec.id}"))["data"]:
            if bar["type"] != "bar":
                continue
            g = frame[[f"gate:{bar['name']}:{e}" for e in bar["x"]]].to_numpy(float)
            np.testing.assert_allclose(np.asarray(bar["y"], float), g.mean(0), rtol=1e-6)
    # the heatmaps side by side share one colour scale: its top is the largest weight any of them draws
    assert len({t for t, _ in tops}) == 1 and tops[0][0] == pytest.approx(max(m for _, m in tops))
    store.close()


def test_the_best_run_is_highlighted_per_metric_in_the_right_direction(page):
    """The final-metrics table shows the stored values and highlights, per column, the run with the
    highest value where higher is better and the lowest where lower is better (ties all count)."""
    open_page, ids, home = page
    at = open_page()
    chosen = [ids["mmoe"], ids["omoe"], ids["shared-bottom"]]
    at = select_rows(at, chosen)
    store = RunStore(home)
    recs = {f"#{i} {store.get_run(i).name}": store.get_run(i) for i in chosen}
    store.close()
    for m in (at.dataframe[1], at.dataframe[2]):            # the main table and "All final metrics"
        df = m.value
        expected, directions = set(), set()
        for col in df.columns:
            task, metric = task_of(col), col.split(" · ")[-1].split(" ")[0]   # "loss (MSE, ...)" -> "loss"
            for label, rec in recs.items():                 # the table holds the stored values
                want = stored_value(rec, task, metric)
                assert (np.isnan(want) and np.isnan(df.at[label, col])) or df.at[label, col] == pytest.approx(want), \
                    (label, col)
            if metric in DIAGNOSTICS:                       # gate entropy is no score: never "best"
                continue
            if df[col].notna().any():
                best = best_rows(df[col], metric)
                expected |= {(label, col) for label in best}
                if df[col].nunique() > 1:
                    directions.add("max" if metric in HIGHER_IS_BETTER else "min")
        assert highlighted(m) == expected
        # the fixture's runs differ on metrics of both directions, so a flipped direction shows here
        assert directions == {"max", "min"}
        rmse = df[SCORE + " · rmse"]                        # lower is better: the smallest RMSE is marked
        assert rmse.nunique() == 3 and {c for c in highlighted(m) if c[1] == SCORE + " · rmse"} == {
            (rmse.idxmin(), SCORE + " · rmse")}
    full = at.dataframe[2]
    entropy = [c for c in full.value.columns if c.endswith("gate_entropy")]
    assert len(entropy) == 3 and full.value[entropy].notna().sum().min() == 2   # two gated runs to compare ...
    assert not {c for c in highlighted(full) if c[1] in entropy}                 # ... and neither is "best"
    assert all("diagnostic" in headers(full)[c] and "↑" not in headers(full)[c] for c in entropy)


def test_settings_differences_only_toggle(page):
    open_page, ids, _ = page
    at = open_page()
    at = select_rows(at, [ids["mmoe"], ids["shared-bottom"]])
    diff = at.dataframe[3].value
    assert "model.arch" in diff.index and "train.lr" in diff.index and "train.epochs" not in diff.index
    at.toggle(key="compare.diff_only").set_value(False).run()
    full = at.dataframe[3].value
    assert "train.epochs" in full.index and len(full) > len(diff)


def debiased_ema(v, a: float) -> np.ndarray:
    """TensorBoard-style smoothing, as the page's slider help says: EMA divided by its weight."""
    out, acc, w = [], 0.0, 0.0
    for x in v:
        acc, w = a * acc + (1 - a) * x, a * w + (1 - a)
        out.append(acc / w)
    return np.asarray(out)


def test_curve_controls(page):
    open_page, ids, home = page
    at = open_page()
    at = select_rows(at, [ids["mmoe"], ids["omoe"]])
    store = RunStore(home)
    rec = store.get_run(ids["mmoe"])
    hist = store.history(rec.id)
    store.close()
    label = f"#{rec.id} {rec.name}"

    def stored(metric: str, split: str) -> np.ndarray:
        h = hist[(hist.task == "click") & (hist.split == split) & (hist.metric == metric)]
        return h.sort_values("epoch")["value"].to_numpy()

    at.slider(key="compare.smooth").set_value(0.5).run()
    fig = figure(chart(at, curve_key(CLICK)))
    np.testing.assert_allclose(np.asarray(val_trace(fig, label)["y"], float), debiased_ema(stored("loss", "val"), 0.5))
    np.testing.assert_allclose(np.asarray(val_trace(fig, label, "training")["y"], float),
                               debiased_ema(stored("loss", "train"), 0.5))
    at.toggle(key="compare.train_curves").set_value(False).run()
    fig = figure(chart(at, curve_key(CLICK)))
    assert not [t for t in fig["data"] if "(train)" in t.get("hovertemplate", "")]
    at.selectbox(key="compare.metric").set_value("gate_entropy").run()
    assert not at.exception
    fig = figure(chart(at, curve_key(CLICK)))
    np.testing.assert_allclose(np.asarray(val_trace(fig, label)["y"], float),
                               debiased_ema(stored("gate_entropy", "val"), 0.5))


def test_run_colours_differ_within_a_comparison_and_follow_the_run_across_charts(page):
    from mmoe_dashboard import charts
    many = charts.run_colors([23, 3, 13, 40, 1, 2, 5, 7, 8, 9])          # ids a colour-by-id-mod-10 would merge
    assert len(set(many.values())) == 10
    assert charts.run_colors([3, 13]) == {3: charts.RUN_PALETTE[3], 13: charts.RUN_PALETTE[4]}
    # a run keeps its colour whatever else is compared, unless another compared run has it
    assert charts.run_colors([3, 5]) == {3: charts.RUN_PALETTE[3], 5: charts.RUN_PALETTE[5]}
    assert charts.run_colors([1, 3, 5, 7])[5] == charts.run_colors([5, 8])[5] == charts.RUN_PALETTE[5]
    open_page, ids, _ = page
    at = open_page()
    at = select_rows(at, [ids["mmoe"], ids["omoe"]])
    colors = charts.run_colors([ids["mmoe"], ids["omoe"]])
    for c in at.get("plotly_chart")[:3]:                    # the curve charts: each run in its colour
        spec = c.proto.spec
        assert colors[ids["mmoe"]] in spec and colors[ids["omoe"]] in spec
    swatches = " ".join(m.value for m in at.markdown)
    assert colors[ids["mmoe"]] in swatches and colors[ids["omoe"]] in swatches
    assert f"<b>#{ids['mmoe']} mmoe-run</b> · mmoe · finished" in swatches    # no Markdown escapes in HTML


def test_a_run_name_is_shown_as_text_over_its_gates(page):
    open_page, ids, home = page
    RunStore(home).rename(ids["mmoe"], "<i>x</i> *y* \\#")
    at = select_rows(open_page(), [ids["mmoe"]])
    swatch = next(m.value for m in at.markdown if "min-height" in m.value)
    assert f"<b>#{ids['mmoe']} &lt;i&gt;x&lt;/i&gt; *y* \\#</b>" in swatch and "<i>" not in swatch


def test_selection_from_session_state_and_multiselect(page):
    open_page, ids, _ = page
    at = open_page(**{"mmoe.compare_runs": [ids["omoe"]]})
    assert at.multiselect(key=w(at, "compare.pick")).value == [ids["omoe"]]
    at.multiselect(key=w(at, "compare.pick")).set_value([ids["mmoe"], ids["failed"]]).run()
    assert not at.exception
    assert sorted(at.session_state["mmoe.compare_runs"]) == sorted([ids["mmoe"], ids["failed"]])
    assert any("No stored predictions" in i.value for i in at.info)


def test_a_selection_survives_filtering(page):
    open_page, ids, _ = page
    at = open_page()
    at = select_rows(at, [ids["mmoe"], ids["omoe"]])
    at.text_input(key="compare.f_text").set_value("omoe").run()
    assert sorted(at.session_state["mmoe.compare_runs"]) == sorted([ids["mmoe"], ids["omoe"]])
    assert any("hidden by the filters" in c.value for c in at.caption)


def test_the_manage_boxes_start_empty_and_wait_for_a_choice(page):
    open_page, ids, home = page
    at = select_rows(open_page(), [ids["mmoe"], ids["omoe"]])         # ticked runs choose nothing here
    at.text_input(key="compare.rename_to").set_value("new-name").run()
    for base, button in (("compare.rename_run", "compare.rename_btn"), ("compare.delete_run", "compare.delete_btn"),
                         ("compare.again_run", "compare.again")):
        assert at.selectbox(key=w(at, base)).value is None, base
        assert at.button(key=button).disabled, button
    assert {r.name for r in RunStore(home).list_runs()} == {"mmoe-run", "omoe-run", "shared-bottom-run", "failed-run"}
    at.selectbox(key=w(at, "compare.rename_run")).set_value(ids["mmoe"]).run()
    assert not at.button(key="compare.rename_btn").disabled


def test_rename(page):
    open_page, ids, home = page
    at = open_page()
    at.selectbox(key=w(at, "compare.rename_run")).set_value(ids["omoe"])
    at.text_input(key="compare.rename_to").set_value("  gate-shared  ").run()
    at.button(key="compare.rename_btn").click().run()
    assert not at.exception
    assert at.success and "gate-shared" in shown(at.success[0].value)
    assert RunStore(home).get_run(ids["omoe"]).name == "gate-shared"
    assert "gate-shared" in set(table(at)["name"])


def test_rename_updates_every_widget_label_and_keeps_the_selection(page):
    open_page, ids, _ = page
    at = open_page()
    chosen = [ids["mmoe"], ids["omoe"], ids["shared-bottom"]]
    at = select_rows(at, chosen)
    old_pick, old_rename = w(at, "compare.pick"), w(at, "compare.rename_run")
    at.selectbox(key=old_rename).set_value(ids["omoe"])
    at.text_input(key="compare.rename_to").set_value("renamed-omoe").run()
    at.button(key="compare.rename_btn").click().run()
    assert not at.exception
    # the widgets got new keys (so the browser rebuilds them with the new labels) ...
    assert w(at, "compare.pick") != old_pick and w(at, "compare.rename_run") != old_rename
    assert old_pick not in at.session_state and old_rename not in at.session_state
    pick = at.multiselect(key=w(at, "compare.pick"))
    assert any("renamed-omoe" in o for o in pick.options) and not any("omoe-run" in o for o in pick.options)
    ren = at.selectbox(key=w(at, "compare.rename_run"))
    assert any("renamed-omoe" in o for o in ren.options)
    assert any("renamed-omoe" in o for o in at.selectbox(key=w(at, "compare.delete_run")).options)
    # ... and kept their values
    assert sorted(pick.value) == sorted(chosen)
    assert ren.value == ids["omoe"]
    assert sorted(at.session_state["mmoe.compare_runs"]) == sorted(chosen)


def test_selection_survives_rename_then_delete(page):
    open_page, ids, home = page
    at = open_page()
    chosen = [ids["mmoe"], ids["omoe"], ids["shared-bottom"]]
    at = select_rows(at, chosen)
    at.selectbox(key=w(at, "compare.rename_run")).set_value(ids["omoe"])
    at.text_input(key="compare.rename_to").set_value("renamed-omoe").run()
    at.button(key="compare.rename_btn").click().run()
    at.selectbox(key=w(at, "compare.delete_run")).set_value(ids["shared-bottom"]).run()
    at.button(key="compare.delete_btn").click().run()
    at.button(key="compare.delete_yes").click().run()
    assert not at.exception
    assert not RunStore(home).exists(ids["shared-bottom"])
    left = sorted([ids["mmoe"], ids["omoe"]], reverse=True)
    assert at.session_state["mmoe.compare_runs"] == left
    assert sorted(at.multiselect(key=w(at, "compare.pick")).value, reverse=True) == left
    assert at.query_params["runs"] == ",".join(map(str, left))
    # the new table (its key changed with the shown ids) ticks the surviving runs; one more rerun keeps them
    at.run()
    assert at.session_state["mmoe.compare_runs"] == left
    names = {ids["mmoe"]: "mmoe-run", ids["omoe"]: "renamed-omoe"}
    assert list(at.dataframe[1].value.index) == [f"#{i} {names[i]}" for i in left]


def test_delete_needs_confirmation(page):
    open_page, ids, home = page
    at = open_page()
    at.selectbox(key=w(at, "compare.delete_run")).set_value(ids["failed"]).run()
    at.button(key="compare.delete_btn").click().run()
    assert at.warning and "cannot be undone" in at.warning[0].value
    assert RunStore(home).exists(ids["failed"])
    at.button(key="compare.delete_no").click().run()
    assert not at.warning and RunStore(home).exists(ids["failed"])
    at.button(key="compare.delete_btn").click().run()
    at.button(key="compare.delete_yes").click().run()
    assert not at.exception
    assert at.success and "Deleted run" in at.success[0].value
    assert not RunStore(home).exists(ids["failed"])
    assert ids["failed"] not in set(table(at)["id"])


def test_deleting_a_running_run_is_refused(page):
    open_page, ids, home = page
    store = RunStore(home)
    rid = store.create_run("busy", dataset="tiny.csv", data_config=DataConfig(tasks=TASKS).to_dict(),
                           model_config=ModelConfig().to_dict(), train_config=TrainConfig().to_dict(),
                           status="running")
    at = open_page()
    at.selectbox(key=w(at, "compare.delete_run")).set_value(rid).run()
    at.button(key="compare.delete_btn").click().run()
    at.button(key="compare.delete_yes").click().run()
    assert not at.exception
    assert at.error and "running" in at.error[0].value and "cancel it" in at.error[0].value
    assert store.exists(rid)
