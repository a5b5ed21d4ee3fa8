"""Data-parallel training across processes: torch.distributed under ``torchrun``.

``torchrun --standalone --nproc-per-node=N -m mmoe train ...`` starts N processes with RANK,
WORLD_SIZE, LOCAL_RANK and a rendezvous in their environment. ``join_from_env`` joins them into
one process group (gloo on the CPU, NCCL on CUDA with one GPU per process, ``cuda:LOCAL_RANK``);
``fit`` then trains one model on all of them:

* every process holds the same prepared table and draws the same seeded permutation each epoch;
  each global batch (``--batch-size`` rows: the batch size means the same with 1 or N processes)
  is cut into N contiguous shards, one per process;
* each step's gradient is the global batch's: every process weighs its shard's mean gradient by
  its share of the rows and one all-reduce sums them (the fused step's flat gradient buffer in one
  call; DistributedDataParallel's buckets on the autograd path). A shard left empty by the last,
  short batch computes on one row with weight 0, so every process takes part in every collective
  and uneven shards never hang;
* the losses and the stop and cancel flags of every step travel in one more small all-reduce, so
  a NaN, a time budget, a cancel on any process or early stopping ends the run on the same step
  on every process; validation metrics are computed on the whole validation split and those of
  rank 0 are what every process decides on.

Only rank 0 writes the run store and prints; the others train and exit with rank 0's outcome.
"""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

TIMEOUT = datetime.timedelta(minutes=10)   # a collective that waits longer fails instead of hanging


@dataclass(frozen=True)
class World:
    rank: int
    size: int
    local_rank: int
    backend: str

    @property
    def leader(self) -> bool:
        return self.rank == 0

    def device(self, device: torch.device) -> torch.device:
        """This process's device: CUDA ``LOCAL_RANK`` for a CUDA run, else ``device`` itself."""
        return torch.device("cuda", self.local_rank) if device.type == "cuda" else device

    def describe(self) -> dict:
        return {"world_size": self.size, "backend": self.backend}

    # -- the collectives the loop uses ---------------------------------------------------------------
    def share(self, rows: int) -> tuple[int, int, float]:
        """(start, stop, weight) of this process's rows in a global batch of ``rows`` rows. An empty shard
        gets one row (the batch's first) with weight 0: it computes, but adds nothing."""
        start, stop = rows * self.rank // self.size, rows * (self.rank + 1) // self.size
        if stop == start:
            return 0, 1, 0.0
        return start, stop, (stop - start) / rows

    def sum_(self, t: torch.Tensor) -> torch.Tensor:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t

    def any(self, *flags: bool, device: torch.device) -> list[bool]:
        """Each flag, true on any process (one all-reduce)."""
        t = torch.tensor([float(f) for f in flags], device=device)
        return [bool(v > 0) for v in self.sum_(t).tolist()]

    def barrier(self) -> None:
        dist.barrier()

    def from_leader(self, obj):
        """Rank 0's ``obj`` (picklable) on every process."""
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def same_start(self, tensor: torch.Tensor) -> None:
        """Rank 0's values in ``tensor`` on every process (the initial weights)."""
        dist.broadcast(tensor, src=0)


def world() -> World | None:
    """The process group this process belongs to, if it has more than one process."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return None
    return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)), dist.get_backend())


def launched() -> bool:
    """Started by torchrun (or a like launcher) as one of several processes."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1) > 1


def join_from_env(device: str) -> World | None:
    """Join the process group torchrun describes in the environment (None when started alone).
    ``device``: the run's --device; "cuda" (or "auto" with CUDA present) uses NCCL and this process's GPU."""
    if not launched():
        return None
    if dist.is_initialized():
        return world()
    cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if cuda:
        local = int(os.environ.get("LOCAL_RANK", 0))
        if local >= torch.cuda.device_count():
            raise RuntimeError(f"process {local} has no GPU of its own: {torch.cuda.device_count()} visible; "
                               "start at most that many processes per node (--nproc-per-node)")
        torch.cuda.set_device(local)
    dist.init_process_group("nccl" if cuda else "gloo", timeout=TIMEOUT)
    return world()


def leave(together: bool = True) -> None:
    """Leave the process group. ``together`` (a process that finished normally): a barrier first, so no
    process closes its connections while another still has a collective in flight (gloo then aborts that
    process: "terminate called without an active exception", seen once in CI after a GradNorm run). A
    process that is failing leaves at once: the others' collectives then fail instead of waiting for it."""
    if dist.is_available() and dist.is_initialized():
        try:
            if together:
                dist.barrier()
        finally:
            dist.destroy_process_group()
