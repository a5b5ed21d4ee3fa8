"""The train command carries the loss-weighting settings: GradNorm and its alpha, pos_weight per binary
task (numbers and "balanced"); parsed back by the real command line they give the same TrainConfig."""
from __future__ import annotations

import shlex

import pytest

from mmoe.cli import _configs, build_parser
from mmoe.config import DataConfig, ModelConfig, TaskSpec, TrainConfig
from mmoe.views.commands import train_commands

TASKS = (TaskSpec("click", "binary", positive="yes"), TaskSpec("rare col", "binary", threshold=">=7"),
         TaskSpec("score", "regression"))


@pytest.mark.parametrize("tc", [
    TrainConfig(task_weighting="gradnorm"),
    TrainConfig(task_weighting="gradnorm", gradnorm_alpha=0.12),
    TrainConfig(task_weighting="gradnorm", gradnorm_alpha=1 / 3, pos_weight={"rare col": "balanced"}),
    TrainConfig(pos_weight={"click": 15.264520073364581, "rare col": 2.0}),
    TrainConfig(task_weighting="uncertainty", pos_weight={"click": "balanced", "rare col": "balanced"}),
])
def test_weighting_flags_round_trip(tc):
    dc = DataConfig(tasks=TASKS)
    cmds = train_commands(dc.to_dict(), ModelConfig().to_dict(), tc.to_dict(), "t.csv")
    assert cmds["unsaid"] == ""
    words = shlex.split(cmds["python"])
    (got_dc, _, got_tc) = _configs(build_parser().parse_args(words[3:]))
    assert got_dc == dc and got_tc == tc, cmds["python"]


def test_the_flags_read_as_typed():
    tc = TrainConfig(task_weighting="gradnorm", gradnorm_alpha=0.5, pos_weight={"click": "balanced", "rare col": 3})
    cmd = train_commands(DataConfig(tasks=TASKS), ModelConfig(), tc, "t.csv")["python"]
    assert "--task-weighting gradnorm --gradnorm-alpha 0.5" in cmd
    assert "--pos-weight click=balanced --pos-weight 'rare col=3'" in cmd
    plain = train_commands(DataConfig(tasks=TASKS), ModelConfig(), TrainConfig(), "t.csv")["python"]
    assert "--gradnorm-alpha" not in plain and "--pos-weight" not in plain


def test_train_again_restores_the_weighting_widgets():
    from types import SimpleNamespace

    from mmoe.views.presets import run_widget_values

    tc = TrainConfig(task_weighting="gradnorm", gradnorm_alpha=0.25, pos_weight={"click": "balanced", "rare col": 3})
    rec = SimpleNamespace(model_config=ModelConfig().to_dict(), train_config=tc.to_dict(),
                          data_config=DataConfig(tasks=TASKS).to_dict())
    v = run_widget_values(rec)
    assert (v["weighting"], v["gradnorm_alpha"]) == ("gradnorm", 0.25)
    assert (v["pw.click"], v["pw.rare col"], v["pw.rare col.value"]) == ("balanced", "number", 3.0)
    assert "pw.score" not in v
    rec.train_config = TrainConfig().to_dict()
    assert run_widget_values(rec)["pw.click"] == "none"
