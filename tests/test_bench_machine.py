"""bench.common: what every benchmark result records about the machine, and the no-bf16 emulation."""
from __future__ import annotations

import torch

from bench import common
from mmoe.training import use_bf16


def test_isa_caps_are_recorded_and_shown(monkeypatch):
    for k in common.ISA_CAPS:
        monkeypatch.delenv(k, raising=False)
    plain = common.machine_info("cpu")
    assert "isa_caps" not in plain and "capped" not in common.machine_line(plain)
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    info = common.machine_info("cpu")
    assert info["isa_caps"] == {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
    assert "capped: ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2" in common.machine_line(info)


def test_no_bf16_makes_auto_precision_fp32(monkeypatch):
    """``--no-bf16``: the product's ``auto`` resolves as on a CPU without bf16, and the result says so."""
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)   # a CPU with bf16 ...
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    monkeypatch.setattr(common, "_NO_BF16", False)
    assert use_bf16("auto", torch.device("cpu"))
    common.emulate_no_bf16()                                                        # ... answering as one without
    assert not use_bf16("auto", torch.device("cpu"))
    assert use_bf16("bf16", torch.device("cpu"))                                    # (an explicit choice stays)
    info = common.machine_info("cpu")
    assert info["bf16_probes_off"] and "bf16 probes off" in common.machine_line(info)
