"""bench.bench_compile: the traceable form it compiles trains like the product's step (so the benchmark compares
the same training), and its report says when the compile pays. No compile here (that takes ~20 s)."""
from __future__ import annotations

import torch

from bench import bench_compile, common
from mmoe.nn.fused import FusedStep


def test_traceable_form_trains_like_the_product_step():
    prod, run_prod = bench_compile._make(FusedStep, 64)
    trace, run_trace = bench_compile._make(bench_compile.TraceableStep, 64)
    assert trace._mm is torch.mm and trace._fused_adam is None
    torch.testing.assert_close(trace.flat, prod.flat, atol=0, rtol=0)
    for _ in range(6):
        torch.testing.assert_close(run_trace(), run_prod(), atol=1e-6, rtol=0)
    torch.testing.assert_close(trace.flat, prod.flat, atol=1e-5, rtol=0)
    assert float((trace.flat - bench_compile._make(FusedStep, 64)[0].flat).abs().max()) > 1e-4    # it trained
    assert int(trace.step_t) == prod.t == 6


def test_report_says_when_the_compile_pays():
    rows = {k: {"ms_per_step": ms, "roofline_ms": 2.0, "not_gemm_share": 1 - 2.0 / ms}
            for k, ms in (("eager (the product)", 4.0), ("eager, traceable form", 4.1), ("compiled", 3.0))}
    res = {"machine": common.machine_info("cpu"),
           "batch_size": 1024, "rows": rows, "compiled_vs_eager": 0.75, "cache": "cold (empty cache dir)",
           "compile_s": 20.0, "compile_again_s": 0.5,
           "break_even_steps": {"compile_s": 20000.0, "compile_again_s": None},
           "check": {"steps": 5, "max_abs_loss_diff": 6e-8, "max_abs_weight_diff": 1e-7}}
    md = bench_compile.render(res)
    assert "| compiled | 3.000 | 2.000 | 33.3% |" in md
    assert "pays after 20,000 steps (never with a filled cache)" in md
    assert "**0.750x**" in md and "**20.0 s**" in md
