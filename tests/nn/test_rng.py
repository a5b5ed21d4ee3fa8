"""mmoe.nn.rng: a run's initial weights and dropout masks come from generators of its own thread,
not from torch's process-wide generator that the dashboard's other threads draw from too."""
import threading

import pytest
import torch
import torch.nn.functional as F

from mmoe.config import DataConfig, ModelConfig, TaskSpec
from mmoe.data import prepare
from mmoe.nn import build_model, model as model_module, rng

CONFIG = ModelConfig(num_experts=3, expert_hidden=(16,), tower_hidden=(8,))


@pytest.fixture
def data(tiny_frame):
    return prepare(tiny_frame, DataConfig(tasks=(TaskSpec("click", "binary", positive="yes"),
                                                 TaskSpec("score", "regression")), seed=0))


def _weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_weights_follow_the_seed_and_leave_the_global_generator_alone(data):
    torch.manual_seed(0)
    before = torch.get_rng_state()
    with rng.private_rng(7):
        first = _weights(build_model(CONFIG, data))
    assert torch.equal(torch.get_rng_state(), before)         # nothing drawn from, nothing reseeded
    torch.rand(10)                                            # whatever the global generator holds
    with rng.private_rng(7):
        again = _weights(build_model(CONFIG, data))
    with rng.private_rng(8):
        other = _weights(build_model(CONFIG, data))
    assert _same(first, again) and not _same(first, other)
    # the same stream torch.manual_seed(7) gives: runs stored before keep their initial weights
    torch.manual_seed(7)
    assert _same(first, _weights(build_model(CONFIG, data)))


def test_a_draw_in_the_middle_of_a_build_changes_nothing(data, monkeypatch):
    """What another thread does while a run builds its model (here: a draw from the global generator
    between the embedding table and the experts) does not reach the run's weights."""
    with rng.private_rng(3):
        quiet = _weights(build_model(CONFIG, data))
    init = model_module.StackedMLP.__init__

    def busy(self, *a, **kw):
        torch.rand(100)
        init(self, *a, **kw)

    monkeypatch.setattr(model_module.StackedMLP, "__init__", busy)
    with rng.private_rng(3):
        assert _same(quiet, _weights(build_model(CONFIG, data)))


def test_generators_belong_to_their_thread_and_blocks_nest(data):
    seen = {}

    def other_thread():
        seen["outside"] = rng.generator()
        with rng.private_rng(11):
            seen["weights"] = _weights(build_model(CONFIG, data))

    with rng.private_rng(5) as outer:
        worker = threading.Thread(target=other_thread)
        worker.start()
        worker.join()
        with rng.private_rng(6) as inner:
            assert rng.generator() is inner
        assert rng.generator() is outer
    assert rng.generator() is None and seen["outside"] is None
    with rng.private_rng(11):
        assert _same(seen["weights"], _weights(build_model(CONFIG, data)))


def test_dropout_draws_from_the_runs_generator():
    x = torch.ones(200, 50)
    with rng.private_rng(1):
        a = rng.dropout(x, 0.25, True)
        torch.manual_seed(123)
        b = rng.dropout(x, 0.25, True)                  # the next draw of the run's generator
    with rng.private_rng(1):
        assert torch.equal(rng.dropout(x, 0.25, True), a)
        assert torch.equal(rng.dropout(x, 0.25, True), b)
    assert not torch.equal(a, b)
    kept = a != 0
    assert torch.all(a[kept] == 1 / 0.75)               # the kept units scaled as F.dropout scales them
    assert abs(kept.float().mean().item() - 0.75) < 0.02
    assert rng.dropout(x, 0.25, False) is x and rng.dropout(x, 0.0, True) is x
    torch.manual_seed(4)
    outside = rng.dropout(x, 0.25, True)                # no block open: torch's own dropout
    torch.manual_seed(4)
    assert torch.equal(outside, F.dropout(x, 0.25, True))


def test_the_kernel_probes_draw_nothing():
    """torch's optional kernels are probed on a run's first step, after its seeding: the probes must not
    move the global generator (they once drew test matrices from it)."""
    from mmoe.nn import kernels

    kernels.onednn_matmul.cache_clear()
    kernels.fused_adam.cache_clear()
    before = torch.get_rng_state()
    kernels.onednn_matmul(), kernels.fused_adam(False), kernels.fused_adam(True)
    assert torch.equal(torch.get_rng_state(), before)
