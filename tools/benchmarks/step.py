"""One training step of a model on synthetic data, timed by stage, its FLOPs counted, variants interleaved.

A step is what the trainer does per batch (``tools/training/epoch.py``): forward, loss, backward, optimizer step
(SGD with Nesterov momentum, yolov5's three parameter groups) and ``zero_grad``; the stage names are those of
:data:`tools.training.timing.STAGES`. Images are random pixels, targets random boxes (``per_image`` an image):
the step's arithmetic does not depend on the values.

FLOPs: ``torch.utils.flop_counter.FlopCounterMode`` over forward, loss and backward (convolutions and matrix
products, a multiply-add as two flops; element-wise ops, batch norm and the optimizer are not counted), so
``flops / seconds / peak`` is the fraction of the CPU's fp32 peak the convolutions reach.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from detloss import LossConfig, YoloLoss
from models import build_model
from tools.training.optim import build_optimizer
from tools.training.timing import STAGES, NullTimer, StageTimer

TRAIN_STAGES = tuple(s for s in STAGES if s in ("forward", "loss", "backward", "optimizer"))


@dataclass
class StepCase:
    """A model, its loss and optimizer, and one batch: ``imgs`` ``Tensor[bs, 3, s, s]`` in [0, 1] and ``targets``
    ``Tensor[n, 6]`` ``[image, class, cx, cy, w, h]`` normalised."""

    model: nn.Module
    loss: YoloLoss
    optimizer: torch.optim.Optimizer
    imgs: Tensor
    targets: Tensor


def random_targets(bs: int, per_image: int, nc: int, gen: torch.Generator) -> Tensor:
    """``Tensor[bs * per_image, 6]`` boxes inside the image, sides 2-40 % of it, uniform classes."""
    n = bs * per_image
    wh = torch.rand(n, 2, generator=gen) * 0.38 + 0.02
    xy = wh / 2 + torch.rand(n, 2, generator=gen) * (1 - wh)
    img = torch.arange(bs).repeat_interleave(per_image).float()
    cls = torch.randint(0, nc, (n,), generator=gen).float()
    return torch.cat((img[:, None], cls[:, None], xy, wh), 1)


def build_case(cfg: str, nc: int, bs: int, imgsz: int, per_image: int, channels_last: bool, seed: int = 0) -> StepCase:
    """The model ``cfg`` (``nc`` classes) in train mode, the yolov5-preset loss built from it, SGD as the trainer's
    defaults (lr 0.01, momentum 0.937, decay 5e-4), and one batch; ``channels_last``: model and images in NHWC."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = build_model(cfg, nc).train()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    cfg_loss = LossConfig(decode=model.decode, scale_x_y=model.scale_x_y, check_finite=False)
    loss = YoloLoss(**model.loss_kwargs(), config=cfg_loss)
    optimizer = build_optimizer(model, "SGD", 0.01, 0.937, 5e-4)
    imgs = torch.rand(bs, 3, imgsz, imgsz, generator=gen).contiguous(memory_format=fmt)
    return StepCase(model, loss, optimizer, imgs, random_targets(bs, per_image, nc, gen))


def train_step(case: StepCase, timer: object = None, amp: torch.dtype | None = None) -> None:
    """One step: forward, loss, backward, optimizer step and ``zero_grad(set_to_none=True)``, each in ``timer``;
    ``amp``: the forward under CPU autocast to that dtype (the trainer's ``--amp``, :mod:`tools.training.precision`)."""
    t = NullTimer() if timer is None else timer
    with t("forward"), torch.autocast("cpu", dtype=amp, enabled=amp is not None):  # type: ignore[operator]
        preds = case.model(case.imgs)
    with t("loss"):  # type: ignore[operator]
        total, _ = case.loss(preds, case.targets)
    with t("backward"):  # type: ignore[operator]
        total.backward()
    with t("optimizer"):  # type: ignore[operator]
        case.optimizer.step()
        case.optimizer.zero_grad(set_to_none=True)


def step_flops(case: StepCase) -> int:
    """FLOPs of forward + loss + backward (module docstring); the parameters are restored afterwards."""
    state = {k: v.clone() for k, v in case.model.state_dict().items()}
    counter = FlopCounterMode(display=False)
    with counter:
        total, _ = case.loss(case.model(case.imgs), case.targets)
        total.backward()
    case.optimizer.zero_grad(set_to_none=True)
    case.model.load_state_dict(state)
    return int(counter.get_total_flops())


def eval_forward(model: nn.Module, imgs: Tensor) -> Callable[[], object]:
    """A callable running ``model`` on ``imgs`` in eval mode without gradients (what validation does)."""

    def run() -> object:
        with torch.no_grad():
            return model(imgs)

    return run


def interleaved(runs: dict[str, Callable[[], object]], reps: int, warmup: int = 2) -> dict[str, float]:
    """Median seconds per call of each candidate, called round-robin with the order rotated every round (a load
    change on a shared machine then hits all alike)."""
    names = list(runs)
    for name in names:
        for _ in range(warmup):
            runs[name]()
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(reps):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            t0 = time.perf_counter()
            runs[name]()
            times[name].append(time.perf_counter() - t0)
    return {n: statistics.median(v) for n, v in times.items()}


def stage_seconds(case: StepCase, reps: int) -> dict[str, float]:
    """Median seconds per stage over ``reps`` steps (after one warm-up step)."""
    train_step(case)
    per: dict[str, list[float]] = {s: [] for s in TRAIN_STAGES}
    for _ in range(reps):
        timer = StageTimer(case.imgs.device)
        train_step(case, timer)
        for s in TRAIN_STAGES:
            per[s].append(timer.seconds.get(s, 0.0))
    return {s: statistics.median(v) for s, v in per.items()}
