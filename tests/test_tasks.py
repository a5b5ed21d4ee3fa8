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
