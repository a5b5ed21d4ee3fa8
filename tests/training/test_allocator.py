"""keep_freed_memory: a CPU training step stops faulting its temporaries in again every step."""
import resource
import subprocess
import sys

import pytest

CHILD = r"""
import resource, sys, torch
from mmoe.config import TaskSpec, TrainConfig, ModelConfig
from mmoe.nn import build_model
from mmoe.training import TrainStep
from types import SimpleNamespace
torch.manual_seed(0)
torch.set_num_threads(1)
meta = SimpleNamespace(num_numeric=100, cardinalities=[], embedding_dims=[], task_dims={"a": 1, "b": 1})
model = build_model(ModelConfig(num_experts=8, expert_hidden=(64, 32)), meta)
step = TrainStep(model, [TaskSpec("a"), TaskSpec("b")], TrainConfig(precision="fp32"), torch.device("cpu"))
x, c = torch.rand(1024, 100), torch.zeros(1024, 0, dtype=torch.long)
ys = [(torch.rand(1024) < 0.5).float() for _ in range(2)]
ms = [torch.ones(1024, dtype=torch.bool) for _ in range(2)]
for _ in range(20):
    step(x, c, ys, ms)
f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    step(x, c, ys, ms)
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / 20)
"""


def _faults(env_extra: dict) -> float:
    import os
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GLIBC_TUNABLES"))}
    env.update(env_extra)
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    return float(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc only")
def test_a_cpu_step_reuses_its_memory():
    """With the thresholds set (the default) a step of the step benchmark's model takes (almost) no page
    faults. glibc's own default adapts its thresholds as it goes, so how many faults it leaves varies from
    run to run (50 to 1,500 per step here); its static thresholds (what it starts from, set through the
    environment, where keep_freed_memory steps aside) return every freed activation and fault it in again."""
    import platform
    if platform.libc_ver()[0] != "glibc":
        pytest.skip("not glibc")
    kept = _faults({})
    returned = _faults({"MALLOC_MMAP_THRESHOLD_": "131072", "MALLOC_TRIM_THRESHOLD_": "131072"})
    assert kept <= 50, f"{kept} page faults per step with the memory kept"
    assert returned >= 4 * kept + 200, f"{kept} page faults per step with the memory kept, {returned} without"


def test_it_steps_aside_for_the_users_allocator_settings(monkeypatch):
    import mmoe.training.device as D
    monkeypatch.setattr(D, "_kept", False)
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=1")
    assert D.keep_freed_memory() is False
    monkeypatch.delenv("GLIBC_TUNABLES")
    monkeypatch.setenv("MMOE_KEEP_FREED_MEMORY", "0")
    assert D.keep_freed_memory() is False
    assert resource.getrusage(resource.RUSAGE_SELF).ru_minflt >= 0
