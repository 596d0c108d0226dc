"""torchrun plumbing: read the environment, start the process group, agree on flags.

Everything here is a no-op in a single process, so the training loop reads the same with and
without ``torchrun``. Under ``torchrun`` each process trains on its share of every batch,
DistributedDataParallel (Li et al. 2020, "PyTorch Distributed") averages the gradients, and
only rank 0 validates and writes files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["DistInfo", "dist_env", "init_distributed", "sync_flags", "broadcast_int", "barrier",
           "shutdown"]


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands in a ``torchrun`` job (rank 0 of 1 when run alone)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def dist_env() -> DistInfo:
    """The rank, world size and local rank that ``torchrun`` put in the environment."""
    return DistInfo(int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1")),
                    int(os.environ.get("LOCAL_RANK", "0")))


def init_distributed(info: DistInfo, device: torch.device) -> torch.device:
    """Start the process group (NCCL on GPUs, Gloo on CPUs) and return this process's device.

    Args:
        info: from :func:`dist_env`.
        device: the requested device; ``cuda`` becomes ``cuda:<local_rank>``.
    """
    if not info.distributed:
        return device
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", info.local_rank)
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def _comm_device(device: torch.device) -> torch.device:
    return device if device.type == "cuda" else torch.device("cpu")


def sync_flags(info: DistInfo, device: torch.device, *flags: bool) -> tuple[bool, ...]:
    """Each flag true on any process becomes true on all (so all stop at the same step).

    Args:
        info: this process's place in the job.
        device: the training device (NCCL needs CUDA tensors).
        *flags: the local flags.
    """
    if not info.distributed:
        return tuple(bool(f) for f in flags)
    t = torch.tensor([float(f) for f in flags], device=_comm_device(device))
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return tuple(bool(v) for v in t.tolist())


def broadcast_int(info: DistInfo, device: torch.device, value: int) -> int:
    """Rank 0's ``value`` on every process.

    Args:
        info: this process's place in the job.
        device: the training device.
        value: this process's value (only rank 0's counts).
    """
    if not info.distributed:
        return value
    t = torch.tensor([value], device=_comm_device(device))
    dist.broadcast(t, src=0)
    return int(t.item())


def barrier(info: DistInfo) -> None:
    """Wait for every process (no-op alone)."""
    if info.distributed and dist.is_initialized():
        dist.barrier()


def shutdown() -> None:
    """Destroy the process group if one was started."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
