"""Exponential moving average of model weights (yolov5 ``ModelEMA``: decay ``d * (1 - exp(-updates / tau))``)."""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from models.checkpoint import unwrap


class ModelEMA:
    """Keeps ``ema`` (an eval-mode copy of the model) as a running average of its floating-point state.

    The decay ramps up from 0 so early, poor weights are forgotten quickly: ``decay * (1 - exp(-updates/tau))``
    with ``decay = 0.9999`` and ``tau = 2000`` (yolov5).
    """

    def __init__(self, model: nn.Module, decay: float = 0.9999, tau: float = 2000.0, updates: int = 0) -> None:
        self.ema = copy.deepcopy(unwrap(model)).eval()
        self.updates = updates
        self.decay, self.tau = decay, tau
        for p in self.ema.parameters():
            p.requires_grad_(False)

    def current_decay(self) -> float:
        return self.decay * (1 - math.exp(-self.updates / self.tau))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = self.current_decay()
        msd = unwrap(model).state_dict()
        for k, v in self.ema.state_dict().items():
            if v.dtype.is_floating_point:
                v.mul_(d).add_(msd[k].detach(), alpha=1 - d)
            else:
                v.copy_(msd[k])
