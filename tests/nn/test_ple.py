"""CGC and PLE (mmoe.nn.ple): the model contract, gates that see only the shared and the task's own
experts, the batched computation against a plain per-expert loop, CGC = PLE with one level, and how
ModelConfig refuses what they cannot do."""
import pytest
import torch

from mmoe import CGC, PLE
from mmoe.config import ConfigError, ModelConfig, layered_expert_owners
from mmoe.nn import TabularModel, count_parameters
from mmoe.nn.fused import unsupported
from mmoe.nn.model import model_meta
from mmoe.nn.sizes import parameter_count

TASKS = {"like": 1, "click": 1, "kind": 4}
KW = dict(expert_hidden=(16, 8), gate_hidden=(), tower_hidden=(5,), dropout=0.0)


def test_the_documented_call():
    torch.manual_seed(0)
    model = PLE(in_features=100, tasks={"a": 1, "b": 1}, shared_experts=2, task_experts=2, levels=2,
                expert_hidden=(64, 32), gate_hidden=(), tower_hidden=(16,), dropout=0.0)
    out = model(torch.randn(7, 100))
    assert out.preds["a"].shape == (7, 1) and out.gates.shape == (2, 7, 6) and out.aux_loss.item() == 0


@pytest.mark.parametrize("levels", [1, 2, 3])
@pytest.mark.parametrize("gate_hidden", [(), (6,)])
def test_shapes_and_gates_that_sum_to_one(levels, gate_hidden):
    model = PLE(12, TASKS, shared_experts=3, task_experts=2, levels=levels, **{**KW, "gate_hidden": gate_hidden})
    out = model(torch.randn(33, 12))
    for name, width in TASKS.items():
        assert out.preds[name].shape == (33, width)
    assert out.gates.shape == (3, 33, 3 + 3 * 2) and model.num_experts == 9
    torch.testing.assert_close(out.gates.sum(-1), torch.ones(3, 33))
    assert out.aux_loss.dim() == 0 and out.aux_loss.item() == 0


@pytest.mark.parametrize("cls", [CGC, PLE])
def test_a_task_gate_gives_zero_weight_to_the_other_tasks_experts(cls):
    model = cls(10, TASKS, shared_experts=2, task_experts=3, **KW)
    gates = model(torch.randn(50, 10)).gates                                # [t, b, e]
    owners = layered_expert_owners(list(TASKS), 2, 3)
    assert owners == [None, None] + ["like"] * 3 + ["click"] * 3 + ["kind"] * 3 == model.expert_owners
    for t, task in enumerate(TASKS):
        seen = torch.tensor([o is None or o == task for o in owners])
        assert (gates[t][:, ~seen] == 0).all()                               # exactly zero, not small
        assert (gates[t][:, seen] > 0).all()


def _mlp(stack, i, h, activate_last):
    n = len(stack.weights)
    for layer in range(n):
        h = h @ stack.weights[layer][i] + stack.biases[layer][i, 0]
        if layer < n - 1 or activate_last:
            h = torch.relu(h)
    return h


def _loop_reference(model: PLE, x: torch.Tensor) -> tuple[dict, torch.Tensor]:
    """The paper's equations with explicit loops over levels, tasks and experts, using the model's weights."""
    t, s, k = model.num_tasks, model.shared_experts, model.task_experts
    inputs = [x] * (t + 1)                                                   # task 0..t-1, shared last
    for level in model.levels:
        e = level.num_experts
        owner = [t] * s + [i for i in range(t) for _ in range(k)]
        f = [_mlp(level.experts, j, inputs[owner[j]], True) for j in range(e)]
        nxt, gates = [], []
        for i in range(t):
            seen = list(range(s)) + list(range(s + i * k, s + (i + 1) * k))
            g = torch.softmax(_mlp(level.task_gates, i, inputs[i], False), -1)
            full = torch.zeros(x.shape[0], e)
            full[:, seen] = g
            gates.append(full)
            nxt.append(sum(g[:, n:n + 1] * f[j] for n, j in enumerate(seen)))
        if level.shared_gate is not None:
            g = torch.softmax(_mlp(level.shared_gate, 0, inputs[t], False), -1)
            nxt.append(sum(g[:, j:j + 1] * f[j] for j in range(e)))
        inputs = nxt
    preds = {name: _mlp(model.towers, i, inputs[i], False)[:, :model.task_dims[name]]
             for i, name in enumerate(model.task_names)}
    return preds, torch.stack(gates)


@pytest.mark.parametrize("levels", [1, 2, 3])
@pytest.mark.parametrize("gate_hidden", [(), (6,)])
def test_batched_equals_the_loop_over_experts(levels, gate_hidden):
    torch.manual_seed(1)
    model = PLE(9, {"a": 1, "b": 3}, shared_experts=2, task_experts=3, levels=levels,
                **{**KW, "gate_hidden": gate_hidden})
    x = torch.randn(21, 9)
    out = model(x)
    preds, gates = _loop_reference(model, x)
    torch.testing.assert_close(out.gates, gates, rtol=1e-5, atol=1e-6)
    for name in preds:
        torch.testing.assert_close(out.preds[name], preds[name], rtol=1e-5, atol=1e-5)


def test_cgc_is_ple_with_one_level():
    torch.manual_seed(3)
    cgc = CGC(8, TASKS, shared_experts=2, task_experts=1, **KW)
    torch.manual_seed(3)
    ple = PLE(8, TASKS, shared_experts=2, task_experts=1, levels=1, **KW)
    a, b = cgc.state_dict(), ple.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[n], b[n]) for n in a)
    x = torch.randn(15, 8)
    oa, ob = cgc(x), ple(x)
    assert torch.equal(oa.gates, ob.gates)
    assert all(torch.equal(oa.preds[n], ob.preds[n]) for n in TASKS)
    assert cgc.levels[0].shared_gate is None                                  # no shared gate on the last level
    with pytest.raises(ValueError, match="one extraction level"):
        CGC(8, TASKS, levels=2)


def test_experts_are_stacked_weights_not_modules_per_expert():
    """However many experts, a level holds the same few parameter tensors with the experts stacked on
    their first axis (one batched matmul per layer, no Python loop over experts)."""
    small = PLE(6, TASKS, shared_experts=1, task_experts=1, levels=2, **KW)
    big = PLE(6, TASKS, shared_experts=7, task_experts=4, levels=2, **KW)
    assert [n for n, _ in small.named_parameters()] == [n for n, _ in big.named_parameters()]
    assert big.levels[0].experts.weights[0].shape == (7 + 3 * 4, 6, 16)      # [e, d, h]
    assert big.levels[1].experts.weights[0].shape == (19, 8, 16)             # level 2 reads level 1's width
    assert big.levels[0].task_gates.weights[0].shape == (3, 6, 7 + 4)        # [t, d, v]
    assert big.levels[0].shared_gate.weights[0].shape == (1, 6, 19)          # [1, d, e]
    assert big.levels[1].shared_gate is None


def test_in_cgc_a_task_loss_trains_only_the_shared_and_its_own_experts():
    model = CGC(6, {"a": 1, "b": 1}, shared_experts=2, task_experts=2, **KW)
    model(torch.randn(20, 6)).preds["a"].sum().backward()
    per_expert = model.levels[0].experts.weights[0].grad.abs().sum((1, 2))   # [e]
    assert (per_expert[:4] > 0).all() and (per_expert[4:] == 0).all()        # s0 s1 a:t0 a:t1 | b's


def test_dense_only_and_valid_counts():
    with pytest.raises(ValueError, match="top_k must be None"):
        PLE(4, {"a": 1}, top_k=2)
    with pytest.raises(ValueError, match="shared_experts must be at least 1"):
        PLE(4, {"a": 1}, shared_experts=0)


@pytest.mark.parametrize("arch", ["cgc", "ple"])
@pytest.mark.parametrize("gate_hidden", [(), (6,)])
def test_tabular_model_builds_them_and_prices_them(arch, gate_hidden):
    mc = ModelConfig(arch=arch, shared_experts=2, task_experts=3, expert_hidden=(8, 4), gate_hidden=gate_hidden,
                     tower_hidden=(5,), levels=3 if arch == "ple" else None)
    for meta in (model_meta(mc, 4, [3, 7], [2, 5], {"a": 1, "b": 3}), model_meta(mc, 2, [], [], {"a": 1})):
        model = TabularModel(meta)
        assert type(model.core).__name__ == arch.upper()
        assert model.core.num_levels == (3 if arch == "ple" else 1)
        assert parameter_count(meta, mc) == count_parameters(model)
        out = model(torch.randn(5, meta["num_numeric"]), torch.zeros(5, len(meta["cardinalities"]), dtype=torch.long))
        assert out.gates.shape == (len(meta["task_dims"]), 5, model.num_experts)
        # the hand-written fast path does not know this core: the autograd step trains it
        from mmoe.config import TrainConfig
        assert "unknown model core" in unsupported(model, TrainConfig())


def test_ple_levels_default_to_two_and_cgc_to_one():
    assert ModelConfig(arch="ple").num_levels == 2 and ModelConfig(arch="ple").levels is None
    assert ModelConfig(arch="cgc").num_levels == 1
    assert ModelConfig(arch="ple", levels=3).num_levels == 3
    assert ModelConfig.from_dict(ModelConfig(arch="ple", levels=3).to_dict()) == ModelConfig(arch="ple", levels=3)
    # a run stored before these fields existed still loads
    old = ModelConfig().to_dict()
    for k in ("shared_experts", "task_experts", "levels"):
        old.pop(k)
    assert ModelConfig.from_dict(old) == ModelConfig()


@pytest.mark.parametrize("kw, message", [
    (dict(arch="cgc", levels=2), "CGC has one extraction level, got levels=2; use arch ple"),
    (dict(arch="ple", top_k=2), "sparse top-k gating is not available for PLE"),
    (dict(arch="cgc", top_k=1), "leave top-k out"),
    (dict(arch="ple", shared_experts=0), "number of shared experts must be a whole number between 1 and 64, got 0"),
    (dict(arch="cgc", task_experts=65), "number of experts per task must be a whole number between 1 and 64"),
    (dict(arch="ple", task_experts=1.5), "--task-experts"),
    (dict(arch="ple", levels=9), "extraction levels must be a whole number between 1 and 8, got 9 (--levels"),
    (dict(arch="ple", levels="two"), "extraction levels"),
    (dict(arch="plx"), "cgc, ple"),
])
def test_config_messages(kw, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("+", r"\+")):
        ModelConfig(**kw)


def test_top_k_zero_is_dense_for_them_too():
    assert ModelConfig(arch="ple", top_k=0).top_k is None


def test_expert_owners_per_arch():
    assert ModelConfig(arch="mmoe", num_experts=3).expert_owners(["a", "b"]) == [None] * 3
    assert ModelConfig(arch="shared-bottom").expert_owners(["a"]) == []
    assert ModelConfig(arch="cgc", shared_experts=1, task_experts=2).expert_owners(["a", "b"]) == [
        None, "a", "a", "b", "b"]
