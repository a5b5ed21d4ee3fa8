"""mmoe.training.schedule: batch size and epochs that fit the table, and warnings for ones that do not."""
import math

import numpy as np
import pandas as pd
import pytest

from mmoe.config import TrainConfig
from mmoe.training import auto_schedule, resolve_schedule, schedule_warnings


@pytest.mark.parametrize("n, batch, epochs", [(614, 16, 26), (12_000, 512, 42), (80_000, 1024, 13),
                                               (5_000_000, 1024, 10), (40, 16, 200)])
def test_auto_schedule(n, batch, epochs):
    assert auto_schedule(n) == (batch, epochs)
    steps = math.ceil(n / batch)
    assert batch == 16 or steps >= 20          # enough steps per epoch
    assert epochs in (10, 200) or 1000 <= steps * epochs < 1000 + steps


def test_resolve_keeps_what_the_user_chose():
    assert resolve_schedule(TrainConfig(batch_size=64, epochs=3), 614) == TrainConfig(batch_size=64, epochs=3)
    c = resolve_schedule(TrainConfig(batch_size=64), 614)
    assert (c.batch_size, c.epochs) == (64, 100)      # 10 steps per epoch: epochs for about 1000 steps
    assert resolve_schedule(TrainConfig(epochs=5), 614).batch_size == 16


def test_warnings_for_a_batch_that_does_not_fit():
    assert "one optimiser step per epoch" in schedule_warnings(TrainConfig(batch_size=1024), 614)[0]
    assert "only 5 optimiser steps" in schedule_warnings(TrainConfig(batch_size=128), 614)[0]
    assert schedule_warnings(TrainConfig(batch_size=32), 614) == []
    assert schedule_warnings(TrainConfig(), 614) == []


def test_the_cli_defaults_train_a_small_table_well(tmp_path, mmoe_home, capsys):
    """Under 1,000 rows, two smooth regression targets: the defaults reach R² >= 0.9 (the old fixed
    batch 1024 x 10 epochs made 10 steps in all and reached 0.1), and a too-large batch is warned about."""
    import json

    from mmoe.cli import main

    rng = np.random.default_rng(7)
    n = 768
    x = rng.normal(size=(n, 6))
    df = pd.DataFrame(x, columns=[f"x{i}" for i in range(6)])
    df["y1"] = 3 * x[:, 0] + 2 * x[:, 1] * x[:, 2] + np.sin(x[:, 3]) + 0.1 * rng.normal(size=n)
    df["y2"] = 2 * x[:, 0] - x[:, 4] + 0.5 * x[:, 5] ** 2 + 0.1 * rng.normal(size=n)
    path = tmp_path / "small.csv"
    df.to_csv(path, index=False)
    args = ["train", "--data", str(path), "--task", "y1:regression", "--task", "y2:regression", "--json", "--quiet"]
    assert main(args) == 0
    out, err = capsys.readouterr()
    s = json.loads(out.strip().splitlines()[-1])
    assert s["schedule"].startswith("batch 16 and 26 epochs") and s["warnings"] == [] and "warning" not in err
    assert s["metrics"]["y1"]["r2"] >= 0.9 and s["metrics"]["y2"]["r2"] >= 0.9, s["metrics"]
    assert main([*args, "--batch-size", "1024", "--epochs", "10"]) == 0
    out, err = capsys.readouterr()
    assert "warning: the batch size 1,024 is at least the 614 training rows" in err
    assert json.loads(out.strip().splitlines()[-1])["metrics"]["y1"]["r2"] < 0.5
