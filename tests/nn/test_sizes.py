"""A model description (model.json) is priced before anything is allocated: the count matches the
built model, and sizes needing more memory than the machine has are refused at once."""
from __future__ import annotations

import resource
import time

import pytest

from mmoe.config import ConfigError, ModelConfig
from mmoe.nn import TabularModel, count_parameters
from mmoe.nn.model import model_meta
from mmoe.nn.sizes import parameter_count, physical_memory


@pytest.mark.parametrize("arch", ["mmoe", "omoe", "shared-bottom"])
@pytest.mark.parametrize("gate_hidden", [(), (6,)])
def test_count_matches_the_built_model(arch, gate_hidden):
    mc = ModelConfig(arch=arch, num_experts=3, expert_hidden=(8, 4), gate_hidden=gate_hidden, tower_hidden=(5,))
    for meta in (model_meta(mc, 4, [3, 7], [2, 5], {"a": 1, "b": 3}), model_meta(mc, 2, [], [], {"a": 1})):
        assert parameter_count(meta, mc) == count_parameters(TabularModel(meta))


def _meta(**change) -> dict:
    meta = model_meta(ModelConfig(num_experts=4, expert_hidden=(8,), tower_hidden=(4,)), 3, [5], [2], {"y": 1})
    meta["model_config"].update(change.pop("model_config", {}))
    meta.update(change)
    return meta


@pytest.mark.parametrize("meta", [
    _meta(model_config={"expert_hidden": [10 ** 7, 10 ** 7]}),          # 10^14 weights per expert
    _meta(cardinalities=[10 ** 13], embedding_dims=[4]),                 # a vocabulary of 10^13 categories
    _meta(num_numeric=10 ** 12),
    _meta(task_dims={"y": 10 ** 12}),
])
def test_too_big_for_this_machine_is_refused_before_allocating(meta):
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match="more than this machine's .* GiB of memory"):
        TabularModel(meta)
    assert time.perf_counter() - t0 < 1.0
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss < 50_000        # KiB: nothing allocated
    assert physical_memory() and physical_memory() > 2 ** 20


def test_too_many_experts_and_damaged_sizes_are_refused():
    with pytest.raises(ConfigError, match="between 1 and 256"):
        TabularModel(_meta(model_config={"num_experts": 10 ** 9}))
    for bad in (_meta(num_numeric=-1), _meta(cardinalities=[5, 6]), _meta(embedding_dims=["2"]),
                _meta(task_dims={}), _meta(cardinalities=[0])):
        with pytest.raises(ConfigError, match="model.json is damaged"):
            TabularModel(bad)
