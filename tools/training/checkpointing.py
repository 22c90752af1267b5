"""What the trainer puts into a checkpoint and takes back from one: ``last.pt`` / ``best.pt`` (:meth:`save`),
the state restored on ``--resume``, and the stop on a signal with a resumable mid-epoch ``last.pt``.

A checkpoint holds the model, EMA, optimizer, scaler, scheduler, the loss's buffers, the RNG states, the
results rows so far, the position inside an interrupted epoch (:class:`tools.training.state.EpochProgress`)
and the run's settings as a plain dict (``opt``: ``dataclasses.asdict`` of the :class:`TrainConfig`, whose
``epochs`` is the count ``--time`` re-planned), so ``--resume`` goes on bit for bit on the CPU.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from detloss import YoloLoss
from models import build_model
from models.checkpoint import unwrap

from . import dist
from .config import TrainConfig
from .ema import ModelEMA
from .preempt import Stopped, StopSignals
from .results import read_rows
from .resume import ResumeError, check_data, fail
from .saver import CheckpointSaver
from .state import EpochProgress, rng_state, set_rng_state

__all__ = ["Checkpointing"]


class Checkpointing:
    """The trainer's state and its checkpoints: a base of :class:`tools.training.trainer.Trainer`, whose
    ``__init__`` builds the attributes declared here."""

    opt: TrainConfig
    hyp: dict[str, float]
    info: dist.DistInfo
    device: torch.device
    save_dir: Path
    data: dict[str, Any]
    data_name: str
    train_ds: Any
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    scheduler: torch.optim.lr_scheduler.LambdaLR
    lf: Callable[[int], float]  # the schedule's lr factor by epoch
    loss_fn: YoloLoss
    ema: ModelEMA
    saver: CheckpointSaver
    signals: StopSignals
    start_epoch: int
    progress: EpochProgress | None  # a mid-epoch position to resume from
    results: list[dict[str, float]]  # results.csv rows so far
    best_fitness: float
    best_epoch: int
    best_row: dict[str, float] | None
    nonfinite_total: int
    elapsed: float  # training seconds before this process (resume)
    t0: float

    def _resumed_model(self, ckpt: dict[str, Any]) -> torch.nn.Module:
        """The checkpoint's own model (cfg, classes, decode, anchors), so ``--weights`` need not exist any more."""
        where = str(self.opt.resume)  # the checkpoint resumed (a path by now)
        check_data(ckpt, where, list(self.data["names"]), self.data_name)
        try:
            model = build_model(ckpt["cfg"], ckpt["nc"], ckpt["names"], ckpt["decode"], ckpt["scale_x_y"],
                                ckpt["anchors"])  # fmt: skip
            model.load_state_dict(ckpt["model"])
        except (ValueError, RuntimeError) as e:
            raise fail(Path(where), f"checkpoint {str(where)!r}: its weights do not fit model {ckpt['cfg']}: "
                       f"{str(e).strip().splitlines()[0]}") from e  # fmt: skip
        return model

    def _restore(self, ckpt: dict[str, Any]) -> None:
        try:
            unwrap(self.model).load_state_dict(ckpt["model"])
            self.optimizer.load_state_dict(ckpt["optimizer"])
            self.scaler.load_state_dict(ckpt["scaler"])
            self.loss_fn.load_state_dict(ckpt["loss"])
            if ckpt.get("ema") is not None:
                self.ema.ema.load_state_dict(ckpt["ema"])
                self.ema.updates = int(ckpt["updates"])
        except (ValueError, RuntimeError, KeyError) as e:
            where = str(self.opt.resume)  # the checkpoint resumed (a path by now)
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise fail(Path(where), f"checkpoint {str(where)!r}: its training state does not fit: {msg}") from e
        self.start_epoch = int(ckpt["epoch"]) + 1
        if ckpt.get("progress") is not None:  # stopped inside an epoch: continue at its next batch
            self.progress = EpochProgress.from_state(ckpt["progress"], self.device)
            self.start_epoch = self.progress.epoch
            if ckpt.get("n_train") != len(self.train_ds):
                warnings.warn(f"the training set has {len(self.train_ds)} images, the stopped run had "
                              f"{ckpt.get('n_train')}: epoch {self.start_epoch} restarts at its first batch "
                              "(an exact resume needs the same data)", stacklevel=2)  # fmt: skip
                self.progress = None
        csv = self.save_dir / "results.csv"
        if "results" in ckpt:
            self.results = [dict(r) for r in ckpt["results"]]
        elif csv.exists():  # a checkpoint from before the rows travelled in it: the file's rows up to it
            self.results = [r for r in read_rows(csv) if r["epoch"] < self.start_epoch]
        self.best_fitness, self.best_epoch = float(ckpt["best_fitness"]), int(ckpt["best_epoch"])
        self.nonfinite_total = int(ckpt.get("nonfinite_total", 0))
        self.elapsed = float(ckpt.get("elapsed", 0.0))
        self.best_row = ckpt.get("best_row")
        if ckpt.get("scheduler") is not None:
            self.scheduler.load_state_dict(ckpt["scheduler"])
        else:  # checkpoints from before the scheduler was saved: LambdaLR steps once per finished epoch
            self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self.lf, last_epoch=self.start_epoch - 1)
            self.scheduler.step()
        if ckpt.get("rng") is not None and self.info.rank == 0:
            set_rng_state(ckpt["rng"])
        if self.start_epoch >= self.opt.epochs:
            raise ResumeError(f"checkpoint {self.opt.resume!r}: the run already finished its {self.opt.epochs} "
                              "epochs; nothing to resume")  # fmt: skip
        at = f", batch {self.progress.batch}" if self.progress is not None else ""
        if self.info.main:
            print(f"resuming from epoch {self.start_epoch}{at} of {self.opt.epochs}")

    def save(self, epoch: int, fitness: float | None, interrupted: bool = False,
             progress: EpochProgress | None = None) -> None:  # fmt: skip
        """``last.pt`` after ``epoch`` finished (and ``best.pt`` when it is the best), or, with ``progress``, a
        mid-epoch ``last.pt`` from which ``--resume`` continues at ``progress.batch`` of ``progress.epoch``."""
        if not self.info.main:
            return
        extra = dict(
            ema=self.ema.ema, updates=self.ema.updates, optimizer=self.optimizer.state_dict(),
            scaler=self.scaler.state_dict(), loss=self.loss_fn.state_dict(), epoch=epoch,
            scheduler=self.scheduler.state_dict(), elapsed=time.time() - self.t0, best_row=self.best_row,
            best_fitness=self.best_fitness, best_epoch=self.best_epoch, nonfinite_total=self.nonfinite_total,
            opt=asdict(self.opt), hyp=self.hyp, rng=rng_state(), interrupted=interrupted,
            progress=progress.state() if progress is not None else None, n_train=len(self.train_ds),
            results=self.results, date=time.strftime("%Y-%m-%dT%H:%M:%S"),
        )  # fmt: skip
        best = progress is None and fitness is not None and fitness >= self.best_fitness and epoch == self.best_epoch
        self.saver.write(self.model, extra, best=best)

    def _stop(self, p: EpochProgress, nb: int) -> None:
        """Save the position ``p`` (right after an optimizer step) and raise :class:`Stopped`."""
        signum = int(self.signals.signum or 15)
        self.signals.saving = True
        try:
            self.save(p.epoch - 1, None, interrupted=True, progress=p)
            dist.barrier()
        finally:
            self.signals.saving = False
        raise self._stopped(signum, f"in epoch {p.epoch} after batch {p.batch}/{nb}")

    def _stopped(self, signum: int, where: str) -> Stopped:
        import signal

        last = self.saver.last
        name = signal.Signals(signum).name if signum in signal.Signals._value2member_map_ else f"signal {signum}"
        return Stopped(signum, str(last), f"stopped by {name} {where} (optimizer step {self.ema.updates}): saved "
                       f"{last}; resume with: python tools/train.py --resume {last}")  # fmt: skip
