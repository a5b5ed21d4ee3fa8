"""Shared benchmark helpers: timing, machine facts, GEMM rate, FLOP counts, RESULTS.md writer.

Rules every benchmark follows (so numbers can be re-run and trusted):
- one process per benchmark (``bench/run_all.py`` starts each in a subprocess);
- warm-up before timing; the median of N repeats is reported, never a lone time;
- product and peers are *interleaved*: repeat r runs every contender once, in an
  order rotated per repeat, so drift (thermal, noisy neighbours) hits all alike;
- results are printed as ratios against a reference measured in the same run.
"""
from __future__ import annotations

import json
import os
import platform
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Mapping, Sequence

import torch

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS_MD = BENCH_DIR / "RESULTS.md"
RESULTS_JSON_DIR = BENCH_DIR / "results"          # one JSON per benchmark (git-ignored by run_all)
# census-income beside the checkout; MMOE_BENCH_CENSUS: another copy (a GPU machine has no ../shared, gpu_check.sh)
CENSUS = Path(os.environ.get("MMOE_BENCH_CENSUS") or REPO / ".." / "shared" / "data" / "census-income.csv.gz").resolve()


# ----------------------------------------------------------------------------- machine

def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


FLAGS = {"avx2": "AVX2", "avx512f": "AVX512F", "avx512_vnni": "AVX512-VNNI", "avx512_bf16": "AVX512-BF16",
         "amx_bf16": "AMX-BF16", "amx_tile": "AMX-TILE"}


def cpu_flags() -> list[str]:
    """The CPU features that decide which GEMMs are fast here (bf16 needs AVX512-BF16 or AMX)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                have = set(line.split(":", 1)[1].split())
                return [name for flag, name in FLAGS.items() if flag in have]
    except OSError:
        pass
    return []


# environment variables that cap the instruction sets torch's own kernels, oneDNN and MKL use: with all three
# set to AVX2, a CPU with AVX512 runs the code a CPU without it would (recorded with every result)
ISA_CAPS = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")
_NO_BF16 = False


def emulate_no_bf16() -> None:
    """Make this process answer as a CPU without native bf16 (``--no-bf16``): torch's AVX512-BF16 and AMX
    probes return False, so the product's ``auto`` precision resolves to fp32, as ``use_bf16`` does there."""
    global _NO_BF16
    torch.cpu._is_avx512_bf16_supported = lambda: False
    torch.cpu._is_amx_tile_supported = lambda: False
    _NO_BF16 = True


def machine_info(device: str = "cpu") -> dict:
    info = {
        "cpu": cpu_model(),
        "cpu_flags": cpu_flags(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": device,
    }
    caps = {k: os.environ[k] for k in ISA_CAPS if os.environ.get(k)}
    if caps:
        info["isa_caps"] = caps
    if _NO_BF16:
        info["bf16_probes_off"] = True
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def machine_line(info: Mapping) -> str:
    flags = info.get("cpu_flags")
    s = (f"{info['cpu']}, {info['cores']} cores"
         + (f" ({' '.join(flags) if flags else 'none of AVX2/AVX512/AMX'})" if flags is not None else "")
         + f", torch {info['torch']} ({info['torch_threads']} threads), Python {info['python']}")
    if info.get("isa_caps"):
        s += "; capped: " + " ".join(f"{k}={v}" for k, v in info["isa_caps"].items())
    if info.get("bf16_probes_off"):
        s += "; bf16 probes off (run as on a CPU without bf16)"
    if "gpu" in info:
        s += f", GPU {info['gpu']}"
    return s


def sync(device: str) -> None:
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


# ----------------------------------------------------------------------------- timing

def median(xs: Sequence[float]) -> float:
    return float(statistics.median(xs))


def time_call(fn: Callable[[], object], device: str = "cpu") -> float:
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t0


def time_per_iter(step: Callable[[], object], iters: int, device: str = "cpu") -> float:
    """Seconds per call of ``step``, timed over ``iters`` back-to-back calls."""
    sync(device)
    t0 = time.perf_counter()
    for _ in range(iters):
        step()
    sync(device)
    return (time.perf_counter() - t0) / iters


def interleaved(contenders: Mapping[str, Callable[[], float]], repeats: int,
                log: Callable[[str], None] | None = None) -> dict[str, list[float]]:
    """Run each contender's measurement ``repeats`` times, interleaved and rotated.

    Each callable performs one measurement and returns a number (seconds, or any
    metric); the order of contenders is rotated every repeat. Returns name -> list.
    """
    names = list(contenders)
    out: dict[str, list[float]] = {n: [] for n in names}
    for r in range(repeats):
        k = r % len(names)
        order = names[k:] + names[:k]
        for n in order:
            v = contenders[n]()
            out[n].append(v)
            if log:
                log(f"  repeat {r + 1}/{repeats} {n}: {v:.4g}")
    return out


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- hardware limit

def gemm_rate(device: str = "cpu", sizes: Sequence[int] = (512, 1024, 2048), repeats: int = 7,
              dtype: torch.dtype = torch.float32) -> dict:
    """Measured GEMM rate (fp32 unless ``dtype``): for each square size, median GFLOP/s of ``torch.mm``;
    best over sizes.

    FLOPs of one n x n x n GEMM = 2 n^3.
    """
    per_size = {}
    for n in sizes:
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        c = torch.empty(n, n, device=device, dtype=dtype)
        iters = max(1, int(2e9 // (2 * n ** 3)))        # ~2 GFLOP per timed sample
        torch.mm(a, b, out=c)
        torch.mm(a, b, out=c)
        times = [time_per_iter(lambda: torch.mm(a, b, out=c), iters, device) for _ in range(repeats)]
        per_size[n] = 2 * n ** 3 / median(times) / 1e9
    best = max(per_size, key=per_size.get)
    return {"gflops": per_size[best], "size": best, "per_size": per_size}


def mlp_macs(d_in: int, widths: Sequence[int]) -> int:
    dims = (d_in, *widths)
    return sum(a * b for a, b in zip(dims[:-1], dims[1:]))


def mmoe_flops_per_sample(in_features: int, num_experts: int, expert_hidden: Sequence[int],
                          num_tasks: int, tower_hidden: Sequence[int], out_dim: int = 1) -> dict:
    """FLOPs per sample of one MMoE training step (dense gating, linear gates).

    MACs (multiply-accumulates) per sample:
        experts  E * sum_l d_l * d_{l+1}            (d_0 = in_features)
        gates    T * in_features * E
        mixture  T * E * h_last                    (gate-weighted sum)
        towers   T * sum_l t_l * t_{l+1}           (t_0 = h_last, last = out_dim)
    forward = 2 * MACs;  training = 3 * forward (forward + input-grad + weight-grad GEMMs).
    ``train_strict`` drops the input-gradient of the layers that read the raw input
    (experts' first layer, gates): nobody needs dL/dx, so that is the work actually required.
    Biases, activations, softmax and the optimiser are O(params) or O(width) and not counted.
    """
    h_last = expert_hidden[-1]
    experts = num_experts * mlp_macs(in_features, expert_hidden)
    first = num_experts * in_features * expert_hidden[0]
    gates = num_tasks * in_features * num_experts
    mix = num_tasks * num_experts * h_last
    towers = num_tasks * mlp_macs(h_last, (*tower_hidden, out_dim))
    macs = experts + gates + mix + towers
    fwd = 2 * macs
    return {"macs": macs, "forward": fwd, "train": 3 * fwd,
            "train_strict": 3 * fwd - 2 * (first + gates)}


# ----------------------------------------------------------------------------- results

def fmt(x: float, digits: int = 3) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, str):
        return x
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.{digits}g}"


def md_table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(fmt(c) if not isinstance(c, str) else c for c in r) + " |")
    return "\n".join(lines)


def write_json(name: str, payload: dict) -> Path:
    RESULTS_JSON_DIR.mkdir(exist_ok=True)
    p = RESULTS_JSON_DIR / f"{name}.json"
    p.write_text(json.dumps(payload, indent=2, default=str))
    return p


def read_json(name: str) -> dict | None:
    p = RESULTS_JSON_DIR / f"{name}.json"
    return json.loads(p.read_text()) if p.exists() else None


def replace_section(text: str, name: str, body: str) -> str:
    """Replace (or append) the block between ``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->``."""
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    block = f"{start}\n{body.rstrip()}\n{end}"
    pat = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if pat.search(text):
        return pat.sub(lambda _m: block, text)
    return text.rstrip() + "\n\n" + block + "\n"


def other_sections(text: str, rendered: Sequence[str]) -> list[tuple[str, str]]:
    """The ``(name, body)`` of every section in ``text`` not among ``rendered``: what the benchmarks run on
    their own (stream, distributed, prepare, first point, time to result) wrote, kept by ``run_all``."""
    out = []
    for m in re.finditer(r"<!-- bench:([\w-]+) -->\n(.*?)\n<!-- /bench:\1 -->", text, re.S):
        if m.group(1) not in rendered:
            out.append((m.group(1), m.group(2)))
    return out


def update_results_md(name: str, body: str, path: Path = RESULTS_MD) -> None:
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    path.write_text(replace_section(text, name, body))


def seed_all(seed: int = 0) -> None:
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def load_1min() -> str:
    """The 1-minute load average, as /proc/loadavg writes it ("n/a" where there is none)."""
    try:
        return open("/proc/loadavg").read().split()[0]
    except OSError:
        return "n/a"
