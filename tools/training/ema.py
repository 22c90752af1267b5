"""Exponential moving average of model weights (yolov5 ``ModelEMA``: decay ``d * (1 - exp(-updates / tau))``), with
``tau`` from the run's length."""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from models.checkpoint import unwrap

TAU_MAX = 2000.0  # yolov5's tau, made for runs of 10^5 optimizer steps and more


def ema_tau(total_updates: int) -> float:
    """The ramp's ``tau`` for a run of ``total_updates`` optimizer steps: the averaging window at the end of the run
    (``1 / (1 - decay)``, about ``exp(N / tau)``) a tenth of the run, ``tau = N / ln(N / 10)``, never above
    yolov5's 2000 (which long runs keep). With 2000 a short run barely averages: 840 steps (98 images, batch 16,
    120 epochs) end at decay 0.34, a window of 1.5 steps, so the last weights' noise is what gets evaluated; with
    tau 190 they end at 0.988, a window of ~80 steps."""
    n = max(int(total_updates), 1)
    return min(TAU_MAX, n / max(math.log(n / 10), 1.0))


class ModelEMA:
    """Keeps ``ema`` (an eval-mode copy of the model) as a running average of its floating-point state.

    The decay ramps up from 0 so early, poor weights are forgotten quickly: ``decay * (1 - exp(-updates/tau))``
    with ``decay = 0.9999`` (yolov5) and ``tau`` from the run's length (:func:`ema_tau`; yolov5 fixes 2000).
    """

    def __init__(self, model: nn.Module, decay: float = 0.9999, tau: float = 2000.0, updates: int = 0) -> None:
        self.ema = copy.deepcopy(unwrap(model)).eval()
        self.updates = updates
        self.decay, self.tau = decay, tau
        for p in self.ema.parameters():
            p.requires_grad_(False)

    def current_decay(self) -> float:
        return self.decay_at(self.updates)

    def decay_at(self, updates: int) -> float:
        """The decay after ``updates`` steps (its averaging window is ``1 / (1 - decay)`` steps)."""
        return self.decay * (1 - math.exp(-updates / self.tau))

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
