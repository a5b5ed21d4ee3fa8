"""torch-rechub adapter: ``torch_rechub.models.multi_task.MMOE`` trained by its ``MTLTrainer.fit``.

Preprocessing and model as in torch-rechub's census MMoE example
(``examples/ranking/run_census.py``): LabelEncoder / MinMaxScaler,
``SparseFeature(embed_dim=4)`` + ``DenseFeature``, ``DataGenerator(...).generate_dataloader``,
``MMOE(n_expert=8, expert_params={"dims": [16]}, tower_params_list=[{"dims": [8]}] * 2)``.
Its MLPs carry BatchNorm1d (library behaviour). ``MTLTrainer.fit`` needs a validation
loader and evaluates it after every epoch (and saves a checkpoint at the end): that is
part of its own training loop and so part of its training time. AUC is computed after
training with ``MTLTrainer.evaluate`` on the shared validation rows.
"""
from __future__ import annotations

import contextlib
import io
import tempfile
import time

import numpy as np
import torch

NAME = "torch-rechub"


def available() -> str | None:
    try:
        from torch_rechub.models.multi_task import MMOE  # noqa: F401
        from torch_rechub.trainers import MTLTrainer  # noqa: F401
    except Exception as e:  # pragma: no cover
        return f"{type(e).__name__}: {e}"
    return None


def version() -> str:
    from importlib.metadata import version as v

    return v("torch-rechub")


class _Silence(contextlib.ContextDecorator):
    """Swallow stdout/stderr (tqdm bars and prints) of the trainer."""

    def __enter__(self):
        self._o = contextlib.redirect_stdout(io.StringIO())
        self._e = contextlib.redirect_stderr(io.StringIO())
        self._o.__enter__()
        self._e.__enter__()

    def __exit__(self, *exc):
        self._e.__exit__(*exc)
        self._o.__exit__(*exc)
        return False


def train_census(split, epochs=5, batch_size=1024, lr=1e-3, device="cpu", seed=0,
                 num_experts=8, expert_hidden=(16,), tower_hidden=(8,)) -> dict:
    from torch_rechub.basic.features import DenseFeature, SparseFeature
    from torch_rechub.models.multi_task import MMOE
    from torch_rechub.trainers import MTLTrainer
    from torch_rechub.utils.data import DataGenerator
    from bench.peers.census_data import SPARSE, auc, peer_encode

    t0 = time.perf_counter()
    data, vocab, dense = peer_encode(split)
    features = [SparseFeature(f, vocab[f], embed_dim=4) for f in SPARSE] + [DenseFeature(f) for f in dense]
    cols = SPARSE + dense
    x_train = {c: data[c].to_numpy()[split.train_idx] for c in cols}
    x_val = {c: data[c].to_numpy()[split.val_idx] for c in cols}
    y_train, y_val = split.y[split.train_idx], split.y[split.val_idx]
    train_dl, val_dl, _ = DataGenerator(x_train, y_train).generate_dataloader(
        x_val=x_val, y_val=y_val, x_test=x_val, y_test=y_val, batch_size=batch_size)
    prep = time.perf_counter() - t0

    torch.manual_seed(seed)
    model = MMOE(features, ["classification", "classification"], num_experts,
                 expert_params={"dims": list(expert_hidden)},
                 tower_params_list=[{"dims": list(tower_hidden)}, {"dims": list(tower_hidden)}])
    with tempfile.TemporaryDirectory() as tmp:
        trainer = MTLTrainer(model, task_types=["classification", "classification"],
                             optimizer_params={"lr": lr, "weight_decay": 0.0}, n_epoch=epochs,
                             earlystop_patience=epochs + 1, device=device, model_path=tmp)
        t0 = time.perf_counter()
        with _Silence():
            trainer.fit(train_dl, val_dl)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        train = time.perf_counter() - t0
        with _Silence():
            trainer.model.eval()
            preds = []
            with torch.no_grad():
                for x_dict, _ in val_dl:
                    preds.append(trainer.model({k: v.to(device) for k, v in x_dict.items()}).cpu().numpy())
        pred = np.concatenate(preds)
    n = len(split.train_idx)
    return {"prep_seconds": prep, "train_seconds": train, "samples_per_second": epochs * n / train,
            "auc_income": auc(y_val[:, 0], pred[:, 0]), "auc_marital": auc(y_val[:, 1], pred[:, 1]),
            "n_train": n, "n_val": len(split.val_idx)}


def make_step(in_features=100, batch_size=1024, device="cpu", seed=0, num_experts=8,
              expert_hidden=(64, 32), tower_hidden=(16,)):
    """One iteration of ``MTLTrainer.train_one_epoch``'s body (dict input, per-task BCE
    averaged, regularisation loss, backward, Adam step) on a resident batch."""
    from torch_rechub.basic.features import DenseFeature
    from torch_rechub.models.multi_task import MMOE
    from torch_rechub.trainers import MTLTrainer

    torch.manual_seed(seed)
    features = [DenseFeature(f"d{i}") for i in range(in_features)]
    model = MMOE(features, ["classification", "classification"], num_experts,
                 expert_params={"dims": list(expert_hidden)},
                 tower_params_list=[{"dims": list(tower_hidden)}, {"dims": list(tower_hidden)}])
    trainer = MTLTrainer(model, task_types=["classification", "classification"],
                         optimizer_params={"lr": 1e-3, "weight_decay": 0.0}, n_epoch=1, device=device,
                         model_path=tempfile.gettempdir())
    trainer.model.train()
    x = {f"d{i}": torch.rand(batch_size, device=device) for i in range(in_features)}
    ys = (torch.rand(batch_size, 2, device=device) < 0.5).float()

    def step():
        y_preds = trainer.model(x)
        loss = sum(trainer.loss_fns[i](y_preds[:, i], ys[:, i]) for i in range(2)) / 2
        loss = loss + trainer.reg_loss_fn(trainer.model)
        trainer.model.zero_grad()
        loss.backward()
        trainer.optimizer.step()

    return step
