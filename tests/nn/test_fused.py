"""mmoe.nn.fused.FusedStep (hand-written forward/backward/Adam) against the autograd + torch.optim path.

Every comparison trains two deep copies of one model for a few steps on the same batches,
one through ``TrainStep(..., fused=True)`` and one through ``TrainStep(..., fused=False)``,
and checks the per-task losses at every step and all parameters afterwards.
"""
from __future__ import annotations

import copy
import io
import math
import re
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from mmoe.config import DataConfig, ModelConfig, TaskSpec, TrainConfig
from mmoe.nn.fused import unsupported
from mmoe.nn.model import MixtureOfExperts, build_model
from mmoe.training import TrainStep, fit

CPU = torch.device("cpu")
FP32 = TrainConfig(precision="fp32", lr=1e-2, device="cpu")

DEEP_GATE = r"core\.gate\.(weights|biases)\.[1-9]\d*"   # gate layers after the first

# one task of each kind; "c" has 3 classes, so the binary/regression towers are padded
MIXED = (TaskSpec("a", "binary"), TaskSpec("b", "multiclass"), TaskSpec("c", "regression"))


def _meta(specs, num_numeric=5, cards=(3, 5, 7), dims=(2, 4, 3)):
    return SimpleNamespace(num_numeric=num_numeric, cardinalities=list(cards), embedding_dims=list(dims),
                           task_dims={t.column: 3 if t.kind == "multiclass" else 1 for t in specs})


def _model(specs=MIXED, *, seed=0, num_numeric=5, cards=(3, 5, 7), dims=(2, 4, 3), **mc):
    kw = {"arch": "mmoe", "num_experts": 3, "expert_hidden": (8, 6), "gate_hidden": (), "tower_hidden": (4,)}
    kw.update(mc)
    torch.manual_seed(seed)
    meta = _meta(specs, num_numeric, cards, dims)
    return build_model(ModelConfig(**kw), meta), meta


def _batch(meta, specs, *, b=48, seed=0, missing=0.3, empty=()):
    """x_num [b, n_num], x_cat [b, n_cat] int64, per-task y and mask (tasks in ``empty``: no labelled row)."""
    g = torch.Generator().manual_seed(seed)
    x_num = torch.randn(b, meta.num_numeric, generator=g)
    cols = [torch.randint(0, c, (b,), generator=g) for c in meta.cardinalities]
    x_cat = torch.stack(cols, 1) if cols else torch.zeros(b, 0, dtype=torch.long)
    ys, masks = [], []
    for t in specs:
        if t.kind == "binary":
            y = (torch.rand(b, generator=g) < 0.4).float()
        elif t.kind == "regression":
            y = torch.randn(b, generator=g)
        else:
            y = torch.randint(0, meta.task_dims[t.column], (b,), generator=g)
        m = torch.rand(b, generator=g) >= missing
        if t.column in empty:
            m = torch.zeros(b, dtype=torch.bool)
        ys.append(y)
        masks.append(m)
    return x_num, x_cat, ys, masks


def _compare(model, specs, batches, cfg=FP32, *, loss_atol=1e-5, param_atol=1e-5):
    """Train two copies fused / autograd on ``batches``; assert equal losses per step and close params."""
    ref_model, fz_model = copy.deepcopy(model), copy.deepcopy(model)
    ref = TrainStep(ref_model, specs, cfg, CPU, fused=False)
    fz = TrainStep(fz_model, specs, cfg, CPU, fused=True)
    assert ref.fused is None and ref.optimizer is not None
    assert fz.fused is not None and fz.optimizer is None, fz.fused_unsupported
    for i, batch in enumerate(batches):
        t_ref, l_ref = ref(*batch)
        t_fz, l_fz = fz(*batch)
        assert torch.isfinite(l_fz).all() and torch.isfinite(t_fz)
        assert l_fz.shape == l_ref.shape == (len(specs),)
        torch.testing.assert_close(l_fz, l_ref, atol=loss_atol, rtol=0, msg=lambda m: f"step {i}: {m}")
        torch.testing.assert_close(t_fz, t_ref, atol=loss_atol * len(specs) * 2, rtol=0)
    ref_p = dict(ref_model.named_parameters())
    deep_gate = {n for n in ref_p if re.fullmatch(DEEP_GATE, n)}
    # the loosened names must exist whenever the gates have hidden layers (else the regex is stale)
    gate_layers = getattr(getattr(getattr(model, "core", None), "gate", None), "weights", ())
    assert bool(deep_gate) == (len(gate_layers) > 1), sorted(ref_p)
    for name, p in fz_model.named_parameters():
        # deeper gate layers can have gradients of ~1e-9 (nearly dead hidden units): their last digits
        # differ between the two paths and Adam normalises them into updates of a few 1e-6 (measured
        # up to 8e-6); every other parameter agrees to below 1e-6
        atol = 10 * param_atol if name in deep_gate else param_atol
        torch.testing.assert_close(p.detach(), ref_p[name].detach(), atol=atol, rtol=0,
                                   msg=lambda m: f"{name}: {m}")
    # and the model trained at all
    moved = max(float((p.detach() - q.detach()).abs().max())
                for p, q in zip(fz_model.parameters(), model.parameters()))
    assert moved > 1e-3
    return ref_model, fz_model


def _batches(meta, specs, n=3, **kw):
    return [_batch(meta, specs, seed=s, **kw) for s in range(n)]


# -- architectures and layer shapes ------------------------------------------------------------

@pytest.mark.parametrize("arch", ["mmoe", "omoe", "shared-bottom"])
@pytest.mark.parametrize("expert_hidden", [(8,), (8, 6)])
@pytest.mark.parametrize("gate_hidden", [(), (5,)])
@pytest.mark.parametrize("tower_hidden", [(), (4,), (4, 3)])
def test_matches_autograd_architectures(arch, expert_hidden, gate_hidden, tower_hidden):
    model, meta = _model(arch=arch, expert_hidden=expert_hidden, gate_hidden=gate_hidden,
                         tower_hidden=tower_hidden)
    _compare(model, MIXED, _batches(meta, MIXED, n=3))


@pytest.mark.parametrize("arch", ["mmoe", "omoe", "shared-bottom"])
@pytest.mark.parametrize("kinds", [("binary",), ("regression",), ("multiclass",),
                                   ("binary", "binary"), ("multiclass", "multiclass", "regression")])
def test_matches_autograd_task_kinds(arch, kinds):
    specs = tuple(TaskSpec(f"t{i}", k) for i, k in enumerate(kinds))
    model, meta = _model(specs, arch=arch, num_experts=2)
    _compare(model, specs, _batches(meta, specs, n=3))


@pytest.mark.parametrize("arch", ["mmoe", "omoe", "shared-bottom"])
def test_deeper_layers_tiny_batches(arch):
    model, meta = _model(arch=arch, expert_hidden=(8, 6, 4), gate_hidden=(5, 4), tower_hidden=(4, 3))
    _compare(model, MIXED, [_batch(meta, MIXED, b=b, seed=b, missing=0.0) for b in (1, 2, 33)])


def test_single_expert():
    model, meta = _model(num_experts=1, gate_hidden=(5,))
    _compare(model, MIXED, _batches(meta, MIXED, n=3))


# -- masks -------------------------------------------------------------------------------------

@pytest.mark.parametrize("arch", ["mmoe", "omoe", "shared-bottom"])
def test_missing_labels_and_empty_task(arch):
    model, meta = _model(arch=arch)
    batches = [_batch(meta, MIXED, seed=0, missing=0.5),
               _batch(meta, MIXED, seed=1, missing=0.3, empty=("b",)),       # multiclass task: no label
               _batch(meta, MIXED, seed=2, missing=0.3, empty=("a", "c")),   # binary + regression: none
               _batch(meta, MIXED, seed=3, missing=0.0)]
    ref_model, fz_model = _compare(model, MIXED, batches)
    # an unlabelled task has loss exactly 0 (not NaN) on the fused path
    step = TrainStep(copy.deepcopy(fz_model), MIXED, FP32, CPU)
    assert step.fused is not None
    _, losses = step(*_batch(meta, MIXED, seed=4, empty=("a", "b", "c")))
    assert torch.equal(losses, torch.zeros(3))
    assert all(torch.isfinite(p).all() for p in step.model.parameters())


def test_masked_rows_do_not_train():
    """Targets of masked rows must not matter: changing them leaves the step unchanged."""
    model, meta = _model()
    x, c, ys, ms = _batch(meta, MIXED, seed=0, missing=0.5)
    ys2 = [y.clone() for y in ys]
    ys2[0][~ms[0]] = 1.0 - ys2[0][~ms[0]]
    ys2[1][~ms[1]] = (ys2[1][~ms[1]] + 1) % 3
    ys2[2][~ms[2]] += 5.0
    s1 = TrainStep(copy.deepcopy(model), MIXED, FP32, CPU)
    s2 = TrainStep(copy.deepcopy(model), MIXED, FP32, CPU)
    _, l1 = s1(x, c, ys, ms)
    _, l2 = s2(x, c, ys2, ms)
    torch.testing.assert_close(l1, l2, atol=0, rtol=0)
    for p, q in zip(s1.model.parameters(), s2.model.parameters()):
        assert torch.equal(p, q)


# -- inputs --------------------------------------------------------------------------------------

@pytest.mark.parametrize("num_numeric,cards,dims", [
    (5, (), ()),                     # numeric only
    (0, (3, 5, 7), (3, 3, 3)),       # categorical only, one width
    (0, (3, 5, 7), (2, 4, 3)),       # categorical only, mixed widths
    (4, (3, 5, 7), (3, 3, 3)),       # numeric + categorical, one width
    (4, (3, 5, 7), (2, 4, 3)),       # numeric + categorical, mixed widths
    (4, (6,), (1,)),                 # a single width-1 column
], ids=["num", "cat-eq", "cat-mixed", "num-cat-eq", "num-cat-mixed", "num-cat-w1"])
@pytest.mark.parametrize("arch", ["mmoe", "shared-bottom"])
def test_matches_autograd_inputs(num_numeric, cards, dims, arch):
    model, meta = _model(arch=arch, num_numeric=num_numeric, cards=cards, dims=dims)
    ref_model, fz_model = _compare(model, MIXED, _batches(meta, MIXED, n=3))
    if cards and len(set(dims)) > 1:
        # the padding of narrower columns in the shared table stays exactly zero
        enc = fz_model.encoder
        w = enc.table.weight.detach()
        for i, d in enumerate(dims):
            rows = slice(int(enc.offsets[i]), int(enc.offsets[i]) + cards[i])
            assert torch.equal(w[rows, d:], torch.zeros_like(w[rows, d:]))


@pytest.mark.parametrize("matmul", ["onednn", "torch.mm"])
def test_first_layer_matmul_either_way(matmul, monkeypatch):
    """The first layer's products run through oneDNN on the CPU in fp32 where torch has it, else torch.mm;
    both give autograd's numbers (numeric and categorical inputs: the forward and the input gradient)."""
    import mmoe.nn.fused as fused

    if matmul == "onednn":
        if fused.onednn_matmul() is None:
            pytest.skip("this torch has no oneDNN matmul")
    else:
        monkeypatch.setattr(fused, "onednn_matmul", lambda: None)
    model, meta = _model(num_numeric=4, cards=(3, 5, 7), dims=(2, 4, 3))
    _, fz_model = _compare(model, MIXED, _batches(meta, MIXED, n=3))
    step = fused.FusedStep(copy.deepcopy(model), list(MIXED), FP32, CPU, bf16=False)
    assert (step._mm is torch.mm) == (matmul == "torch.mm")
    assert fused.FusedStep(copy.deepcopy(model), list(MIXED), FP32, CPU, bf16=True)._mm is torch.mm


def test_the_step_leaves_the_callers_codes_alone():
    """With one categorical column the codes' transpose is a view of them: the lane offsets must not land there."""
    model, meta = _model(num_numeric=2, cards=(5,), dims=(3,))
    step = TrainStep(model, list(MIXED), FP32, CPU).fused
    x_num, x_cat, ys, ms = _batch(meta, MIXED)
    codes = step.cat_codes(x_cat)
    kept = codes.clone()
    step(x_num, None, ys, ms, codes=codes)
    assert step.lanes > 1 and torch.equal(codes, kept)


@pytest.mark.parametrize("budget", [1 << 20, 150, 1], ids=["8-lanes", "2-lanes", "one-lane"])
def test_embedding_gradient_lanes(budget, monkeypatch):
    """The table gradient is the same whether it is scattered over 8 copies, a few, or one
    (large tables use one, so the copies never outgrow memory)."""
    from mmoe.nn.fused import LANES, FusedStep

    model, meta = _model(num_numeric=2, cards=(3, 5, 7), dims=(2, 4, 3))
    table = 15 * 4
    ref = TrainStep(copy.deepcopy(model), MIXED, FP32, CPU, fused=False)
    fz_model = copy.deepcopy(model)
    fz = FusedStep(fz_model, list(MIXED), FP32, CPU, bf16=False, lane_budget=budget)
    assert fz.lanes == max(1, min(LANES, budget // table))
    for batch in _batches(meta, MIXED, n=3):
        _, l_ref = ref(*batch)
        _, l_fz = fz(*batch)
        torch.testing.assert_close(l_fz, l_ref, atol=1e-5, rtol=0)
    for (n, p), q in zip(fz_model.named_parameters(), ref.model.parameters()):
        torch.testing.assert_close(p.detach(), q.detach(), atol=1e-4, rtol=0, msg=lambda m: f"{n}: {m}")


def test_large_table_uses_one_lane():
    model, _ = _model(num_numeric=2, cards=(300_000,), dims=(4,))
    step = TrainStep(model, list(MIXED), FP32, CPU)
    assert step.fused.lanes == 1 and step.fused.lane_grad is None


# -- optimiser settings, task weights ------------------------------------------------------------

@pytest.mark.parametrize("kernel", ["fused-kernel", "six-ops"])
@pytest.mark.parametrize("optimizer", ["adam", "adamw"])
@pytest.mark.parametrize("wd", [0.0, 0.1])
def test_matches_autograd_weight_decay(optimizer, wd, kernel, monkeypatch):
    """Adam / AdamW, with and without weight decay, by torch's fused kernel or six ops: torch.optim's numbers."""
    import mmoe.nn.fused as fused

    if kernel == "six-ops":
        monkeypatch.setattr(fused, "fused_adam", lambda adamw: None)
    elif fused.fused_adam(optimizer == "adamw") is None:
        pytest.skip("this torch has no fused Adam kernel")
    model, meta = _model(gate_hidden=(5,))
    cfg = TrainConfig(precision="fp32", lr=1e-2, weight_decay=wd, optimizer=optimizer, device="cpu")
    _compare(model, MIXED, _batches(meta, MIXED, n=4), cfg)
    step = fused.FusedStep(copy.deepcopy(model), list(MIXED), cfg, CPU, bf16=False)
    step(*_batch(meta, MIXED))
    assert (step._fused_adam is None) == (kernel == "six-ops") and step.t == 1 and float(step.step_t) == 1.0


def test_task_weights_honoured():
    specs = (TaskSpec("a", "binary", weight=2.0), TaskSpec("b", "multiclass", weight=0.5),
             TaskSpec("c", "regression", weight=0.0))
    model, meta = _model(specs)
    batches = _batches(meta, specs, n=4)
    ref_model, fz_model = _compare(model, specs, batches)
    # the weights change training: an unweighted run ends elsewhere
    plain = TrainStep(copy.deepcopy(model), MIXED, FP32, CPU)
    for b in batches:
        plain(*b)
    diff = max(float((p.detach() - q.detach()).abs().max())
               for p, q in zip(plain.model.parameters(), fz_model.parameters()))
    assert diff > 1e-3
    # the total is the weighted sum of the task losses
    step = TrainStep(copy.deepcopy(model), specs, FP32, CPU)
    total, losses = step(*batches[0])
    torch.testing.assert_close(total, (losses * torch.tensor([2.0, 0.5, 0.0])).sum())


@pytest.mark.parametrize("arch", ["mmoe", "omoe", "shared-bottom"])
def test_all_binary_tasks_weighted_and_masked(arch):
    """All-binary task sets take the vectorised loss; weights and empty tasks still match autograd."""
    specs = (TaskSpec("a", "binary", weight=2.0), TaskSpec("b", "binary", weight=0.5),
             TaskSpec("c", "binary", weight=0.0))
    model, meta = _model(specs, arch=arch)
    batches = [_batch(meta, specs, seed=0), _batch(meta, specs, seed=1, empty=("b",)), _batch(meta, specs, seed=2)]
    _compare(model, specs, batches)
    step = TrainStep(copy.deepcopy(model), specs, FP32, CPU)
    assert step.fused.all_binary
    total, losses = step(*batches[1])
    assert float(losses[1]) == 0.0
    torch.testing.assert_close(total, (losses * torch.tensor([2.0, 0.5, 0.0])).sum())


def test_tasks_must_follow_model_order():
    model, _ = _model()
    with pytest.raises(ValueError, match="order"):
        TrainStep(model, MIXED[::-1], FP32, CPU)


# -- bf16 ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("arch", ["mmoe", "shared-bottom"])
def test_bf16_smoke(arch):
    model, meta = _model(arch=arch, gate_hidden=(5,))
    batches = _batches(meta, MIXED, n=3)
    ref = TrainStep(copy.deepcopy(model), MIXED, FP32, CPU, fused=False)
    fz = TrainStep(copy.deepcopy(model), MIXED, TrainConfig(precision="bf16", lr=1e-2, device="cpu"), CPU)
    assert fz.fused is not None and fz.autocast
    _, l_ref = ref(*batches[0])
    _, l_fz = fz(*batches[0])
    torch.testing.assert_close(l_fz, l_ref, atol=2e-2, rtol=2e-2)
    for b in batches[1:]:
        total, losses = fz(*b)
        assert torch.isfinite(losses).all() and torch.isfinite(total)
    assert fz.fused.flat.dtype == torch.float32
    assert all(torch.isfinite(p).all() for p in fz.model.parameters())


# -- what the fused path refuses ---------------------------------------------------------------------

def _custom_experts_model():
    model, meta = _model()
    d = model.encoder.out_features
    torch.manual_seed(1)
    experts = [nn.Sequential(nn.Linear(d, 6), nn.ReLU()) for _ in range(3)]
    model.core = MixtureOfExperts(d, meta.task_dims, experts=experts, tower_hidden=(4,))
    return model, meta


@pytest.mark.parametrize("case", ["top_k", "dropout", "uncertainty", "custom_experts", "frozen"])
def test_unsupported_falls_back_and_trains(case):
    cfg = FP32
    if case == "top_k":
        model, meta = _model(top_k=2)
    elif case == "dropout":
        model, meta = _model(dropout=0.1)
    elif case == "uncertainty":
        model, meta = _model()
        cfg = TrainConfig(precision="fp32", lr=1e-2, task_weighting="uncertainty", device="cpu")
    elif case == "custom_experts":
        model, meta = _custom_experts_model()
    else:
        model, meta = _model()
        model.encoder.table.weight.requires_grad_(False)
    why = unsupported(model, cfg)
    assert isinstance(why, str) and why
    before = copy.deepcopy(model.state_dict())
    step = TrainStep(model, MIXED, cfg, CPU)
    assert step.fused is None and step.optimizer is not None
    assert step.fused_unsupported == why
    for b in _batches(meta, MIXED, n=2):
        total, losses = step(*b)
        assert torch.isfinite(total) and torch.isfinite(losses).all()
    after = model.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)


def test_supported_default():
    model, _ = _model()
    assert unsupported(model, FP32) is None
    assert unsupported(model, TrainConfig()) is None
    for arch in ("omoe", "shared-bottom"):
        assert unsupported(_model(arch=arch)[0], FP32) is None
    assert unsupported(nn.Linear(2, 2), FP32)


# -- parameters after re-homing: state_dict, save / load ---------------------------------------------

def test_rehoming_keeps_values_and_shares_buffer():
    model, meta = _model(gate_hidden=(5,))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, c, _, _ = _batch(meta, MIXED)
    out_before = {k: v.clone() for k, v in model(x, c).preds.items()}
    step = TrainStep(model, MIXED, FP32, CPU)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    for k, v in model(x, c).preds.items():
        torch.testing.assert_close(v, out_before[k], atol=1e-6, rtol=0)
    flat = step.fused.flat
    assert flat.numel() == sum(p.numel() for p in model.parameters())
    for p in model.parameters():
        assert p.untyped_storage().data_ptr() == flat.untyped_storage().data_ptr()


def test_state_dict_save_load_after_fused_steps():
    model, meta = _model(gate_hidden=(5,))
    step = TrainStep(model, MIXED, FP32, CPU)
    for b in _batches(meta, MIXED, n=3):
        step(*b)
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    buf.seek(0)
    fresh, _ = _model(gate_hidden=(5,), seed=123)
    fresh.load_state_dict(torch.load(buf, weights_only=True))
    x, c, _, _ = _batch(meta, MIXED, seed=9)
    with torch.no_grad():
        a, b = model(x, c).preds, fresh(x, c).preds
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_state_dict_round_trip_lands_in_flat_buffer():
    model, meta = _model(gate_hidden=(5,))
    batches = _batches(meta, MIXED, n=4)
    step = TrainStep(model, MIXED, FP32, CPU)
    step(*batches[0])
    saved = copy.deepcopy(model.state_dict())
    flat_saved = step.fused.flat.clone()
    step(*batches[1])
    assert not torch.equal(step.fused.flat, flat_saved)
    model.load_state_dict(saved)
    # the restored values are the flat buffer the fused step trains from
    assert torch.equal(step.fused.flat, flat_saved)
    for k, v in model.state_dict().items():
        assert torch.equal(v, saved[k]), k
    # a later step from the restored values equals that step on a copy loaded the ordinary way
    ref, _ = _model(gate_hidden=(5,), seed=7)
    ref.load_state_dict(saved)
    ref_step = TrainStep(ref, MIXED, FP32, CPU, fused=False)
    _, l_fz = step(*batches[2])
    _, l_ref = ref_step(*batches[2])
    torch.testing.assert_close(l_fz, l_ref, atol=1e-5, rtol=0)


# -- fit ------------------------------------------------------------------------------------------

def test_fit_fused_matches_autograd(tiny_frame, monkeypatch):
    import mmoe.training.step
    from mmoe.data import prepare

    tasks = (TaskSpec("click", "binary", positive="yes"), TaskSpec("score", "regression"),
             TaskSpec("kind", "multiclass"))
    data = prepare(tiny_frame, DataConfig(tasks=tasks, seed=0))
    cfg = TrainConfig(epochs=3, batch_size=32, lr=1e-2, device="cpu", precision="fp32")
    mc = ModelConfig(num_experts=3, expert_hidden=(16,), tower_hidden=(8,))

    torch.manual_seed(0)
    model = build_model(mc, data)
    assert unsupported(model, cfg) is None
    res = fit(model, data, cfg)
    assert res.status == "finished" and res.epochs == 3
    assert res.step == "fused"

    # fused_unsupported is what TrainStep asks; the result's step proves the patch was taken
    monkeypatch.setattr(mmoe.training.step, "fused_unsupported", lambda *a: "off")
    torch.manual_seed(0)
    ref_model = build_model(mc, data)
    ref = fit(ref_model, data, cfg)
    assert ref.status == "finished" and ref.step == "autograd (off)"

    assert res.metrics.keys() == ref.metrics.keys()
    for task, metrics in ref.metrics.items():
        assert metrics.keys() == res.metrics[task].keys()
        for name, v in metrics.items():
            assert math.isclose(res.metrics[task][name], v, rel_tol=1e-4, abs_tol=1e-5), (task, name)
    for (n, p), q in zip(model.named_parameters(), ref_model.parameters()):
        torch.testing.assert_close(p.detach(), q.detach(), atol=1e-5, rtol=0, msg=lambda m: f"{n}: {m}")


@pytest.mark.parametrize("mc,why", [({}, None), ({"top_k": 2}, "top"), ({"dropout": 0.2}, "dropout")])
def test_fit_reports_which_step_ran(tiny_frame, mc, why):
    from mmoe.data import prepare

    data = prepare(tiny_frame, DataConfig(tasks=(TaskSpec("click", "binary", positive="yes"),)))
    torch.manual_seed(0)
    model = build_model(ModelConfig(num_experts=3, expert_hidden=(8,), **mc), data)
    res = fit(model, data, TrainConfig(epochs=1, device="cpu"))
    if why is None:
        assert res.step == "fused"
    else:
        assert res.step.startswith("autograd (") and why in res.step.lower()


def test_fused_forward_scores_like_the_model():
    """``fused_forward`` (what the stored predictions are scored with): the model's outputs and gates,
    and None for a model the fused step does not take (dropout, here)."""
    from mmoe.training.evaluate import fused_forward, predict

    model, meta = _model(num_numeric=4, cards=(3, 5, 7), dims=(2, 4, 3))
    x_num, x_cat, _, _ = _batch(meta, MIXED, b=300)
    want_raw, want_gates = predict(model, x_num, x_cat)
    forward = fused_forward(copy.deepcopy(model), MIXED, CPU)
    assert forward is not None
    raw, gates = predict(model, x_num, x_cat, forward=forward, batch_size=128)
    for name in want_raw:
        torch.testing.assert_close(raw[name], want_raw[name], atol=1e-5, rtol=0)
    torch.testing.assert_close(gates, want_gates, atol=1e-6, rtol=0)
    dropped, _ = _model(dropout=0.2)
    assert fused_forward(dropped, MIXED, CPU) is None
