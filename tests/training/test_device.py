"""mmoe.training.device: CPU threads (auto_threads, MMOE_THREADS) and putting them back."""
import os

import pytest
import torch

from mmoe.config import TaskSpec
from mmoe.training import Callback, fit
from mmoe.training import auto_threads as real_auto_threads

TASKS = (TaskSpec("click", "binary", positive="yes"), TaskSpec("score", "regression"),
         TaskSpec("kind", "multiclass"))
from training_helpers import _fit


def test_fit_puts_torch_threads_back(data):
    """fit sets torch's intra-op threads for its run only (a library must not leave them changed)."""
    before = torch.get_num_threads()
    model, cfg = _fit(data, threads=before + 1, epochs=1)
    seen = []

    class Threads(Callback):
        def on_batch_end(self, s): seen.append(torch.get_num_threads())

    fit(model, data, cfg, callbacks=[Threads()])
    assert seen and set(seen) == {before + 1}
    assert torch.get_num_threads() == before


def test_auto_threads_counts_other_processes_not_its_own_threads(monkeypatch):
    import mmoe.training.device as train_mod

    monkeypatch.delenv("MMOE_THREADS", raising=False)
    calls = []

    def busy(value):
        def sample():
            calls.append(value)
            return value
        return sample

    monkeypatch.setattr(train_mod.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.setattr(train_mod, "_busy_elsewhere", busy(0.0))
    assert real_auto_threads() == 4
    monkeypatch.setattr(train_mod, "_busy_elsewhere", busy(2.6))
    assert real_auto_threads() == 1
    monkeypatch.setattr(train_mod, "_busy_elsewhere", busy(9.0))
    assert real_auto_threads() == 1
    assert calls == [0.0, 2.6, 9.0]      # the patched seam is what auto_threads really asks
    # where the kernel's runnable count is not readable: the 1-minute load average
    monkeypatch.setattr(train_mod, "_busy_elsewhere", lambda: None)
    monkeypatch.setattr(train_mod.os, "getloadavg", lambda: (1.2, 0.0, 0.0))
    assert real_auto_threads() == 3


def test_mmoe_threads_setting_fixes_the_thread_count(data, monkeypatch):
    """MMOE_THREADS=N (the public setting CI and the tests use) fixes the threads of a run."""
    monkeypatch.setenv("MMOE_THREADS", "2")
    assert real_auto_threads() == 2
    seen = []

    class Threads(Callback):
        def on_batch_end(self, s): seen.append(torch.get_num_threads())

    model, cfg = _fit(data, epochs=1)
    fit(model, data, cfg, callbacks=[Threads()])
    assert seen and set(seen) == {2}
    monkeypatch.setenv("MMOE_THREADS", "many")
    from mmoe.config import ConfigError
    with pytest.raises(ConfigError, match="MMOE_THREADS"):
        real_auto_threads()


@pytest.mark.skipif(not os.path.exists("/proc/loadavg"), reason="needs Linux /proc")
def test_busy_elsewhere_excludes_this_process():
    from mmoe.training.device import _busy_elsewhere, _running_here

    assert _running_here() >= 1            # this thread, reading
    busy = _busy_elsewhere(samples=3, gap=0.0)
    assert busy is not None and busy >= 0.0
