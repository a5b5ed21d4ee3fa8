"""The model contract of DESIGN.md, called from outside the package."""
import pytest
import torch
from torch import nn

from mmoe import MMoE, OMoE, SharedBottom
from mmoe.config import ModelConfig
from mmoe.nn.model import InputEncoder, StackedMLP, TabularModel, count_parameters, model_meta

TASKS = {"like": 1, "click": 1, "kind": 4}
KW = dict(num_experts=8, expert_hidden=(64, 32), gate_hidden=(), tower_hidden=(16,), top_k=None, dropout=0.0)


@pytest.mark.parametrize("cls", [MMoE, OMoE, SharedBottom])
@pytest.mark.parametrize("top_k", [None, 2])
def test_contract_shapes(cls, top_k):
    model = cls(in_features=100, tasks=TASKS, **{**KW, "top_k": top_k})
    x = torch.randn(37, 100)
    out = model(x)
    assert set(out.preds) == set(TASKS)
    for name, width in TASKS.items():
        assert out.preds[name].shape == (37, width)
    assert out.aux_loss.dim() == 0
    if cls is SharedBottom:
        assert out.gates is None
        return
    assert out.gates.shape == (3, 37, 8)
    torch.testing.assert_close(out.gates.sum(-1), torch.ones(3, 37))
    assert (out.gates >= 0).all()
    if top_k:
        assert ((out.gates > 0).sum(-1) <= top_k).all()
        assert out.aux_loss.item() > 0
    else:
        assert out.aux_loss.item() == 0


def test_omoe_shares_one_gate_mmoe_does_not():
    x = torch.randn(16, 20)
    g = OMoE(20, TASKS, num_experts=4)(x).gates
    assert torch.equal(g[0], g[1]) and torch.equal(g[1], g[2])
    g = MMoE(20, TASKS, num_experts=4)(x).gates
    assert not torch.allclose(g[0], g[1])


def test_experts_start_different():
    m = MMoE(10, {"a": 1}, num_experts=4, expert_hidden=(8,))
    w = m.experts.weights[0]
    for i in range(1, 4):
        assert not torch.allclose(w[0], w[i])


def _loop_reference(model: MMoE, x: torch.Tensor) -> dict:
    """Straightforward per-expert, per-task loops with the same weights."""
    def mlp(stack, i, h, activate_last):
        n = len(stack.weights)
        for l in range(n):
            h = h @ stack.weights[l][i] + stack.biases[l][i, 0]
            if l < n - 1 or activate_last:
                h = torch.relu(h)
        return h
    experts = [mlp(model.experts, i, x, True) for i in range(model.num_experts)]
    preds = {}
    for t, name in enumerate(model.task_names):
        g = torch.softmax(mlp(model.gate, 0 if model.shared_gate else t, x, False), -1)
        if model.top_k:
            v, idx = g.topk(model.top_k, -1)
            g = torch.zeros_like(g).scatter(-1, idx, v / v.sum(-1, keepdim=True))
        mixed = sum(g[:, i:i + 1] * experts[i] for i in range(model.num_experts))
        preds[name] = mlp(model.towers, t, mixed, False)[:, :model.task_dims[name]]
    return preds


@pytest.mark.parametrize("cls", [MMoE, OMoE])
@pytest.mark.parametrize("top_k", [None, 1, 3])
@pytest.mark.parametrize("gate_hidden", [(), (12,)])
def test_stacked_equals_loop(cls, top_k, gate_hidden):
    model = cls(24, {"a": 1, "b": 3}, num_experts=6, expert_hidden=(16, 8), gate_hidden=gate_hidden,
                tower_hidden=(5,), top_k=top_k)
    x = torch.randn(50, 24)
    out = model(x)
    ref = _loop_reference(model, x)
    for name in ref:
        torch.testing.assert_close(out.preds[name], ref[name], rtol=1e-5, atol=1e-5)


def test_sparse_gradients_reach_routed_experts_only():
    model = MMoE(8, {"a": 1}, num_experts=4, expert_hidden=(6,), top_k=1)
    x = torch.randn(3, 8)
    out = model(x)
    out.preds["a"].sum().backward()
    used = set(out.gates[0].argmax(-1).tolist())
    grads = model.experts.weights[0].grad.abs().sum((1, 2))
    for e in range(4):
        assert (grads[e] > 0) == (e in used)


def test_balance_loss_prefers_balanced_routing():
    model = MMoE(4, {"a": 1}, num_experts=4, expert_hidden=(4,), top_k=1, aux_loss_weight=1.0)
    with torch.no_grad():
        model.gate.weights[0].zero_()
        model.gate.biases[0].zero_()
        model.gate.biases[0][0, 0, 0] = 5.0            # every row prefers expert 0
    collapsed = model(torch.randn(64, 4)).aux_loss.item()
    with torch.no_grad():
        model.gate.biases[0].zero_()
        model.gate.weights[0][0, 0] = torch.tensor([10.0, -10.0, 0.0, 0.0])
    spread = model(torch.randn(64, 4)).aux_loss.item()
    assert collapsed > spread
    assert collapsed == pytest.approx(4 * 1.0 * (torch.softmax(torch.tensor([5.0, 0, 0, 0]), 0)[0].item()), rel=1e-4)


class Custom(nn.Module):
    def __init__(self, d, h):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d, h), nn.Tanh())

    def forward(self, x):
        return self.net(x)


@pytest.mark.parametrize("top_k", [None, 2])
def test_custom_experts(top_k):
    experts = [Custom(10, 7) for _ in range(3)]
    model = MMoE(10, {"a": 1, "b": 2}, experts=experts, tower_hidden=(4,), top_k=top_k)
    assert model.num_experts == 3
    x = torch.randn(9, 10)
    out = model(x)
    assert out.gates.shape == (2, 9, 3) and out.preds["b"].shape == (9, 2)
    out.preds["a"].sum().backward()
    assert experts[0].net[0].weight.grad is not None
    with torch.no_grad():
        h = torch.stack([m(x) for m in experts])
        mixed = torch.einsum("tbe,ebh->tbh", out.gates, h)
        torch.testing.assert_close(model.towers(mixed)[0, :, :1], out.preds["a"])


def test_custom_experts_must_agree_on_width():
    with pytest.raises(ValueError, match="output width"):
        MMoE(10, {"a": 1}, experts=[Custom(10, 7), Custom(10, 8)])


def test_dropout_only_in_training():
    m = MMoE(10, {"a": 1}, num_experts=2, dropout=0.5)
    x = torch.randn(20, 10)
    m.eval()
    torch.testing.assert_close(m(x).preds["a"], m(x).preds["a"])
    m.train()
    assert not torch.allclose(m(x).preds["a"], m(x).preds["a"])


def test_input_encoder_and_tabular_model():
    enc = InputEncoder(3, [5, 7, 4], [4, 2, 4])
    x_num = torch.randn(6, 3)
    x_cat = torch.tensor([[0, 6, 3]] * 6)
    out = enc(x_num, x_cat)
    assert out.shape == (6, 3 + 10) and enc.out_features == 13
    # each column has its own rows in the shared table: same index, different columns -> different vectors
    same = enc(x_num, torch.zeros(6, 3, dtype=torch.long))
    assert not torch.allclose(same[:, 3:7], same[:, 9:13])
    for arch in ("mmoe", "omoe", "shared-bottom"):
        meta = model_meta(ModelConfig(arch=arch, num_experts=3), 3, [5, 7, 4], [4, 2, 4], {"a": 1, "b": 3})
        model = TabularModel(meta)
        o = model(x_num, x_cat)
        assert o.preds["b"].shape == (6, 3)
        again = TabularModel(meta)
        again.load_state_dict(model.state_dict())
        torch.testing.assert_close(again(x_num, x_cat).preds["b"], o.preds["b"])
        assert count_parameters(model) > 0


def test_numeric_only_and_categorical_only_inputs():
    assert InputEncoder(0, [3], [2])(torch.zeros(4, 0), torch.zeros(4, 1, dtype=torch.long)).shape == (4, 2)
    assert InputEncoder(2, [], [])(torch.zeros(4, 2), torch.zeros(4, 0, dtype=torch.long)).shape == (4, 2)


def test_stacked_mlp_per_member_input():
    s = StackedMLP(3, 4, (5, 2), activate_last=False)
    x = torch.randn(3, 7, 4)
    y = s(x)
    for i in range(3):
        ref = torch.relu(x[i] @ s.weights[0][i] + s.biases[0][i]) @ s.weights[1][i] + s.biases[1][i]
        torch.testing.assert_close(y[i], ref)


@pytest.mark.parametrize("arch", ["mmoe", "omoe", "shared-bottom"])
@pytest.mark.parametrize("gate_hidden", [(), (6,)])
def test_fused_first_layer_and_projected_embeddings_equal_the_plain_path(arch, gate_hidden):
    """TabularModel's fast path (one GEMM for experts + gates, projected embedding tables)
    computes the same function and the same gradients as encoder -> core."""
    cards, dims = [5, 7, 4, 30], [4, 2, 4, 3]
    meta = model_meta(ModelConfig(arch=arch, num_experts=3, expert_hidden=(8, 5), gate_hidden=gate_hidden),
                      3, cards, dims, {"a": 1, "b": 3})
    model = TabularModel(meta)
    x_num = torch.randn(40, 3)
    x_cat = torch.stack([torch.randint(0, c, (40,)) for c in cards], 1)
    fast = model(x_num, x_cat)
    plain = model.core(model.encoder(x_num, x_cat))
    for k in fast.preds:
        torch.testing.assert_close(fast.preds[k], plain.preds[k], rtol=1e-5, atol=1e-5)
    if fast.gates is not None:
        torch.testing.assert_close(fast.gates, plain.gates)
    g_fast = torch.autograd.grad(sum(v.sum() for v in fast.preds.values()), list(model.parameters()))
    g_plain = torch.autograd.grad(sum(v.sum() for v in plain.preds.values()), list(model.parameters()))
    for a, b in zip(g_fast, g_plain):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    # a batch too small for projection to pay off takes the plain GEMM inside project(); same result
    one = model(x_num[:1], x_cat[:1])
    torch.testing.assert_close(one.preds["b"], fast.preds["b"][:1], rtol=1e-5, atol=1e-5)
