"""mmoe.views.presets: every preset is a valid configuration; the 3-architecture comparison."""
from mmoe.config import ModelConfig
from mmoe.views.presets import PRESETS, compare_configs, preset, widths_text


def test_presets_are_valid_and_named():
    assert {"Quick look", "Paper (census)", "Sparse top-2"} <= set(PRESETS)
    for name, p in PRESETS.items():
        assert preset(name) is p and p.description
        assert ModelConfig.from_dict(p.model.to_dict()) == p.model
    assert PRESETS["Sparse top-2"].model.top_k == 2


def test_compare_configs():
    cfgs = compare_configs(ModelConfig(num_experts=6, top_k=2, expert_hidden=(8,)))
    assert [c.arch for c in cfgs] == ["mmoe", "omoe", "shared-bottom"]
    assert cfgs[1].top_k == 2 and cfgs[2].top_k is None
    assert all(c.expert_hidden == (8,) for c in cfgs)


def test_widths_text():
    assert widths_text((64, 32)) == "64,32" and widths_text(()) == ""
