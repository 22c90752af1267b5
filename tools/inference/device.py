"""``--device``: yolov5's device string -> a ``torch.device``, the one parser of the checkout's tools."""

from __future__ import annotations

import torch

__all__ = ["select_device"]


def select_device(device: str | torch.device | None = "", local_rank: int | None = None) -> torch.device:
    """yolov5-style device string: ``""`` (CUDA 0 if available, else CPU), ``"cpu"``, ``"0"``, ``"0,1"``, ``"cuda:1"``.

    ``local_rank`` (a torchrun process, DDP): the process takes the ``local_rank``-th listed CUDA device
    (cycling; all devices when none is listed). A single process takes the first listed. A CUDA device is made
    the current one (``torch.cuda.set_device``), so ``--device 1`` also holds for code that uses the default
    device. Raises ``ValueError`` when CUDA is asked for and not
    available, or the string is none of these.
    """
    if isinstance(device, torch.device):
        return device
    s = str(device or "").strip().lower().replace("cuda:", "")
    if s in ("cpu", "mps"):
        return torch.device(s)
    listed = [x.strip() for x in s.split(",") if x.strip()]
    if any(not x.isdigit() for x in listed):
        raise ValueError(f"device must be '', 'cpu' or CUDA indices like '0' or '0,1', got {device!r}")
    if not listed:
        if not torch.cuda.is_available():
            return torch.device("cpu")
        listed = ["0"] if local_rank is None else [str(i) for i in range(torch.cuda.device_count())]
    first = listed[0] if local_rank is None else listed[local_rank % len(listed)]
    if not torch.cuda.is_available() or int(first) >= torch.cuda.device_count():
        raise ValueError(f"CUDA device {first} requested but not available ({torch.cuda.device_count()} CUDA devices)")
    out = torch.device(f"cuda:{first}")
    torch.cuda.set_device(out)
    return out
