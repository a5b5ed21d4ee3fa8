"""The product (MMoE Lab) behind the same adapter interface as the peers.

census: ``mmoe.data.prepare`` (the product's own preprocessing, fitted on the
training rows) on the same frame, same 80/20 split (checked row for row), then
``mmoe.training.fit`` -- the full training loop, timed as one wall-clock call, so the
per-epoch evaluation the product does inside ``fit`` is included. Validation AUC
is the product's own ``fit`` result on the shared validation rows. It trains with
torch's default thread count, like the peers (``threads`` set explicitly).

step: one call of ``mmoe.training.TrainStep`` -- the object ``fit`` calls per batch:
for these models the hand-written forward, masked losses, backward and Adam of
``mmoe.nn.fused.FusedStep`` -- on contiguous batch slices of resident tensors.
"""
from __future__ import annotations

import dataclasses
import time
from types import SimpleNamespace

import numpy as np
import torch

NAME = "MMoE Lab"


def available() -> str | None:
    try:
        import mmoe.data  # noqa: F401
        import mmoe.training  # noqa: F401
    except Exception as e:  # pragma: no cover
        return f"{type(e).__name__}: {e}"
    return None


def version() -> str:
    import subprocess

    import mmoe
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=str(__import__("bench.common").common.REPO)).stdout.strip()
    except OSError:
        rev = ""
    return f"{mmoe.__version__}" + (f" @ {rev}" if rev else "")


def census_configs(epochs=5, batch_size=1024, lr=1e-3, device="cpu", seed=0,
                   num_experts=8, expert_hidden=(16,), tower_hidden=(8,), precision="auto"):
    from mmoe.config import DataConfig, ModelConfig, TaskSpec, TrainConfig
    from bench.peers.census_data import DROP

    dc = DataConfig(tasks=(TaskSpec("income_50k", "binary", positive="50000+."),
                           TaskSpec("marital_stat", "binary", positive="Never married")),
                    drop=DROP, val_fraction=0.2, seed=0)   # the shared split; training seed below
    mc = ModelConfig(arch="mmoe", num_experts=num_experts, expert_hidden=tuple(expert_hidden),
                     tower_hidden=tuple(tower_hidden))
    tc = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, device=device, seed=seed, precision=precision)
    return dc, mc, tc


class ThreadsSeen:
    """Callback: the torch intra-op thread count ``fit`` trained with (it picks it per run)."""
    n = 0

    def on_train_begin(self, state): self.n = torch.get_num_threads()
    def on_epoch_begin(self, state): ...
    def on_batch_end(self, state): ...
    def on_epoch_end(self, state): ...
    def on_train_end(self, state): ...


def train_census(split, epochs=5, batch_size=1024, lr=1e-3, device="cpu", seed=0,
                 num_experts=8, expert_hidden=(16,), tower_hidden=(8,), precision="auto") -> dict:
    from mmoe.data import prepare
    from mmoe.nn import build_model
    from mmoe.training import fit

    dc, mc, tc = census_configs(epochs, batch_size, lr, device, seed, num_experts, expert_hidden, tower_hidden,
                                precision)
    if tc.device == "cpu":
        # the same number of torch threads as the peers get (torch's default), not the product's
        # own choice from what else runs right now (``auto_threads``), so that a moment of other
        # activity on the machine cannot change the contest
        tc = dataclasses.replace(tc, threads=torch.get_num_threads())
    t0 = time.perf_counter()
    data = prepare(split.frame, dc)
    prep = time.perf_counter() - t0
    if not (np.array_equal(data.splits["train"].numpy(), split.train_idx)
            and np.array_equal(data.splits["val"].numpy(), split.val_idx)):
        raise RuntimeError("product split differs from the benchmark's shared split")
    torch.manual_seed(seed)
    model = build_model(mc, data)
    t0 = time.perf_counter()
    threads = ThreadsSeen()
    res = fit(model, data, tc, callbacks=[threads])
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    train = time.perf_counter() - t0
    if res.status != "finished":
        raise RuntimeError(f"product fit ended {res.status}: {res.message}")
    n = int(data.splits["train"].numel())
    return {"prep_seconds": prep, "train_seconds": train, "samples_per_second": epochs * n / train,
            "fit_reported_samples_per_second": res.samples_per_second,
            "auc_income": res.metrics["income_50k"]["auc"], "auc_marital": res.metrics["marital_stat"]["auc"],
            "n_train": n, "n_val": int(data.splits["val"].numel()), "threads": threads.n}


def build_dense_model(in_features=100, num_experts=8, expert_hidden=(64, 32), tower_hidden=(16,),
                      top_k=None, gate_hidden=(), device="cpu"):
    """The product's ``TabularModel`` for all-numeric input (what ``build_model`` makes for such a table)."""
    from mmoe.config import ModelConfig
    from mmoe.nn import build_model

    mc = ModelConfig(arch="mmoe", num_experts=num_experts, expert_hidden=tuple(expert_hidden),
                     gate_hidden=tuple(gate_hidden), tower_hidden=tuple(tower_hidden), top_k=top_k)
    meta = SimpleNamespace(num_numeric=in_features, cardinalities=[], embedding_dims=[],
                           task_dims={"a": 1, "b": 1})
    return build_model(mc, meta).to(device)


def make_step(in_features=100, batch_size=1024, device="cpu", seed=0, num_experts=8,
              expert_hidden=(64, 32), tower_hidden=(16,), top_k=None, rows=None, precision="auto", graph=True):
    """The product's own ``mmoe.training.TrainStep`` (what ``fit`` runs per batch) on contiguous
    batch slices of resident tensors, as ``fit`` takes them. ``graph=False``: no CUDA graph (on CUDA)."""
    from mmoe.config import TaskSpec, TrainConfig
    from mmoe.training import TrainStep

    torch.manual_seed(seed)
    dev = torch.device(device)
    model = build_dense_model(in_features, num_experts, expert_hidden, tower_hidden, top_k, device=device)
    model.train()
    n = rows or 8 * batch_size
    x_num = torch.rand(n, in_features, device=dev)
    x_cat = torch.zeros(n, 0, dtype=torch.long, device=dev)
    ys = [(torch.rand(n, device=dev) < 0.5).float() for _ in range(2)]
    masks = [torch.ones(n, dtype=torch.bool, device=dev) for _ in range(2)]
    train_step = TrainStep(model, [TaskSpec("a"), TaskSpec("b")], TrainConfig(lr=1e-3, precision=precision), dev,
                           graph=graph)
    pos = [0]

    def step():
        s = pos[0]
        sl = slice(s, s + batch_size)
        pos[0] = (s + batch_size) % (n - batch_size + 1)
        total, _ = train_step(x_num[sl], x_cat[sl], [y[sl] for y in ys], [m[sl] for m in masks])
        if dev.type == "cpu":
            float(total)             # fit() checks the loss every batch on the CPU
        return total

    return step
