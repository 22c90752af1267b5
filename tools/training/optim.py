"""Optimizer with yolov5's three parameter groups, and the learning-rate schedules."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import torch
from torch import nn

from detloss.checks import check_choice

from .hyp import Hyp, as_hyp

OPTIMIZERS = ("SGD", "Adam", "AdamW")
# ultralytics v8's auto rule is lr0 = 0.002 * 5 / (4 + nc); twice that trains our tiny models faster in short
# runs (demo, yolov4-tiny-s, 12 epochs: mAP50-95 0.186 at 0.001 vs 0.233 at 0.002 for nc = 6)
AUTO_LR = 0.004
CHOICES = OPTIMIZERS + ("auto",)


def resolve_optimizer(name: str, hyp: Hyp | Mapping[str, float], n_images: int, batch: int, epochs: int, nc: int,
                      nbs: int = 64) -> tuple[str, float, float]:  # fmt: skip
    """``(optimizer, lr0, momentum)``. ``"auto"`` follows ultralytics v8: short runs (<= 10k optimizer steps)
    get AdamW with ``lr0 = AUTO_LR * 5 / (4 + nc)`` (twice ultralytics' 0.002) and momentum 0.9, long runs SGD
    with the hyp values (``hyp``: a :class:`Hyp` or a yolov5 hyp mapping)."""
    hyp = as_hyp(hyp)
    if name != "auto":
        return name, hyp.lr0, hyp.momentum
    steps = math.ceil(n_images / max(batch, nbs)) * epochs
    if steps > 10_000:
        return "SGD", hyp.lr0, hyp.momentum
    return "AdamW", round(AUTO_LR * 5 / (4 + nc), 6), 0.9


MIN_STEPS_PER_EPOCH = 40


def nominal_batch(n_images: int, batch: int, nbs: int = 64) -> int:
    """The batch one optimizer step averages over: yolov5's nominal 64, lowered for small datasets so that an
    epoch still has about :data:`MIN_STEPS_PER_EPOCH` steps (600 images at batch 16: 16, one step a batch;
    yolov5's 64 would give 9 steps an epoch), never below the batch itself."""
    return int(max(batch, min(nbs, n_images // MIN_STEPS_PER_EPOCH)))


def build_optimizer(model: nn.Module, name: str, lr: float, momentum: float, decay: float) -> torch.optim.Optimizer:
    """Group 0: conv/linear weights (weight decay), group 1: norm weights (none), group 2: biases (none).

    The group order is yolov5's, so ``x/lr0..2`` in results.csv mean the same thing.
    """
    check_choice(name, "optimizer", OPTIMIZERS)
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
