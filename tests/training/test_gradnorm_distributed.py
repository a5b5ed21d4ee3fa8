"""GradNorm under torchrun (gloo, 2 CPU processes): each process measures the gradient norms of its own
shard, the gradients of the task weights are averaged, so both processes hold the same task weights and
the same model after every step (an uneven last batch and missing labels included)."""
from __future__ import annotations

import json

import pytest
from test_distributed import ROOT, _launch


def test_two_processes_learn_the_same_task_weights(tmp_path):
    r = _launch([ROOT / "tests" / "training" / "gradnorm_ddp_worker.py", tmp_path], tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{i}.json").read_text()) for i in range(2)]
    for rank in ranks:
        assert rank["status"] == "finished", rank["message"]
        assert rank["step"].startswith("autograd (gradnorm")
        for w in rank["task_weights"]:
            assert sum(w) == pytest.approx(2.0, abs=1e-5)
    assert ranks[0]["task_weights"] == ranks[1]["task_weights"]
    assert ranks[0]["weights"] == ranks[1]["weights"]
    assert ranks[0]["task_weights"][-1] != [1.0, 1.0]
