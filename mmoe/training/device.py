"""Where and how a run computes: the device (``resolve_device``), whether the data can live on it
(``fits_on_device``), CPU threads (``auto_threads``, ``MMOE_THREADS``) and precision (``use_bf16``)."""
from __future__ import annotations

import os
import time

import torch

from mmoe.config import ConfigError

RESIDENT_SHARE = 0.5   # keep the data on the GPU when it takes at most this share of its free memory
# deterministic cuBLAS (fixed workspaces, no split-K races): must be set before cuBLAS starts; a
# setting the user made is kept
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def fits_on_device(data, device: torch.device) -> bool:
    """Can the prepared tensors live on the device for the whole run (the fast path)?"""
    if device.type != "cuda":
        return True
    nbytes = data.x_num.nbytes + data.x_cat.nbytes + sum(t.nbytes for t in (*data.y.values(), *data.mask.values()))
    free, _ = torch.cuda.mem_get_info(device)
    return nbytes <= RESIDENT_SHARE * free


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device cuda was asked for but no CUDA GPU is available here; use --device auto or cpu")
    return torch.device(name)


def _running_here() -> int:
    """Threads of this process in state R (running or runnable), from /proc/self/task."""
    n = 0
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                n += f.read().rsplit(")", 1)[1].split()[0] == "R"
        except (OSError, IndexError):
            pass
    return n


def _busy_elsewhere(samples: int = 9, gap: float = 0.001) -> float | None:
    """Tasks of other processes running on the machine right now: the median over a few samples
    of the kernel's runnable count (/proc/loadavg) less this process's own runnable threads (which
    include intra-op threads still spinning after the last parallel op). The median ignores a
    kernel thread that runs for a moment (e.g. reclaiming memory a moment ago freed); a process
    that computes shows in most samples. None off Linux."""
    counts = []
    for _ in range(samples):
        try:
            with open("/proc/loadavg") as f:
                running = int(f.read().split()[3].split("/")[0])
            counts.append(max(0, running - max(1, _running_here())))
        except (OSError, ValueError, IndexError):
            return None
        time.sleep(gap)
    return float(sorted(counts)[len(counts) // 2])


def auto_threads() -> int:
    """CPU threads for training: the cores not busy right now, at least 1.

    Intra-op threads that compete with other busy processes for the same cores spin and
    wait on each other; on a 2-core machine with one other busy process, two threads
    train about ten times slower than one. "Busy" is what runs now (sampled), not the
    1-minute load average, which still counts this process's own work of the last minute
    and would leave a core idle after any other computation (the load average is the
    fallback where the kernel's runnable count is not readable).

    ``MMOE_THREADS=N`` in the environment fixes the count instead (a shared machine, CI, tests). Under
    torchrun the processes of one node share its cores evenly.
    """
    fixed = os.environ.get("MMOE_THREADS", "").strip()
    if fixed:
        try:
            return max(1, int(fixed))
        except ValueError:
            raise ConfigError(f"MMOE_THREADS={fixed!r}: give a whole number of CPU threads, e.g. MMOE_THREADS=2") from None
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    local = int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)
    if local > 1:     # torchrun: this node's processes split its cores (and would count each other as busy)
        return max(1, cores // local)
    busy = _busy_elsewhere()
    if busy is None:
        try:
            busy = os.getloadavg()[0]
        except OSError:
            busy = 0.0
    return max(1, min(cores, int(cores - busy + 0.5)))


def use_bf16(precision: str, device: torch.device) -> bool:
    """bf16 autocast (fp32 weights, optimiser and losses): always on CUDA; on the CPU only where
    it has native bf16 dot products (AVX512-BF16 or AMX), where bf16 GEMMs run several times
    faster than fp32; elsewhere bf16 would be emulated and slower."""
    if precision == "fp32":
        return False
    if precision == "bf16" or device.type == "cuda":
        return True
    cpu = getattr(torch, "cpu", None)
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(cpu, p, lambda: False)() for p in probes)
