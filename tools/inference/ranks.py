"""Which rank a process is under ``torchrun`` and joining / leaving its process group: the part of the
distributed plumbing that training (``tools.training.dist``) and model evaluation (``tools/eval.py``) share.

A process group is created with a timeout, so a collective waiting for a dead or hung peer fails instead of
hanging (``tools.training.dist.peer_failure`` recognises those failures).
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["DistInfo", "from_env", "init", "restart_count", "shutdown"]


@dataclass(frozen=True)
class DistInfo:
    """This process's ``rank`` of ``world_size``; ``local_rank`` its GPU on the node (-1: not under torchrun)."""

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


def init(info: DistInfo, device: torch.device, timeout_s: float = 1800.0) -> None:
    """Join the process group (NCCL on CUDA, gloo on CPU) when launched by torchrun with several processes;
    a collective waiting more than ``timeout_s`` seconds for a peer fails instead of hanging."""
    if info.enabled and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        timeout = datetime.timedelta(seconds=timeout_s)
        store = None
        if restart_count() > 0 and os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True":
            # a restarted group on torchrun's store: without a fresh key prefix, gloo/NCCL read the dead
            # workers' addresses from the first try and fail to connect (pytorch/pytorch#167288)
            base = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), info.world_size,
                                 is_master=False, timeout=timeout)  # fmt: skip
            store = dist.PrefixStore(f"/detloss/restart_{restart_count()}", base)
        dist.init_process_group(backend=backend, rank=info.rank, world_size=info.world_size, timeout=timeout,
                                store=store)  # fmt: skip


def restart_count() -> int:
    """How often torchrun's elastic agent restarted this worker group (``--max-restarts``); 0 on the first try."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", 0) or 0)


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
