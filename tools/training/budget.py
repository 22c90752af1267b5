"""``--time H``: train for a wall-clock budget of H hours instead of a fixed number of epochs.

The rule follows ultralytics' ``time=`` argument (the budget overrides ``--epochs``): after every epoch the
number of epochs that fit is re-estimated from the mean time of the epochs so far (training and validation,
resumed time included), and the learning-rate schedule, warmup and ``--close-mosaic`` are re-planned for
that many epochs, so a short budget still gets the whole schedule (decay to ``lrf``, mosaic-free last epochs)
rather than a run cut off mid-schedule. Unlike ultralytics (which rounds up and then stops on the clock), the
estimate rounds down, so the run ends at or before the budget up to the error of the estimate; at least one
epoch is always trained and every epoch already trained counts.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

__all__ = ["epochs_that_fit", "replan_schedule"]


def epochs_that_fit(budget_s: float, elapsed_s: float, epochs_done: int) -> int:
    """Total epochs that fit ``budget_s`` seconds when ``epochs_done`` epochs took ``elapsed_s`` seconds."""
    if not budget_s > 0 or epochs_done < 1 or not elapsed_s >= 0:
        raise ValueError(f"need budget > 0, elapsed >= 0, epochs done >= 1; got {budget_s}, {elapsed_s}, {epochs_done}")
    mean = elapsed_s / epochs_done
    fit = math.floor(budget_s / mean) if mean > 0 else epochs_done
    return max(epochs_done, fit)


def replan_schedule(scheduler: torch.optim.lr_scheduler.LambdaLR, lf: Callable[[int], float]) -> None:
    """Give ``scheduler`` the new lambda ``lf`` and set every group's learning rate to ``lf`` at its current epoch."""
    scheduler.lr_lambdas = [lf] * len(scheduler.optimizer.param_groups)
    epoch = scheduler.last_epoch
    for group, base in zip(scheduler.optimizer.param_groups, scheduler.base_lrs):
        group["lr"] = base * lf(epoch)
    scheduler._last_lr = [g["lr"] for g in scheduler.optimizer.param_groups]  # what get_last_lr() reports
