"""``TrainState``: everything a training run changes as it goes, in one value the trainer's parts share.

The trainer (:mod:`tools.training.trainer`) holds one; the step loop (:mod:`tools.training.steps`) updates
the model, optimizer, scaler, EMA and counters; the epoch loop the scheduler, results rows and best fitness;
:class:`tools.training.checkpointing.Checkpointer` writes it into a checkpoint and restores it from one.
What does not change during a run (the data, the batch split, the device) is the trainer's, not the state's.

``opt`` and ``hyp`` are frozen values that a run may *replace*: ``--time`` re-plans ``opt.epochs``, and
``--optimizer auto`` sets ``hyp.lr0`` / ``momentum`` / ``warmup_bias_lr`` once at the start; a checkpoint
records the replaced values, so ``--resume`` goes on with them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from detloss import YoloLoss

from .config import TrainConfig
from .ema import ModelEMA
from .hyp import Hyp
from .state import EpochProgress

__all__ = ["TrainState"]


@dataclass
class TrainState:
    """A run's mutable state (module docstring). ``model`` is DDP-wrapped under torchrun
    (``models.checkpoint.unwrap`` gives the module); ``lf(epoch)`` is the schedule's learning-rate factor."""

    opt: TrainConfig
    hyp: Hyp
    model: torch.nn.Module
    loss_fn: YoloLoss  # its buffers (online smoothing's matrix) change as it trains
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    lf: Callable[[int], float]
    scaler: torch.amp.GradScaler
    ema: ModelEMA
    start_epoch: int = 0
    progress: EpochProgress | None = None  # a mid-epoch position to resume from
    results: list[dict[str, float]] = field(default_factory=list)  # results.csv rows so far
    best_fitness: float = -1.0
    best_epoch: int = -1
    best_row: dict[str, float] | None = None
    nonfinite_total: int = 0  # non-finite losses skipped in the whole run
    elapsed: float = 0.0  # training seconds before this process (resume)
    t0: float = field(default_factory=time.time)  # when training started, resumed time included
    skipped_images: list[str] = field(default_factory=list)  # images the loader could not read (this process)
    vclip: list[float] = field(default_factory=lambda: [0.0, 0.0])  # the epoch progress's clipped/seen elements
    final_table: str | None = None  # the final validation's per-class table

    def seconds(self) -> float:
        """Training seconds so far, resumed time included."""
        return time.time() - self.t0

    def extra(self) -> dict[str, Any]:
        """The checkpoint entries of the state that ``models.checkpoint.save_checkpoint`` stores beside the model
        (keys as checkpoints have always had them)."""
        return dict(
            ema=self.ema.ema, updates=self.ema.updates, optimizer=self.optimizer.state_dict(),
            scaler=self.scaler.state_dict(), loss=self.loss_fn.state_dict(), scheduler=self.scheduler.state_dict(),
            elapsed=self.seconds(), best_row=self.best_row, best_fitness=self.best_fitness,
            best_epoch=self.best_epoch, nonfinite_total=self.nonfinite_total, results=self.results,
        )  # fmt: skip
