"""pos_weight per binary task: BCE's weight of the positive rows, a number or "balanced" (negatives /
positives of the training split only); validated against the tasks; stored with the run and written
into its command; the same on a streamed table."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from mmoe.cli import main
from mmoe.config import ConfigError, DataConfig, ModelConfig, TaskSpec, TrainConfig
from mmoe.data import prepare
from mmoe.runs.runner import run_training
from mmoe.runs.store import RunStore
from mmoe.tasks import masked_loss
from mmoe.training.class_weights import positive_counts, resolve_pos_weights
from mmoe.views.commands import train_commands

TASKS = (TaskSpec("rare", "binary", positive="yes"), TaskSpec("click", "binary", positive="yes"),
         TaskSpec("score", "regression"))


def rare_frame(n: int = 400, seed: int = 0) -> pd.DataFrame:
    """About 8% positives in "rare", a balanced "click", a regression target; some targets missing."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=n), rng.normal(size=n)
    rare = np.where(a + 0.3 * rng.normal(size=n) > 1.4, "yes", "no").astype(object)
    rare[rng.random(n) < 0.1] = None
    return pd.DataFrame({"a": a, "b": b, "color": rng.choice(["red", "blue"], size=n), "rare": rare,
                         "click": np.where(b > 0, "yes", "no"), "score": a - b})


@pytest.fixture
def data():
    return prepare(rare_frame(), DataConfig(tasks=TASKS, seed=0))


def test_balanced_is_negatives_over_positives_of_the_training_split_only(data):
    frame = rare_frame()
    train = frame.iloc[data.splits["train"].numpy()]["rare"].dropna()
    expect = (train == "no").sum() / (train == "yes").sum()
    whole = frame["rare"].dropna()
    assert expect != pytest.approx((whole == "no").sum() / (whole == "yes").sum())   # the split matters here
    got = resolve_pos_weights(TrainConfig(pos_weight={"rare": "balanced", "click": 2.0}), data)
    assert got.pos_weight == {"rare": pytest.approx(expect), "click": 2.0}
    assert positive_counts(data, ["rare"]) == {"rare": ((train == "yes").sum(), (train == "no").sum())}
    assert expect > 5     # a rare class: a large weight


def test_pos_weight_changes_the_loss_as_bce_pos_weight_does():
    g = torch.Generator().manual_seed(0)
    z, y = torch.randn(50, 1, generator=g), (torch.rand(50, generator=g) < 0.2).float()
    mask = torch.rand(50, generator=g) < 0.8
    got = masked_loss("binary", z, y, mask, pos_weight=4.0)
    expect = F.binary_cross_entropy_with_logits(z[mask, 0], y[mask], pos_weight=torch.tensor(4.0))
    torch.testing.assert_close(got, expect)
    p = torch.sigmoid(z[mask, 0])
    by_hand = -(4.0 * y[mask] * torch.log(p) + (1 - y[mask]) * torch.log(1 - p)).mean()
    torch.testing.assert_close(got, by_hand, atol=1e-6, rtol=0)
    torch.testing.assert_close(masked_loss("binary", z, y, mask, pos_weight=1.0), masked_loss("binary", z, y, mask))


def test_a_run_stores_the_setting_and_the_value_used_and_its_command_says_balanced(tmp_path, data):
    store = RunStore(tmp_path / "runs")
    tc = TrainConfig(epochs=2, batch_size=64, device="cpu", pos_weight={"rare": "balanced"})
    s = run_training(data, ModelConfig(num_experts=2, expert_hidden=(8,), tower_hidden=(4,)), tc, store=store)
    assert s.status == "finished", s.message
    rec = store.get_run(s.run_id)
    assert rec.train_config["pos_weight"] == {"rare": "balanced"}
    assert rec.data_summary["pos_weight"]["rare"] == pytest.approx(
        resolve_pos_weights(tc, data).pos_weight["rare"])
    cmd = train_commands(rec.data_config, rec.model_config, rec.train_config, "t.csv")["python"]
    assert "--pos-weight rare=balanced" in cmd
    store.close()


def test_balanced_needs_both_classes_in_the_training_rows():
    """(``prepare`` already refuses such a table; a streamed one is only counted when training starts.)"""
    from types import SimpleNamespace

    d = SimpleNamespace(tasks=TASKS[:1], splits={"train": torch.arange(4), "val": torch.arange(4, 6)},
                        y={"rare": torch.tensor([0.0, 0, 0, 0, 1, 1])}, mask={"rare": torch.ones(6, dtype=torch.bool)})
    with pytest.raises(ConfigError, match="balanced for 'rare'.* 0 positive and 4 negative"):
        resolve_pos_weights(TrainConfig(pos_weight={"rare": "balanced"}), d)


@pytest.fixture
def csv(tmp_path):
    path = tmp_path / "rare.csv"
    rare_frame().to_csv(path, index=False)
    return path


def _train(csv, tmp_path, *extra):
    return main(["train", "--data", str(csv), "--task", "rare:binary=yes", "--task", "click:binary=yes",
                 "--task", "score:regression", "--epochs", "2", "--batch-size", "64", "--device", "cpu",
                 "--store", str(tmp_path / "runs"), "--json", "--quiet", *extra])


@pytest.mark.parametrize("flag,message", [
    ("nope=3", "pos_weight names 'nope', which is not a task"),
    ("score=2", "pos_weight is for binary tasks; 'score' is regression"),
    ("rare=-1", "pos_weight of 'rare' must be a number > 0"),
    ("rare=lots", "pos_weight of 'rare' is 'lots'; give a number > 0 or 'balanced'"),
    ("=2", "the column name is empty"),
])
def test_bad_pos_weights_are_refused_in_one_line_with_exit_2(csv, tmp_path, capsys, flag, message):
    assert _train(csv, tmp_path, "--pos-weight", flag) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "runs").exists() or not RunStore(tmp_path / "runs").list_runs()


def test_a_bad_weighting_or_alpha_is_refused_with_exit_2(csv, tmp_path, capsys):
    assert _train(csv, tmp_path, "--task-weighting", "gradient") == 2
    assert "gradnorm" in capsys.readouterr().err
    assert _train(csv, tmp_path, "--task-weighting", "gradnorm", "--gradnorm-alpha", "-1") == 2
    err = capsys.readouterr().err.strip()
    assert "GradNorm alpha must be between 0 and 10" in err and len(err.splitlines()) == 1


def test_a_global_balanced_applies_to_every_binary_task_and_a_later_item_overrides(csv, tmp_path, capsys):
    assert _train(csv, tmp_path, "--pos-weight", "balanced", "--pos-weight", "click=2") == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    rec = RunStore(tmp_path / "runs").get_run(out["run_id"])
    assert rec.train_config["pos_weight"] == {"rare": "balanced", "click": 2.0}
    assert set(rec.data_summary["pos_weight"]) == {"rare", "click"} and rec.data_summary["pos_weight"]["click"] == 2.0


def test_streamed_training_derives_balanced_from_its_own_training_rows(csv, tmp_path, capsys):
    """--stream splits rows by a hash of the row number: the value is negatives / positives of the rows the
    cache marks as training rows, counted here from the CSV itself."""
    assert _train(csv, tmp_path, "--stream", "--pos-weight", "rare=balanced", "--task-weighting", "gradnorm") == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["status"] == "finished"
    store = RunStore(tmp_path / "runs")
    rec = store.get_run(out["run_id"])
    from mmoe.data.stream_cache import prepare_streamed
    from mmoe.data.streaming import SPLIT_CODES

    cached = prepare_streamed(csv, DataConfig.from_dict(rec.data_config), tmp_path / "runs" / "cache")
    split = np.concatenate([cached.block(b, features=False)["split"] for b in range(cached.n_blocks)])
    rare = rare_frame()["rare"][split == SPLIT_CODES["train"]].dropna()
    assert rec.data_summary["pos_weight"]["rare"] == pytest.approx((rare == "no").sum() / (rare == "yes").sum())
    h = store.history(out["run_id"])
    w = h[h.metric == "task_weight"].groupby("epoch")["value"].sum()
    assert len(w) == 2 and np.allclose(w, 3.0, atol=1e-5)
