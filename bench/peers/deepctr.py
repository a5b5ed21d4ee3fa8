"""DeepCTR-Torch adapter: ``deepctr_torch.models.multitask.MMOE`` with its own ``compile`` / ``fit``.

Preprocessing as in DeepCTR-Torch's census MMoE example (LabelEncoder + MinMaxScaler,
``SparseFeat(embedding_dim=4)`` / ``DenseFeat``); model defaults kept (its default L2
on embeddings, init_std, no batch-norm). ``fit(verbose=0)``: the per-batch sklearn
metrics that verbose>0 computes would only slow it down, so the peer gets its fastest
setting. AUC is computed after training with ``model.predict``.
"""
from __future__ import annotations

import contextlib
import io
import time

import torch

from bench.peers._shims import import_deepctr

NAME = "DeepCTR-Torch"


def available() -> str | None:
    try:
        import_deepctr()
        from deepctr_torch.models.multitask import MMOE  # noqa: F401
    except Exception as e:  # pragma: no cover - reported in RESULTS.md
        return f"{type(e).__name__}: {e}"
    return None


def version() -> str:
    return import_deepctr().__version__


def _device(device: str) -> str:
    return "cuda:0" if device.startswith("cuda") else "cpu"


def train_census(split, epochs=5, batch_size=1024, lr=1e-3, device="cpu", seed=0,
                 num_experts=8, expert_hidden=(16,), tower_hidden=(8,)) -> dict:
    import_deepctr()
    from deepctr_torch.inputs import DenseFeat, SparseFeat, get_feature_names
    from deepctr_torch.models.multitask import MMOE
    from bench.peers.census_data import SPARSE, auc, peer_encode

    t0 = time.perf_counter()
    data, vocab, dense = peer_encode(split)
    columns = [SparseFeat(f, vocab[f], embedding_dim=4) for f in SPARSE] + [DenseFeat(f, 1) for f in dense]
    names = get_feature_names(columns)
    train_in = {n: data[n].to_numpy()[split.train_idx] for n in names}
    val_in = {n: data[n].to_numpy()[split.val_idx] for n in names}
    y_train, y_val = split.y[split.train_idx], split.y[split.val_idx]
    prep = time.perf_counter() - t0

    torch.manual_seed(seed)
    model = MMOE(columns, num_experts=num_experts, expert_dnn_hidden_units=tuple(expert_hidden),
                 gate_dnn_hidden_units=(), tower_dnn_hidden_units=tuple(tower_hidden),
                 task_types=("binary", "binary"), task_names=("income", "marital"),
                 seed=seed, device=_device(device))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.compile(opt, loss=["binary_crossentropy", "binary_crossentropy"])
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        model.fit(train_in, y_train, batch_size=batch_size, epochs=epochs, verbose=0, shuffle=True)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    train = time.perf_counter() - t0
    pred = model.predict(val_in, batch_size=65536)
    n = len(split.train_idx)
    return {"prep_seconds": prep, "train_seconds": train, "samples_per_second": epochs * n / train,
            "auc_income": auc(y_val[:, 0], pred[:, 0]), "auc_marital": auc(y_val[:, 1], pred[:, 1]),
            "n_train": n, "n_val": len(split.val_idx)}


def make_step(in_features=100, batch_size=1024, device="cpu", seed=0, num_experts=8,
              expert_hidden=(64, 32), tower_hidden=(16,)):
    """One iteration of the body of ``BaseModel.fit`` (forward, summed BCE per task,
    regularisation + aux loss, backward, Adam step) on a resident batch."""
    import_deepctr()
    from deepctr_torch.inputs import DenseFeat
    from deepctr_torch.models.multitask import MMOE

    torch.manual_seed(seed)
    dev = _device(device)
    columns = [DenseFeat(f"d{i}", 1) for i in range(in_features)]
    model = MMOE(columns, num_experts=num_experts, expert_dnn_hidden_units=tuple(expert_hidden),
                 gate_dnn_hidden_units=(), tower_dnn_hidden_units=tuple(tower_hidden),
                 task_types=("binary", "binary"), task_names=("a", "b"), seed=seed, device=dev)
    model.compile(torch.optim.Adam(model.parameters(), lr=1e-3), loss=["binary_crossentropy"] * 2)
    model.train()
    x = torch.rand(batch_size, in_features, device=dev)
    y = (torch.rand(batch_size, 2, device=dev) < 0.5).float()
    loss_func, optim = model.loss_func, model.optim

    def step():
        y_pred = model(x)
        optim.zero_grad()
        loss = sum(loss_func[i](y_pred[:, i], y[:, i], reduction="sum") for i in range(2))
        total = loss + model.get_regularization_loss() + model.aux_loss
        total.backward()
        optim.step()

    return step
