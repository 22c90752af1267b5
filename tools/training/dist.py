"""torchrun / DistributedDataParallel plumbing: rank discovery, process group, small collectives, lost peers.

A rank that dies or hangs must not leave the others waiting in a collective forever. The process group is
created with a timeout (``--dist-timeout``, seconds): a collective that waits longer fails on the waiting
ranks (gloo raises; NCCL's watchdog aborts the communicator, ``TORCH_NCCL_ASYNC_ERROR_HANDLING``), and a
peer that died outright (its sockets closed) fails the next collective at once. :func:`peer_failure`
recognises those errors so ``tools/train.py`` can stop with one line instead of a traceback; under
``torchrun --max-restarts N`` the restarted workers resume from ``last.pt`` (:func:`elastic_resume`).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.distributed as dist

from tools.inference.ranks import DistInfo, from_env, init, restart_count, shutdown  # noqa: F401 (their home)

_PEER_SIGNS = ("gloo", "nccl", "connection", "timed out", "timeout", "peer", "socket", "broken pipe")


def peer_failure(e: BaseException) -> bool:
    """Whether ``e`` is a collective that failed because another rank died, hung or became unreachable."""
    if isinstance(e, getattr(dist, "DistError", ())):
        return True
    return isinstance(e, RuntimeError) and any(s in str(e).lower() for s in _PEER_SIGNS)


def elastic_pointer(project: str | Path) -> Path:
    """The file in which the first try of a torchrun job records its run folder, for the restarts to find it.

    Keyed by torchrun's run id (``--rdzv-id``; a fresh one under ``--standalone``), so separate jobs with
    separate ids in one project do not mix."""
    run_id = os.environ.get("TORCHELASTIC_RUN_ID", "none")
    return Path(project) / f".elastic-{run_id}.txt"


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
