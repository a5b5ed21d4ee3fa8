"""mmoe.views (analysis): the computations behind the Inspect and Compare pages."""
from __future__ import annotations

import io
import math
import zipfile
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from mmoe import views as A


def _gates(n: int, e: int, seed: int = 0, collapse: int | None = None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    g = rng.dirichlet(np.ones(e), size=n)
    if collapse is not None:
        g[:] = 0.0
        g[:, collapse] = 1.0
    return g


def _frame(n: int = 300, e: int = 4, seed: int = 0) -> pd.DataFrame:
    """A predictions frame like mmoe.runs.predictions.decorate_predictions makes: binary, regression, multiclass."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n).astype(float)
    p = np.clip(0.3 * y + 0.35 + 0.2 * rng.normal(size=n), 0.001, 0.999)
    yr = rng.normal(size=n)
    cls = rng.integers(0, 3, n)
    probs = rng.dirichlet(np.ones(3), size=n)
    probs[np.arange(n), cls] += 1.0
    probs /= probs.sum(1, keepdims=True)
    df = pd.DataFrame({"_row": np.arange(n) * 2 + 1, "a": rng.normal(size=n), "color": rng.choice(["r", "g"], n),
                       "click": y, "_split": "val", "pred:click": p, "target:click": y,
                       "pred:score": yr + 0.1 * rng.normal(size=n), "target:score": yr,
                       "pred:kind": np.array(["hi", "lo", "mid"], dtype=object)[probs.argmax(1)],
                       "target:kind": cls.astype(float)})
    for c, lab in enumerate(["hi", "lo", "mid"]):
        df[f"prob:kind:{lab}"] = probs[:, c]
    for t, task in enumerate(["click", "score", "kind"]):
        g = _gates(n, e, seed + t)
        for i in range(e):
            df[f"gate:{task}:e{i}"] = g[:, i]
    return df


# ----------------------------------------------------------------------------- gates

def test_gate_columns_are_ordered_by_expert_number():
    df = pd.DataFrame({f"gate:t:e{i}": [1.0 / 12] for i in (10, 2, 0, 11, 1, 3, 4, 5, 6, 7, 8, 9)})
    assert A.gate_columns(df, "t") == [f"gate:t:e{i}" for i in range(12)]
    assert A.gate_matrix(df, "t").shape == (1, 12)


def test_gate_tasks_and_task_names_with_colons():
    df = pd.DataFrame({"gate:a:b:e0": [1.0], "gate:x:e0": [1.0], "pred:x": [0.2]})
    assert A.gate_tasks(df) == ["a:b", "x"]
    assert A.gate_columns(df, "a:b") == ["gate:a:b:e0"]


def test_no_gates_gives_none_and_empty_results():
    df = _frame().drop(columns=[c for c in _frame().columns if c.startswith("gate:")])
    assert not A.has_gates(df) and not A.has_gates(None)
    assert A.gate_matrix(df, "click") is None
    assert A.utilisation(df).empty
    assert A.task_gate_similarity(df).empty


def test_order_and_sample_sorts_by_dominant_expert_then_weight():
    g = _gates(500, 5)
    pos = A.order_and_sample(g, max_rows=10_000)
    assert sorted(pos) == list(range(500))       # small data: every row, once
    dom = g[pos].argmax(1)
    assert (np.diff(dom) >= 0).all()
    for e in np.unique(dom):
        w = g[pos][dom == e, e]
        assert (np.diff(w) <= 1e-12).all()       # largest weight first within a group


def test_order_and_sample_is_stratified_and_bounded():
    rng = np.random.default_rng(1)
    n = 20_000
    g = np.full((n, 4), 0.1)
    dom = rng.choice(4, size=n, p=[0.7, 0.2, 0.0995, 0.0005])
    g[np.arange(n), dom] = 0.7
    pos = A.order_and_sample(g, max_rows=2000)
    assert len(pos) == 2000 and len(set(pos)) == 2000
    shares = np.bincount(g[pos].argmax(1), minlength=4) / 2000
    full = np.bincount(dom, minlength=4) / n
    assert np.allclose(shares[:3], full[:3], atol=0.01)
    assert shares[3] > 0                           # a rare expert keeps at least one row


def test_order_and_sample_edge_cases():
    assert len(A.order_and_sample(np.zeros((0, 3)))) == 0
    one = np.ones((50, 1))                         # one expert
    assert sorted(A.order_and_sample(one, max_rows=20)) == sorted(set(A.order_and_sample(one, max_rows=20)))
    assert len(A.order_and_sample(one, max_rows=20)) == 20
    nan = _gates(10, 3)
    nan[0] = np.nan
    assert len(A.order_and_sample(nan)) == 10


def test_utilisation_means_and_dominant_shares():
    df = _frame(e=3)
    u = A.utilisation(df)
    assert set(u["task"]) == {"click", "score", "kind"} and len(u) == 9
    for task, d in u.groupby("task"):
        assert d["weight"].sum() == pytest.approx(1.0)
        assert d["share_dominant"].sum() == pytest.approx(1.0)
        assert list(d["expert"]) == ["e0", "e1", "e2"]
    g = A.gate_matrix(df, "click")
    assert u[u.task == "click"]["weight"].to_numpy() == pytest.approx(g.mean(0))


def test_entropy_uniform_collapsed_and_one_expert():
    assert A.sample_entropy(np.full((3, 4), 0.25)) == pytest.approx([math.log(4)] * 3)
    assert A.sample_entropy(_gates(3, 4, collapse=2)) == pytest.approx([0.0] * 3, abs=1e-9)
    assert A.max_entropy(8) == pytest.approx(math.log(8))
    assert A.max_entropy(1) == 0.0


def test_entropy_history_picks_gate_entropy_rows():
    h = pd.DataFrame({"epoch": [1, 1, 2], "split": ["val"] * 3, "task": ["a"] * 3,
                      "metric": ["loss", "gate_entropy", "gate_entropy"], "value": [1.0, 2.0, 1.5]})
    e = A.entropy_history(h)
    assert list(e["value"]) == [2.0, 1.5] and list(e.columns) == ["epoch", "split", "task", "value"]
    assert A.entropy_history(h.iloc[:0]).empty


def test_js_divergence_bounds():
    p = np.array([[1.0, 0.0], [0.5, 0.5]])
    q = np.array([[0.0, 1.0], [0.5, 0.5]])
    assert A.js_divergence(p, q) == pytest.approx([1.0, 0.0])
    assert A.js_divergence(p, p) == pytest.approx([0.0, 0.0])


def test_task_gate_similarity_matrices():
    df = _frame(e=4)
    df[[f"gate:score:e{i}" for i in range(4)]] = df[[f"gate:click:e{i}" for i in range(4)]].to_numpy()
    js = A.task_gate_similarity(df, method="js")
    cos = A.task_gate_similarity(df, method="cosine")
    assert list(js.index) == ["click", "score", "kind"]
    assert np.allclose(np.diag(js), 0) and np.allclose(np.diag(cos), 1)
    assert js.loc["click", "score"] == pytest.approx(0.0, abs=1e-9)
    assert 0 < js.loc["click", "kind"] < 1
    assert np.allclose(js, js.T)
    with pytest.raises(ValueError):
        A.task_gate_similarity(df, method="nope")


def test_similarity_with_one_expert_is_identical_routing():
    df = pd.DataFrame({"gate:a:e0": np.ones(5), "gate:b:e0": np.ones(5)})
    assert A.task_gate_similarity(df).to_numpy() == pytest.approx(np.zeros((2, 2)))
    assert A.task_gate_similarity(df, method="cosine").to_numpy() == pytest.approx(np.ones((2, 2)))


# ----------------------------------------------------------------------------- predictions

def test_binary_curves_match_sklearn():
    from sklearn.metrics import average_precision_score, roc_auc_score
    df = _frame()
    c = A.binary_curves(df, "click")
    assert c["ok"] and c["n"] == len(df)
    assert c["auc"] == pytest.approx(roc_auc_score(df["target:click"], df["pred:click"]))
    assert c["ap"] == pytest.approx(average_precision_score(df["target:click"], df["pred:click"]))
    assert c["roc"]["fpr"].iloc[0] == 0 and c["roc"]["tpr"].iloc[-1] == 1
    assert c["roc"]["threshold"].between(0, 1).all()
    assert len(c["pr"]) > 2


def test_binary_curves_one_class_only_and_nan_targets():
    df = _frame()
    df["target:click"] = 1.0
    c = A.binary_curves(df, "click")
    assert not c["ok"] and "one class" in c["reason"] and c["roc"].empty
    df["target:click"] = np.nan
    c = A.binary_curves(df, "click")
    assert not c["ok"] and c["n"] == 0 and "no validation rows" in c["reason"]


def test_nan_targets_are_left_out():
    df = _frame()
    df.loc[:99, "target:click"] = np.nan
    assert A.labelled_count(df, "click") == len(df) - 100
    assert A.binary_curves(df, "click")["n"] == len(df) - 100
    assert A.calibration(df, "click")["count"].sum() == len(df) - 100
    assert A.score_histogram(df, "click")["count"].sum() == len(df) - 100


def test_calibration_bins_are_quantiles():
    """About as many rows per bin: with 2% positives and predictions crowded near 0, equal-width bins
    would put almost every row into the first bin."""
    rng = np.random.default_rng(0)
    p = rng.beta(1, 40, size=5000)
    y = (rng.random(5000) < p).astype(float)
    cal = A.calibration(pd.DataFrame({"target:t": y, "pred:t": p}), "t", bins=10)
    assert len(cal) == 10 and cal["count"].between(495, 505).all()
    assert cal["bin_high"].max() < 0.5 and cal["mean_pred"].is_monotonic_increasing
    assert cal["count"].sum() == 5000
    df = pd.DataFrame({"target:t": [0, 0, 1, 1, 1.0], "pred:t": [0.05, 0.15, 0.92, 0.95, 1.0]})
    cal = A.calibration(df, "t", bins=5)
    assert list(cal["count"]) == [1, 1, 1, 1, 1] and cal["frac_pos"].tolist() == [0, 0, 1, 1, 1]
    assert A.calibration(df.iloc[:0], "t").empty
    same = A.calibration(pd.DataFrame({"target:t": [0, 1.0], "pred:t": [0.3, 0.3]}), "t")
    assert list(same["count"]) == [2]                                # one prediction value: one bin


def test_score_histogram_by_class():
    df = _frame()
    h = A.score_histogram(df, "click", bins=10, class_names=("no", "yes"))
    assert set(h["cls"]) == {"no", "yes"} and len(h) == 20
    assert h[h.cls == "yes"]["count"].sum() == int(df["target:click"].sum())


def test_regression_points_downsample_but_stats_use_all():
    df = _frame(n=500)
    pts, st = A.regression_points(df, "score", max_points=100)
    assert len(pts) == 100 and st["n"] == 500 and st["shown"] == 100
    err = df["pred:score"] - df["target:score"]
    assert st["rmse"] == pytest.approx(float(np.sqrt((err ** 2).mean())))
    assert (pts["residual"] == pts["predicted"] - pts["actual"]).all()
    assert set(pts["row"]) <= set(df["_row"])
    empty, st0 = A.regression_points(df.assign(**{"target:score": np.nan}), "score")
    assert empty.empty and st0["n"] == 0 and math.isnan(st0["rmse"])


def test_confusion_matrix_uses_probabilities_and_class_order():
    df = _frame()
    cm = A.confusion(df, "kind")
    assert list(cm.index) == ["hi", "lo", "mid"] and list(cm.columns) == ["hi", "lo", "mid"]
    assert cm.to_numpy().sum() == len(df)
    assert np.trace(cm.to_numpy()) == len(df)      # argmax was forced onto the true class
    df.loc[:9, "target:kind"] = np.nan
    assert A.confusion(df, "kind").to_numpy().sum() == len(df) - 10
    share = A.normalise_rows(A.confusion(df, "kind"))
    assert share.sum(axis=1).to_numpy() == pytest.approx(np.ones(3))
    assert A.confusion(df, "click").empty           # not multiclass: no prob columns


def test_confusion_with_a_class_never_seen():
    df = _frame()
    df["target:kind"] = 0.0
    cm = A.confusion(df, "kind")
    assert cm.shape == (3, 3) and cm.loc["lo"].sum() == 0
    assert A.normalise_rows(cm).loc["lo"].sum() == 0


def test_sample_details():
    df = _frame(e=3)
    kinds = {"click": "binary", "score": "regression", "kind": "multiclass"}
    d = A.sample_details(df, 4, kinds, ["a", "color"])
    assert d["row"] == 9 and d["split"] == "val"
    assert list(d["features"]) == ["a", "color"]
    assert d["tasks"]["click"]["target"] in (0, 1)
    assert d["tasks"]["kind"]["target"] in ("hi", "lo", "mid")
    assert set(d["tasks"]["kind"]["probabilities"]) == {"hi", "lo", "mid"}
    assert sum(d["tasks"]["score"]["gates"]) == pytest.approx(1.0)
    df.loc[4, "target:score"] = np.nan
    assert A.sample_details(df, 4, kinds)["tasks"]["score"]["target"] is None
    nog = df.drop(columns=[c for c in df.columns if c.startswith("gate:")])
    assert A.sample_details(nog, 0, kinds)["tasks"]["click"]["gates"] is None


def test_feature_columns():
    df = _frame()
    assert A.feature_columns(df, tasks=["click"]) == ["a", "color"]
    assert A.feature_columns(df, {"features": {"numeric": ["a"], "categorical": ["color", "gone"]}}) == ["a", "color"]


# ----------------------------------------------------------------------------- history

def test_curves_and_history_metrics():
    h = pd.DataFrame({"epoch": [2, 1, 1, 1], "split": ["val", "val", "train", "val"], "task": ["a"] * 4,
                      "metric": ["loss", "loss", "loss", "auc"], "value": [0.5, 0.7, 0.8, 0.6]})
    c = A.curves(h, "loss")
    assert list(c["value"]) == [0.8, 0.7, 0.5]
    assert A.history_metrics(h) == ["loss", "auc"]
    assert A.curves(h.iloc[:0]).empty and A.history_metrics(h.iloc[:0]) == []


def test_ema():
    v = [1.0, 2.0, 3.0, 4.0]
    assert A.ema(v, 0.0) == pytest.approx(v)
    s = A.ema(v, 0.5)
    assert s[0] == pytest.approx(1.0)                # debiased: starts at the first value
    assert s[1] == pytest.approx(1.25 / 0.75)
    assert (np.diff(s) > 0).all() and s[-1] < 4.0
    with_nan = A.ema([1.0, np.nan, 1.0], 0.9)
    assert math.isnan(with_nan[1]) and with_nan[2] == pytest.approx(1.0)
    assert len(A.ema([], 0.5)) == 0
    with pytest.raises(ValueError):
        A.ema(v, 1.0)


def test_final_metrics_table():
    t = A.final_metrics_table({"a": {"loss": 0.3, "auc": 0.8}, "b": {"rmse": 1.0, "loss": 0.5}})
    assert list(t.index) == ["a", "b"] and list(t.columns)[0] == "auc"
    assert math.isnan(t.loc["b", "auc"])
    assert A.final_metrics_table({}).empty


# ----------------------------------------------------------------------------- comparing runs

def _rec(i, arch="mmoe", lr=1e-3, experts=8, metrics=None):
    return SimpleNamespace(id=i, name=f"r{i}", dataset="d.csv",
                           data_config={"tasks": [{"column": "a", "kind": "binary"}], "val_fraction": 0.2},
                           model_config={"arch": arch, "num_experts": experts, "expert_hidden": [64, 32]},
                           train_config={"lr": lr, "epochs": 3}, final_metrics=metrics or {})


def test_flatten_settings():
    f = A.flatten_settings(_rec(1))
    assert f["model.expert_hidden"] == "64,32" and f["train.lr"] == 1e-3
    assert f["data.tasks[a].kind"] == "binary" and f["dataset"] == "d.csv"


def test_settings_diff():
    recs = [_rec(1), _rec(2, arch="omoe"), _rec(3, lr=0.01)]
    full = A.settings_diff(recs)
    diff = A.settings_diff(recs, only_differences=True)
    assert list(full.columns) == ["1: r1", "2: r2", "3: r3"]
    assert set(diff.index) == {"model.arch", "train.lr"}
    assert diff.loc["model.arch"].tolist() == ["mmoe", "omoe", "mmoe"]
    assert len(full) > len(diff)
    assert A.settings_diff([_rec(1), _rec(2)], only_differences=True).empty
    r = _rec(4)
    r.model_config = {"arch": "shared-bottom"}
    d = A.settings_diff([_rec(1), r], only_differences=True)
    assert d.loc["model.num_experts"].tolist() == ["8", "—"]


def test_metrics_frame_and_best_per_metric():
    recs = [_rec(1, metrics={"a": {"auc": 0.8, "loss": 0.4}}),
            _rec(2, metrics={"a": {"auc": 0.9, "loss": 0.5, "rmse": float("nan")}}),
            _rec(3, metrics={"a": {"auc": 0.9, "loss": 0.3}})]
    m = A.metrics_frame(recs, ["x", "y", "z"])
    assert list(m.index) == ["x", "y", "z"]
    assert m.columns[0] == "a (binary) · auc"  # the task's kind in the name; its primary metric first
    best = A.best_per_metric(m)
    assert best["a (binary) · auc"] == ["y", "z"]             # ties all win
    assert best["a (binary) · loss"] == ["z"]                  # lower is better
    assert "a (binary) · rmse" not in best                     # no finite value
    m["a · custom"] = [1, 2, 3]
    assert "a · custom" not in A.best_per_metric(m)  # unknown direction
    assert A.best_per_metric(m, {"a · custom": "min"})["a · custom"] == ["x"]
    assert A.best_per_metric(m.iloc[:1]) == {}       # one run: nothing to beat


def test_metric_direction():
    assert A.metric_direction("click · auc") == "max"
    assert A.metric_direction("metric:score:rmse") == "min"
    assert A.metric_direction("rmse") == "min"
    assert A.metric_direction("whatever") is None


# ----------------------------------------------------------------------------- downloads

def test_predictions_csv_round_trips():
    df = _frame(n=20)
    back = pd.read_csv(io.BytesIO(A.predictions_csv(df)))
    assert list(back.columns) == list(df.columns) and len(back) == 20


def test_model_archive(tmp_path):
    from mmoe.runs.artifacts import MODEL_FILES
    from mmoe.runs.store import RunStore

    store = RunStore(tmp_path)
    rid = store.create_run("r", dataset="d", data_config={}, model_config={}, train_config={})
    assert A.model_archive(store, rid) is None
    for name in MODEL_FILES:
        store.save_text(rid, name, "x" + name)
    store.save_text(rid, "predictions.parquet", "no")
    with zipfile.ZipFile(io.BytesIO(A.model_archive(store, rid))) as z:
        assert sorted(z.namelist()) == sorted(MODEL_FILES)
        assert z.read("model.json") == b"xmodel.json"


def test_final_metrics_table_shows_the_log_loss_once():
    t = A.final_metrics_table({"a": {"loss": 0.3, "logloss": 0.3, "auc": 0.8, "gate_entropy": None},
                               "b": {"rmse": 1.0, "loss": 0.5}})
    assert math.isnan(t.loc["a", "loss"]) and t.loc["b", "loss"] == 0.5   # regression keeps its loss
    assert t["gate_entropy"].dtype == np.float64 and math.isnan(t.loc["a", "gate_entropy"])
    only_binary = A.final_metrics_table({"a": {"loss": 0.3, "logloss": 0.3, "auc": 0.8}})
    assert "loss" not in only_binary.columns


def test_metrics_frame_coerces_none_and_drops_the_duplicate_loss():
    dc = {"tasks": [{"column": "a", "kind": "binary"}, {"column": "r", "kind": "regression"}]}
    mmoe = SimpleNamespace(id=1, name="mmoe", final_metrics={"a": {"auc": 0.8, "loss": 0.3, "logloss": 0.3,
                                                                   "gate_entropy": 1.2},
                                                             "r": {"rmse": 1.0, "loss": 0.9}}, data_config=dc)
    sb = SimpleNamespace(id=2, name="sb", final_metrics={"a": {"auc": 0.7, "loss": 0.4, "logloss": 0.4,
                                                               "gate_entropy": None},
                                                         "r": {"rmse": 1.1, "loss": 1.0}}, data_config=dc)
    m = A.metrics_frame([mmoe, sb], ["x", "y"])
    assert (m.dtypes == np.float64).all()
    assert math.isnan(m.loc["y", "a (binary) · gate_entropy"])          # None -> NaN, shown as "—"
    assert "a (binary) · loss" not in m.columns and "a (binary) · logloss" in m.columns
    reg = f"r (regression) · {A.REGRESSION_LOSS}"
    assert "r (regression) · loss" not in m.columns and m[reg].tolist() == [0.9, 1.0]
    assert A.metric_direction(reg) == "min" and A.best_per_metric(m)[reg] == ["x"]
    assert "a (binary) · gate_entropy" not in A.best_per_metric(m)      # a diagnostic: never "best"


@pytest.mark.parametrize("value,text", [(9999.39, "9,999.39"), (10900.041, "10,900.04"), (0.123456, "0.1235"),
                                        (1.5, "1.5"), (-2.0, "-2"), (123456789.0, "123,456,789"),
                                        (3e12, "3e+12"), (0.0, "0"), (float("nan"), "NA"), ("gold", "gold")])
def test_format_number_keeps_every_integer_digit(value, text):
    """Sample details showed a price of 9999.39 as "9999" and 10900.04 as "1.09e+04" (".4g")."""
    assert A.format_number(value) == text


def test_sample_details_show_a_binary_target_by_its_label():
    df = pd.DataFrame({"_row": [0, 1], "target:c": [1.0, 0.0], "pred:c": [0.8, 0.3], "a": [1, 2]})
    d = A.sample_details(df, 0, {"c": "binary"}, features=["a"], binary_labels={"c": ["no", "yes"]})
    assert d["tasks"]["c"]["target"] == "yes"
    assert A.sample_details(df, 1, {"c": "binary"}, features=["a"])["tasks"]["c"]["target"] == 0
