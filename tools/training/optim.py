"""Optimizer with yolov5's three parameter groups, and the learning-rate schedules."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

OPTIMIZERS = ("SGD", "Adam", "AdamW")


def build_optimizer(model: nn.Module, name: str, lr: float, momentum: float, decay: float) -> torch.optim.Optimizer:
    """Group 0: conv/linear weights (weight decay), group 1: norm weights (none), group 2: biases (none).

    The group order is yolov5's, so ``x/lr0..2`` in results.csv mean the same thing.
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; expected one of {OPTIMIZERS}")
    decayed, norm_w, biases = [], [], []
    norm_types = tuple(v for k, v in vars(nn).items() if "Norm" in k and isinstance(v, type))
    for module in model.modules():
        for pname, p in module.named_parameters(recurse=False):
            if not p.requires_grad:
                continue
            if pname == "bias":
                biases.append(p)
            elif isinstance(module, norm_types):
                norm_w.append(p)
            else:
                decayed.append(p)
    groups = [
        {"params": decayed, "weight_decay": decay},
        {"params": norm_w, "weight_decay": 0.0},
        {"params": biases, "weight_decay": 0.0},
    ]
    if name == "SGD":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=True)
    if name == "Adam":
        return torch.optim.Adam(groups, lr=lr, betas=(momentum, 0.999))
    return torch.optim.AdamW(groups, lr=lr, betas=(momentum, 0.999))


def lr_lambda(epochs: int, lrf: float, cos: bool) -> Callable[[int], float]:
    """Factor of lr0 at an epoch: linear from 1 to ``lrf`` (yolov5 default) or a cosine ramp to ``lrf``."""
    if cos:
        return lambda e: ((1 - math.cos(e * math.pi / epochs)) / 2) * (lrf - 1) + 1
    return lambda e: (1 - e / epochs) * (1.0 - lrf) + lrf


def interp(x: float, xp: tuple[float, float], fp: tuple[float, float]) -> float:
    """Linear interpolation between two points, clamped (numpy.interp for two points)."""
    if x <= xp[0]:
        return fp[0]
    if x >= xp[1]:
        return fp[1]
    return fp[0] + (fp[1] - fp[0]) * (x - xp[0]) / (xp[1] - xp[0])
