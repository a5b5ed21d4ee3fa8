"""Where and how a run computes: the device (``resolve_device``), whether the data can live on it
(``fits_on_device``), CPU threads (``auto_threads``, ``MMOE_THREADS``), precision (``use_bf16``) and
the C allocator's thresholds for a training process (``keep_freed_memory``)."""
from __future__ import annotations

import ctypes
import os
import platform
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


# glibc malloc's thresholds for a training process: blocks up to MMAP_BELOW bytes come from the heap, and
# up to TRIM_ABOVE bytes of freed heap stay with the process between two steps
MMAP_BELOW, TRIM_ABOVE = 16 << 20, 64 << 20
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3       # mallopt parameters (malloc.h)
_kept = False


def keep_freed_memory() -> bool:
    """Keep the memory of freed step temporaries in the process (glibc only; once per process).

    A CPU training step allocates and frees the same few-megabyte activations every step. glibc hands
    such blocks back to the kernel when they are freed (``mmap``/heap trimming) and gets them again,
    zeroed page by page, on the next step: 331 page faults per step of the step benchmark in fp32
    (``bench/ANALYSIS.md``). Raising the two thresholds makes the next step reuse the same memory.
    Nothing is done where the allocator is not glibc's, where the user set ``MALLOC_MMAP_THRESHOLD_``,
    ``MALLOC_TRIM_THRESHOLD_`` or ``GLIBC_TUNABLES``, or preloads another allocator (``LD_PRELOAD``),
    or with ``MMOE_KEEP_FREED_MEMORY=0``. Returns whether the thresholds are set."""
    global _kept
    if _kept:
        return True
    if os.environ.get("MMOE_KEEP_FREED_MEMORY", "1") == "0" or platform.system() != "Linux" \
            or platform.libc_ver()[0] != "glibc" or any(k in os.environ for k in (
                "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES", "LD_PRELOAD")):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        _kept = bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_BELOW)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, TRIM_ABOVE))
    except (OSError, AttributeError):
        return False
    return _kept
