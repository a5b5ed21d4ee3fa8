"""A plain PyTorch MMoE in the common tutorial style (the baseline most users start from).

- experts: ``nn.ModuleList`` of ``nn.Sequential(Linear, ReLU, ...)``, applied in a Python loop;
- one softmax gate (``nn.Linear`` + softmax) per task, one tower per task;
- data: ``DataLoader(TensorDataset(...), batch_size, shuffle=True)``;
- loss: ``BCEWithLogitsLoss`` per task, summed; ``torch.optim.Adam``.
Census preprocessing: the peers' LabelEncoder / MinMaxScaler, ``nn.Embedding(vocab, 4)``
per categorical column concatenated with the scaled numeric columns.
"""
from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

NAME = "plain PyTorch"


def available() -> str | None:
    return None


def version() -> str:
    return "tutorial-style (bench/peers/plain_torch.py)"


def mlp(d_in: int, widths) -> nn.Sequential:
    layers = []
    for w in widths:
        layers += [nn.Linear(d_in, w), nn.ReLU()]
        d_in = w
    return nn.Sequential(*layers)


class MMoE(nn.Module):
    def __init__(self, in_features, num_tasks=2, num_experts=8, expert_hidden=(64, 32), tower_hidden=(16,),
                 cardinalities=(), emb_dim=4):
        super().__init__()
        self.embeddings = nn.ModuleList(nn.Embedding(c, emb_dim) for c in cardinalities)
        d = in_features + emb_dim * len(cardinalities)
        self.experts = nn.ModuleList(mlp(d, expert_hidden) for _ in range(num_experts))
        self.gates = nn.ModuleList(nn.Linear(d, num_experts) for _ in range(num_tasks))
        self.towers = nn.ModuleList(nn.Sequential(mlp(expert_hidden[-1], tower_hidden),
                                                  nn.Linear(tower_hidden[-1], 1)) for _ in range(num_tasks))

    def forward(self, x_dense, x_cat=None):
        if len(self.embeddings):
            x = torch.cat([x_dense] + [emb(x_cat[:, i]) for i, emb in enumerate(self.embeddings)], dim=1)
        else:
            x = x_dense
        expert_outs = torch.stack([expert(x) for expert in self.experts], dim=1)   # [B, E, H]
        outs = []
        for gate, tower in zip(self.gates, self.towers):
            g = torch.softmax(gate(x), dim=1).unsqueeze(-1)                        # [B, E, 1]
            outs.append(tower((g * expert_outs).sum(dim=1)))                       # [B, 1]
        return torch.cat(outs, dim=1)                                              # [B, T] logits


def train_census(split, epochs=5, batch_size=1024, lr=1e-3, device="cpu", seed=0,
                 num_experts=8, expert_hidden=(16,), tower_hidden=(8,)) -> dict:
    from bench.peers.census_data import SPARSE, auc, peer_encode

    t0 = time.perf_counter()
    data, vocab, dense = peer_encode(split)
    xd = torch.tensor(data[dense].to_numpy(np.float32))
    xc = torch.tensor(data[SPARSE].to_numpy(np.int64))
    y = torch.tensor(split.y)
    tr, va = torch.from_numpy(split.train_idx), torch.from_numpy(split.val_idx)
    loader = DataLoader(TensorDataset(xd[tr], xc[tr], y[tr]), batch_size=batch_size, shuffle=True)
    prep = time.perf_counter() - t0

    torch.manual_seed(seed)
    model = MMoE(len(dense), 2, num_experts, tuple(expert_hidden), tuple(tower_hidden),
                 [vocab[f] for f in SPARSE]).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.BCEWithLogitsLoss()
    t0 = time.perf_counter()
    model.train()
    for _ in range(epochs):
        for xb, cb, yb in loader:
            xb, cb, yb = xb.to(device), cb.to(device), yb.to(device)
            logits = model(xb, cb)
            loss = loss_fn(logits[:, 0], yb[:, 0]) + loss_fn(logits[:, 1], yb[:, 1])
            opt.zero_grad()
            loss.backward()
            opt.step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    train = time.perf_counter() - t0
    model.eval()
    with torch.no_grad():
        pred = torch.sigmoid(model(xd[va].to(device), xc[va].to(device))).cpu().numpy()
    yv = split.y[split.val_idx]
    n = len(split.train_idx)
    return {"prep_seconds": prep, "train_seconds": train, "samples_per_second": epochs * n / train,
            "auc_income": auc(yv[:, 0], pred[:, 0]), "auc_marital": auc(yv[:, 1], pred[:, 1]),
            "n_train": n, "n_val": len(split.val_idx)}


def make_step(in_features=100, batch_size=1024, device="cpu", seed=0, num_experts=8,
              expert_hidden=(64, 32), tower_hidden=(16,)):
    torch.manual_seed(seed)
    model = MMoE(in_features, 2, num_experts, tuple(expert_hidden), tuple(tower_hidden)).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.BCEWithLogitsLoss()
    model.train()
    x = torch.rand(batch_size, in_features, device=device)
    y = (torch.rand(batch_size, 2, device=device) < 0.5).float()

    def step():
        logits = model(x)
        loss = loss_fn(logits[:, 0], y[:, 0]) + loss_fn(logits[:, 1], y[:, 1])
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


def train_step_model(in_features, num_experts, expert_hidden, tower_hidden, device="cpu"):
    """(model, loss(x, y)) for the scaling / sparse benchmarks' reference rows."""
    model = MMoE(in_features, 2, num_experts, tuple(expert_hidden), tuple(tower_hidden)).to(device)
    return model
