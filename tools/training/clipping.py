"""Gradient clipping by value (darknet's ``max_delta``, torch ``clip_grad_value_``) with a count of what it clipped."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor


def clip_grad_value_counted(params: Iterable[torch.nn.Parameter], value: float) -> tuple[Tensor, int]:
    """Clip every gradient element to ``[-value, value]`` in place (``value <= 0``: no clipping).

    Returns ``(clipped, total)``: the number of elements that were outside the range, a 0-d float tensor on the
    gradients' device (read it together with other step statistics: no host sync here), and the number of
    gradient elements (a Python int, from the shapes).
    """
    params_list = list(params)
    grads = [p.grad for p in params_list if p.grad is not None]
    total = sum(g.numel() for g in grads)
    if not grads:
        return torch.zeros(()), 0
    if value <= 0:
        return torch.zeros((), device=grads[0].device), total
    clipped = torch.stack([(g.abs() > value).sum() for g in grads]).sum().float()  # one kernel per tensor
    torch.nn.utils.clip_grad_value_([p for p in params_list if p.grad is not None], value)
    return clipped, total
