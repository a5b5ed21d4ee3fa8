"""mmoe.tasks: losses, the prediction transform, metrics and their directions per task kind."""
import numpy as np
import pytest
import torch

from mmoe.tasks import METRIC_DIRECTIONS, PRIMARY_METRIC, compute_metrics, headline_metric, masked_loss, transform


@pytest.mark.parametrize("kind,y,p,dim", [
    ("binary", np.array([0, 1, 1, 0]), np.array([0.2, 0.7, 0.9, 0.4]), 1),
    ("regression", np.array([1.0, 2.0, 3.0]), np.array([1.1, 1.9, 3.2]), 1),
    ("multiclass", np.array([0, 2, 1]), np.array([[0.8, 0.1, 0.1], [0.1, 0.2, 0.7], [0.2, 0.6, 0.2]]), 3),
])
def test_every_metric_has_a_direction_and_the_primary_one_is_computed(kind, y, p, dim):
    m = compute_metrics(kind, y, p, dim)
    assert PRIMARY_METRIC[kind] in m
    assert set(m) <= set(METRIC_DIRECTIONS)
    assert headline_metric(m) == PRIMARY_METRIC[kind]


def test_metric_values():
    m = compute_metrics("binary", np.array([0, 1, 1, 0]), np.array([0.2, 0.7, 0.9, 0.4]))
    assert m["auc"] == 1.0 and m["accuracy"] == 1.0
    r = compute_metrics("regression", np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 4.0]))
    assert r["rmse"] == pytest.approx(np.sqrt(1 / 3)) and r["mae"] == pytest.approx(1 / 3)


def test_masked_loss_ignores_missing_rows():
    pred = torch.tensor([[10.0], [-10.0], [0.0]])
    y = torch.tensor([1.0, 0.0, 1.0])
    full = masked_loss("binary", pred, y, torch.tensor([True, True, True]))
    part = masked_loss("binary", pred, y, torch.tensor([True, True, False]))
    assert part < full and part < 1e-3
    assert masked_loss("regression", pred, y, torch.zeros(3, dtype=torch.bool)) == 0


def test_transform_back_to_the_target_units():
    raw = torch.tensor([[0.0], [1.0]])
    assert transform("regression", raw, (10.0, 2.0)).flatten().tolist() == [10.0, 12.0]
    assert transform("binary", raw).flatten().tolist() == pytest.approx([0.5, 1 / (1 + np.exp(-1))])
    probs = transform("multiclass", torch.tensor([[1.0, 1.0, 1.0]]))
    assert probs.sum().item() == pytest.approx(1.0)


def test_metrics_edge_cases():
    m = compute_metrics("binary", np.array([1, 1, 1]), np.array([0.2, 0.9, 0.5]))
    assert np.isnan(m["auc"]) and m["accuracy"] == pytest.approx(2 / 3)
    m = compute_metrics("multiclass", np.array([0, 2]), np.array([[0.9, 0.05, 0.05], [0.1, 0.1, 0.8]]), 3)
    assert m["accuracy"] == 1.0
    assert compute_metrics("regression", np.array([]), np.array([])) == {}


def _sklearn_metrics(kind, y, p, k=2):
    """The reference: scikit-learn's own metrics on the same (clipped) predictions."""
    from sklearn import metrics as skm
    if kind == "binary":
        q = np.clip(p, 1e-7, 1 - 1e-7)
        return {"auc": skm.roc_auc_score(y, q), "logloss": skm.log_loss(y, q, labels=[0, 1]),
                "accuracy": skm.accuracy_score(y, q >= 0.5)}
    if kind == "regression":
        return {"rmse": float(np.sqrt(skm.mean_squared_error(y, p))), "mae": skm.mean_absolute_error(y, p),
                "r2": skm.r2_score(y, p)}
    q = np.clip(p, 1e-7, 1.0)
    q = q / q.sum(1, keepdims=True)
    return {"accuracy": skm.accuracy_score(y, q.argmax(1)),
            "macro_f1": skm.f1_score(y, q.argmax(1), labels=list(range(k)), average="macro", zero_division=0),
            "logloss": skm.log_loss(y, q, labels=list(range(k)))}


@pytest.mark.parametrize("seed", range(6))
def test_metrics_equal_scikit_learn(seed):
    """The per-epoch metrics are numpy (no scikit-learn import on the training path); they must equal
    scikit-learn's, with tied scores (rounded predictions), saturated probabilities, an absent class
    and a constant regression target."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 3000))
    y = (rng.random(n) < rng.uniform(0.05, 0.95)).astype(int)
    y[0], y[1] = 0, 1
    p = 1 / (1 + np.exp(-(2 * y - 1) * rng.normal(0.5, 1.5, n)))
    for scores in (p, np.round(p, 1), np.where(rng.random(n) < 0.1, 1.0, p)):
        ours, ref = compute_metrics("binary", y, scores), _sklearn_metrics("binary", y, scores)
        assert ours == pytest.approx(ref, rel=1e-9, abs=1e-12)
    yr = rng.normal(size=n) * 3
    for target in (yr, np.full(n, 2.5)):
        pr = target + rng.normal(size=n) * (0 if seed == 0 else 0.5)
        assert compute_metrics("regression", target, pr) == pytest.approx(_sklearn_metrics("regression", target, pr),
                                                                          rel=1e-9, abs=1e-12)
    k = 5
    yc = rng.integers(0, k - 1, n)           # class k-1 never occurs
    raw = rng.random((n, k)) + np.eye(k)[yc] * rng.uniform(0, 2)
    pc = raw / raw.sum(1, keepdims=True)
    assert compute_metrics("multiclass", yc, pc, k) == pytest.approx(_sklearn_metrics("multiclass", yc, pc, k),
                                                                     rel=1e-9, abs=1e-12)


def test_training_does_not_import_scikit_learn():
    """Importing what ``python -m mmoe train`` runs must not pull in scikit-learn (about a second)."""
    import subprocess
    import sys
    code = ("import sys, mmoe.cli, mmoe.runs.runner, mmoe.training, mmoe.data, mmoe.tasks; "
            "bad = [m for m in ('sklearn', 'plotly', 'streamlit', 'scipy') if m in sys.modules]; "
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"the training path imports {out.stdout.strip()}"
