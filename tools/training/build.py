"""A fresh run's :class:`tools.training.run_state.TrainState`: the batch plan, the optimizer (``--optimizer
auto`` resolved into the hyp), the learning-rate schedule, the AMP scaler and the EMA, for a built model and loss.

yolov5 train.py's rules: the nominal batch ``nbs`` (64, lowered for small data:
:func:`tools.training.optim.nominal_batch`) sets the accumulation ``round(nbs / batch)`` and scales the
weight decay by ``batch * accumulate / 64``.
"""

from __future__ import annotations

import math

import torch

from detloss import YoloLoss

from .config import TrainConfig
from .ema import ModelEMA, ema_tau
from .hyp import Hyp
from .optim import build_optimizer, lr_lambda, nominal_batch, resolve_optimizer
from .run_state import TrainState

__all__ = ["NBS", "batch_plan", "build_state", "optimizer_hyp"]

NBS = 64  # nominal batch size (yolov5)


def batch_plan(n_train: int, batch_size: int, verbose: bool = False) -> tuple[int, int]:
    """``(nominal batch, accumulation)``: batches of ``batch_size`` (all ranks) accumulated into one step."""
    nbs = nominal_batch(n_train, batch_size, NBS)
    accumulate = max(round(nbs / batch_size), 1)
    if verbose:
        steps = math.ceil(n_train / batch_size / accumulate)
        print(f"nominal batch {nbs}: {accumulate} x {batch_size} images a step, {steps} an epoch")
    return nbs, accumulate


def planned_updates(n_train: int, batch_size: int, accumulate: int, epochs: int) -> int:
    """Optimizer steps of the whole run: ``epochs`` of ``ceil(n_train / batch_size)`` batches, ``accumulate`` a step."""
    return epochs * math.ceil(math.ceil(n_train / batch_size) / accumulate)


def optimizer_hyp(opt: TrainConfig, hyp: Hyp, n_train: int, nc: int, verbose: bool = False) -> tuple[str, Hyp]:
    """The optimizer's name and the hyp it trains with: ``--optimizer auto`` picks the optimizer and sets
    ``lr0``, ``momentum`` (and ``warmup_bias_lr`` 0 for Adam(W), as ultralytics v8: 0.1 is far too high for
    Adam's steps) in the hyp (:func:`tools.training.optim.resolve_optimizer`)."""
    name, lr0, momentum = resolve_optimizer(opt.optimizer, hyp, n_train, opt.batch_size, opt.epochs, nc, NBS)
    if opt.optimizer != "auto":
        return name, hyp
    hyp = hyp.replace(lr0=lr0, momentum=momentum)
    if name != "SGD":
        hyp = hyp.replace(warmup_bias_lr=0.0)
    if verbose:
        print(f"optimizer auto: {name} lr0={lr0} momentum={momentum} warmup_bias_lr={hyp.warmup_bias_lr}")
    return name, hyp


def build_state(opt: TrainConfig, hyp: Hyp, model: torch.nn.Module, loss_fn: YoloLoss, n_train: int, amp: bool,
                verbose: bool = False) -> TrainState:  # fmt: skip
    """The state of a fresh run of ``model`` (on its device, not yet DDP-wrapped) trained with ``loss_fn``."""
    name, hyp = optimizer_hyp(opt, hyp, n_train, loss_fn.nc, verbose)
    _, accumulate = batch_plan(n_train, opt.batch_size, verbose)
    decay = hyp.weight_decay * opt.batch_size * accumulate / NBS
    optimizer = build_optimizer(model, name, hyp.lr0, hyp.momentum, decay)
    lf = lr_lambda(opt.epochs, hyp.lrf, opt.cos_lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda=lf)
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    updates = planned_updates(n_train, opt.batch_size, accumulate, opt.epochs)
    ema = ModelEMA(model, tau=ema_tau(updates))  # on every rank: each infers its val shard with it
    if verbose:
        window = 1.0 / (1.0 - ema.decay_at(updates))
        print(f"EMA: tau {ema.tau:.0f} for {updates} planned steps: ~{window:.0f} steps averaged at the end")
    return TrainState(opt=opt, hyp=hyp, model=model, loss_fn=loss_fn, optimizer=optimizer, scheduler=scheduler,
                      lf=lf, scaler=scaler, ema=ema)  # fmt: skip
