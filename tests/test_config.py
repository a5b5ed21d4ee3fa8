"""mmoe.config: the user-chosen settings; dict round trips (what a run stores) and refusals."""
import pytest

from mmoe.config import ConfigError, DataConfig, ModelConfig, TaskSpec, TrainConfig


def test_round_trips_through_dicts():
    dc = DataConfig(tasks=(TaskSpec("click", "binary", positive="yes", weight=2.0), TaskSpec("y", "regression")),
                    drop=("id",), kind_overrides={"zip": "categorical"}, val_fraction=0.25, seed=7)
    mc = ModelConfig(arch="omoe", num_experts=5, expert_hidden=(32, 16), gate_hidden=(8,), tower_hidden=(4,),
                     top_k=2, dropout=0.1)
    tc = TrainConfig(epochs=3, batch_size=64, lr=0.01, weight_decay=1e-4, optimizer="adamw",
                     task_weighting="uncertainty", early_stopping_patience=2, seed=7, max_seconds=9.0)
    assert DataConfig.from_dict(dc.to_dict()) == dc
    assert ModelConfig.from_dict(mc.to_dict()) == mc
    assert TrainConfig.from_dict(tc.to_dict()) == tc


@pytest.mark.parametrize("text,spec", [
    ("click", TaskSpec("click", "binary")),
    ("y:regression", TaskSpec("y", "regression")),
    ("kind:multiclass", TaskSpec("kind", "multiclass")),
    ("marital_stat:binary=Never married", TaskSpec("marital_stat", "binary", positive="Never married")),
    ("a:b:binary=x", TaskSpec("a:b", "binary", positive="x")),
])
def test_task_spec_parse(text, spec):
    got = TaskSpec.parse(text)
    assert (got.column, got.kind, got.positive) == (spec.column, spec.kind, spec.positive)


@pytest.mark.parametrize("make,phrase", [
    (lambda: ModelConfig(arch="transformer"), "architecture"),
    (lambda: ModelConfig(num_experts=4, top_k=5), "top"),
    (lambda: ModelConfig(expert_hidden="a,b"), "layer"),
    (lambda: TrainConfig(epochs=0), "epochs"),
    (lambda: TrainConfig(lr=-1), "learning rate"),
    (lambda: TrainConfig(optimizer="sgd2"), "optimiser"),
    (lambda: DataConfig(tasks=()), "task"),
    (lambda: DataConfig(tasks=(TaskSpec("y"),), val_fraction=1.5), "validation"),
    (lambda: TaskSpec.parse("y:banana"), "banana"),
])
def test_bad_settings_are_refused_with_a_clear_message(make, phrase):
    with pytest.raises(ConfigError) as e:
        make()
    assert phrase in str(e.value).lower()
