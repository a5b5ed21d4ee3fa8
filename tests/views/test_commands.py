"""The commands Inspect and the Train page show: parsed back by the real command line, they give the
settings they were made from (so a copied command trains the same run), and they say what they cannot."""
from __future__ import annotations

import shlex

import pytest

from mmoe.cli import _configs, build_parser
from mmoe.config import DataConfig, ModelConfig, TaskSpec, TrainConfig
from mmoe.views.commands import train_commands

TASKS = (TaskSpec("click", "binary", positive="yes"), TaskSpec("quality", "binary", threshold=">=7"),
         TaskSpec("kind", "multiclass", weight=2.0), TaskSpec("score col", "regression"))


def _parsed(command: str, prefix: str):
    words = shlex.split(command)
    assert words[:len(prefix.split())] == prefix.split()
    a = build_parser().parse_args(words[len(prefix.split()):])
    return _configs(a), a


@pytest.mark.parametrize("dc,mc,tc", [
    (DataConfig(tasks=TASKS[:1]), ModelConfig(), TrainConfig()),                        # all defaults
    (DataConfig(tasks=TASKS, features=("a", "b c"), drop=("id",), kind_overrides={"zip": "categorical"},
                val_fraction=0.25, test_fraction=0.1, seed=7),
     ModelConfig(arch="omoe", num_experts=4, expert_hidden=(32,), gate_hidden=(8, 4), tower_hidden=(),
                 top_k=2, dropout=0.1, aux_loss_weight=0.05),
     TrainConfig(epochs=12, batch_size=64, lr=0.003, weight_decay=1e-4, optimizer="adamw",
                 task_weighting="uncertainty", early_stopping_patience=3, device="cpu", seed=3, threads=2,
                 precision="fp32")),
    (DataConfig(tasks=TASKS[1:2], seed=5), ModelConfig(arch="shared-bottom", expert_hidden=(128, 64)),
     TrainConfig(seed=5, lr=1e-3)),
    (DataConfig(tasks=TASKS[:2]), ModelConfig(arch="ple", shared_experts=3, task_experts=1, levels=3,
                                              expert_hidden=(16,)), TrainConfig()),
    (DataConfig(tasks=TASKS[:2]), ModelConfig(arch="cgc", shared_experts=1), TrainConfig()),
    (DataConfig(tasks=TASKS[:2]), ModelConfig(arch="ple"), TrainConfig()),             # levels left out
])
def test_the_commands_parse_back_to_the_same_settings(dc, mc, tc):
    cmds = train_commands(dc.to_dict(), mc.to_dict(), tc.to_dict(), "/data/my table.csv", name="again")
    assert cmds["unsaid"] == ""
    for key, prefix in (("python", "python -m mmoe"), ("torchrun", "torchrun --standalone --nproc-per-node=2 -m mmoe")):
        (got_dc, got_mc, got_tc), a = _parsed(cmds[key], prefix)
        assert a.data == "/data/my table.csv" and a.name == "again"
        assert got_dc == dc and got_mc == mc and got_tc == tc, cmds[key]


def test_only_what_differs_from_the_defaults_is_written():
    cmds = train_commands(DataConfig(tasks=TASKS[:1]), ModelConfig(), TrainConfig(), "t.csv")
    assert cmds["python"] == "python -m mmoe train --data t.csv --task click:binary=yes --seed 0"


def test_what_the_command_line_cannot_say_is_named():
    dc = DataConfig(tasks=TASKS[:1], drop=("a,b",), embedding_dims={"zip": 4})
    cmds = train_commands(dc, ModelConfig(), TrainConfig(max_seconds=30), "t.csv")
    assert "--drop" not in cmds["python"]
    assert "a column name holds a comma" in cmds["unsaid"] and "embedding widths" in cmds["unsaid"]
    assert "time budget of 30 s" in cmds["unsaid"]


def test_cgc_and_ple_commands_carry_their_expert_counts():
    mc = ModelConfig(arch="ple", shared_experts=3, task_experts=1, levels=3)
    cmd = train_commands(DataConfig(tasks=TASKS[:1]), mc, TrainConfig(), "t.csv")["python"]
    assert "--arch ple --shared-experts 3 --task-experts 1 --levels 3" in cmd
    cmd = train_commands(DataConfig(tasks=TASKS[:1]), ModelConfig(arch="cgc"), TrainConfig(), "t.csv")["python"]
    assert "--arch cgc" in cmd and "--levels" not in cmd and "--shared-experts" not in cmd
