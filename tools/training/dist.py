"""torchrun / DistributedDataParallel plumbing: rank discovery, process group, small collectives."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    local_rank: int = -1
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def from_env() -> DistInfo:
    """Ranks as torchrun sets them (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``); a plain run is rank 0 of 1."""
    return DistInfo(int(os.environ.get("RANK", 0)), int(os.environ.get("LOCAL_RANK", -1)),
                    int(os.environ.get("WORLD_SIZE", 1)))  # fmt: skip


def init(info: DistInfo, device: torch.device) -> None:
    """Join the process group (NCCL on CUDA, gloo on CPU) when launched by torchrun with several processes."""
    if info.enabled and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, rank=info.rank, world_size=info.world_size)


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def all_mean(t: torch.Tensor) -> torch.Tensor:
    """The mean of ``t`` over ranks (``t`` itself when not distributed)."""
    if dist.is_available() and dist.is_initialized():
        t = t.clone()
        dist.all_reduce(t)
        t /= dist.get_world_size()
    return t


def broadcast_flag(flag: bool, device: torch.device) -> bool:
    """Rank 0's boolean, on every rank (early stop, interruption)."""
    if not (dist.is_available() and dist.is_initialized()):
        return flag
    t = torch.tensor([1 if flag else 0], device=device)
    dist.broadcast(t, 0)
    return bool(t.item())


def any_flag(flag: bool, device: torch.device) -> bool:
    """True on every rank when ``flag`` is true on any rank (a stop signal that reached some ranks only)."""
    if not (dist.is_available() and dist.is_initialized()):
        return flag
    t = torch.tensor([1 if flag else 0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def broadcast_int(value: int, device: torch.device) -> int:
    """Rank 0's integer, on every rank (the epochs a ``--time`` budget allows)."""
    if not (dist.is_available() and dist.is_initialized()):
        return value
    t = torch.tensor([int(value)], device=device)
    dist.broadcast(t, 0)
    return int(t.item())


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
