"""CUDA path (skipped without a GPU): device placement, bf16 autocast, fused Adam, metrics parity."""
import pytest
import torch

from mmoe import MMoE
from mmoe.config import DataConfig, ModelConfig, TaskSpec, TrainConfig
from mmoe.data import prepare
from mmoe.nn import build_model
from mmoe.training import TrainStep, fit, use_bf16

pytestmark = pytest.mark.gpu
TASKS = (TaskSpec("click", "binary", positive="yes"), TaskSpec("score", "regression"),
         TaskSpec("kind", "multiclass"))


@pytest.mark.parametrize("top_k", [None, 2])
def test_contract_on_cuda(top_k):
    model = MMoE(100, {"a": 1, "b": 3}, num_experts=8, top_k=top_k).cuda()
    x = torch.randn(512, 100, device="cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = model(x)
    assert out.preds["b"].shape == (512, 3) and out.gates.device.type == "cuda"
    torch.testing.assert_close(out.gates.float().sum(-1), torch.ones(2, 512, device="cuda"), atol=1e-3, rtol=0)


def test_fit_on_cuda_matches_cpu_quality(tiny_frame):
    data = prepare(tiny_frame, DataConfig(tasks=TASKS))
    mc = ModelConfig(num_experts=3, expert_hidden=(16,), tower_hidden=(8,))
    res = {}
    for dev in ("cpu", "cuda"):
        torch.manual_seed(0)
        res[dev] = fit(build_model(mc, data), data, TrainConfig(epochs=30, batch_size=32, lr=1e-2, device=dev))
        assert res[dev].status == "finished" and res[dev].device.startswith(dev)
    assert abs(res["cuda"].metrics["click"]["auc"] - res["cpu"].metrics["click"]["auc"]) < 0.05


def test_cuda_step_uses_bf16_and_the_fused_step(tiny_frame):
    data = prepare(tiny_frame, DataConfig(tasks=TASKS))
    model = build_model(ModelConfig(num_experts=2), data).cuda()
    step = TrainStep(model, data.tasks, TrainConfig(), torch.device("cuda"))
    assert step.autocast and use_bf16("auto", torch.device("cuda"))
    assert step.fused is not None and step.fused.flat.is_cuda and step.fused.cd == torch.bfloat16
    # the autograd fallback (e.g. top-k) uses torch's fused CUDA Adam
    topk = build_model(ModelConfig(num_experts=4, top_k=2), data).cuda()
    step = TrainStep(topk, data.tasks, TrainConfig(), torch.device("cuda"))
    assert step.fused is None and step.optimizer.defaults.get("fused")


def test_cuda_fused_step_matches_autograd(tiny_frame):
    import copy

    data = prepare(tiny_frame, DataConfig(tasks=TASKS))
    torch.manual_seed(0)
    a = build_model(ModelConfig(num_experts=3, expert_hidden=(16, 8)), data).cuda()
    b = copy.deepcopy(a)
    cfg = TrainConfig(precision="fp32", lr=1e-2)
    fused = TrainStep(a, data.tasks, cfg, torch.device("cuda"))
    plain = TrainStep(b, data.tasks, cfg, torch.device("cuda"), fused=False)
    rows = torch.arange(64)
    xn, xc = data.x_num[rows].cuda(), data.x_cat[rows].cuda()
    ys = [data.y[t.column][rows].cuda() for t in data.tasks]
    ms = [data.mask[t.column][rows].cuda() for t in data.tasks]
    for _ in range(3):
        _, la = fused(xn, xc, ys, ms)
        _, lb = plain(xn, xc, ys, ms)
        assert torch.allclose(la, lb, atol=1e-4)


def test_one_seed_one_result_on_cuda(tiny_frame, mmoe_home):
    """Deterministic kernels on CUDA (``training.loop.deterministic_cuda``): the same run twice gives the
    same curves and metrics within 1e-6 (expected bit-identical), bf16 autocast and the fused step included."""
    from mmoe.runs.runner import DataSource, run_training
    from mmoe.runs.store import RunStore

    store = RunStore(mmoe_home)
    dc, mc = DataConfig(tasks=TASKS), ModelConfig(num_experts=4, expert_hidden=(16,), tower_hidden=(8,))
    runs = [run_training(DataSource(tiny_frame, dc), m, TrainConfig(epochs=5, batch_size=32, device="cuda", seed=3),
                         store=store) for m in (mc, mc, ModelConfig(num_experts=4, top_k=2))]
    a, b = (store.history(r.run_id) for r in runs[:2])
    assert a[["epoch", "split", "task", "metric"]].equals(b[["epoch", "split", "task", "metric"]])
    torch.testing.assert_close(torch.tensor(a["value"].to_numpy()), torch.tensor(b["value"].to_numpy()),
                               atol=1e-6, rtol=1e-6, equal_nan=True)
    assert not torch.are_deterministic_algorithms_enabled()   # the caller's setting is back
    assert runs[2].status == "finished"


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_cuda_graph_step_trains_like_the_eager_step(tiny_frame, precision):
    """The fused step captured as a CUDA graph (``training.cuda_graph``): replays of full batches and an eager
    shorter batch give the eager step's losses and weights; the capture was checked and is in use."""
    import copy

    data = prepare(tiny_frame, DataConfig(tasks=TASKS))
    torch.manual_seed(0)
    model = build_model(ModelConfig(num_experts=3, expert_hidden=(16, 8)), data).cuda()
    cfg, dev = TrainConfig(precision=precision, lr=1e-2), torch.device("cuda")
    graphed = TrainStep(copy.deepcopy(model), data.tasks, cfg, dev)
    eager = TrainStep(copy.deepcopy(model), data.tasks, cfg, dev, graph=False)
    assert graphed.graphed is not None and eager.graphed is None and eager.graph_unsupported == "switched off"
    names = [t.column for t in data.tasks]
    for i, b in enumerate([32] * 8 + [7] + [32] * 3):
        rows = (torch.arange(b) + 32 * i) % len(data.x_num)
        xn, codes = data.x_num[rows].cuda(), graphed.fused.cat_codes(data.x_cat[rows].cuda())
        ys = [data.y[n][rows].cuda() for n in names]
        ms = [data.mask[n][rows].cuda() for n in names]
        _, la = graphed(xn, None, ys, ms, codes=codes)
        _, lb = eager(xn, None, ys, ms, codes=codes.clone())
        torch.testing.assert_close(la, lb, atol=1e-6, rtol=0, msg=lambda m: f"batch {i}: {m}")
    assert graphed.graphed.replay is not None, graphed.graphed.why
    assert graphed.describe() == "fused, CUDA graph, 8 replays"
    torch.testing.assert_close(graphed.fused.flat, eager.fused.flat, atol=1e-6, rtol=0)


def test_fit_on_cuda_reports_its_graph(tiny_frame):
    data = prepare(tiny_frame, DataConfig(tasks=TASKS))
    torch.manual_seed(0)
    res = fit(build_model(ModelConfig(num_experts=3), data), data, TrainConfig(epochs=3, batch_size=16, device="cuda"))
    assert res.status == "finished" and res.step.startswith("fused, CUDA graph, "), res.step
