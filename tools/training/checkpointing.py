"""``Checkpointer``: what a run puts into a checkpoint and takes back from one, and the stop on a signal.

It owns ``last.pt`` / ``best.pt`` (:meth:`Checkpointer.save`; atomic writes and ``previous.pt`` by
:class:`tools.training.saver.CheckpointSaver`), the state restored on ``--resume`` (:meth:`Checkpointer.restore`,
the resume position included), and preemption: SIGTERM / SIGINT (:class:`tools.training.preempt.StopSignals`)
end the run at an optimizer step with a resumable mid-epoch ``last.pt`` (:meth:`Checkpointer.stop`).

A checkpoint holds the model, EMA, optimizer, scaler, scheduler, the loss's buffers, the RNG states, the
results rows so far, the position inside an interrupted epoch (:class:`tools.training.state.EpochProgress`)
and the run's settings as plain dicts (``opt``: ``dataclasses.asdict`` of the :class:`TrainConfig`, whose
``epochs`` is the count ``--time`` re-planned; ``hyp``: :meth:`Hyp.as_dict`), so ``--resume`` goes on bit for
bit on the CPU. The keys are those checkpoints have always had, so older ones still resume.
"""

from __future__ import annotations

import signal
import time
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from models import build_model
from models.checkpoint import unwrap

from . import dist
from .preempt import Stopped, StopSignals
from .results import read_rows
from .resume import ResumeError, check_data, fail
from .run_state import TrainState
from .saver import CheckpointSaver
from .state import EpochProgress, rng_state, set_rng_state

__all__ = ["Checkpointer", "resumed_model"]


def resumed_model(ckpt: dict[str, Any], where: str, names: list[str], data_name: str) -> torch.nn.Module:
    """The checkpoint's own model (cfg, classes, decode, anchors), so ``--weights`` need not exist any more;
    the data's classes must be the checkpoint's. ``where``: the checkpoint's path, for the messages."""
    check_data(ckpt, where, names, data_name)
    try:
        model = build_model(ckpt["cfg"], ckpt["nc"], ckpt["names"], ckpt["decode"], ckpt["scale_x_y"],
                            ckpt["anchors"])  # fmt: skip
        model.load_state_dict(ckpt["model"])
    except (ValueError, RuntimeError) as e:
        raise fail(Path(where), f"checkpoint {where!r}: its weights do not fit model {ckpt['cfg']}: "
                   f"{str(e).strip().splitlines()[0]}") from e  # fmt: skip
    return model


class Checkpointer:
    """Saving, restoring and preemption of one run (module docstring).

    Args:
        wdir: the run's ``weights`` folder.
        info: this process's DDP rank (only rank 0 writes).
        n_train: images in the training set (a mid-epoch position is only exact on the same data).
        period_steps, period_minutes: ``--save-period-steps`` / ``--save-period-minutes``.
    """

    def __init__(self, wdir: Path, info: dist.DistInfo, n_train: int, period_steps: int = 0,
                 period_minutes: float = 0.0) -> None:  # fmt: skip
        self.info, self.n_train = info, n_train
        self.saver = CheckpointSaver(wdir, period_steps, period_minutes)
        self.signals = StopSignals(verbose=info.main)

    @property
    def last(self) -> Path:
        return self.saver.last

    def save(self, s: TrainState, epoch: int, fitness: float | None, interrupted: bool = False,
             progress: EpochProgress | None = None) -> None:  # fmt: skip
        """``last.pt`` after ``epoch`` finished (and ``best.pt`` when it is the best), or, with ``progress``, a
        mid-epoch ``last.pt`` from which ``--resume`` continues at ``progress.batch`` of ``progress.epoch``."""
        if not self.info.main:
            return
        extra = dict(
            **s.extra(), epoch=epoch, opt=asdict(s.opt), hyp=s.hyp.as_dict(), rng=rng_state(),
            interrupted=interrupted, progress=progress.state() if progress is not None else None,
            n_train=self.n_train, date=time.strftime("%Y-%m-%dT%H:%M:%S"),
        )  # fmt: skip
        best = progress is None and fitness is not None and fitness >= s.best_fitness and epoch == s.best_epoch
        self.saver.write(s.model, extra, best=best)

    def due(self, s: TrainState) -> bool:
        """Whether a periodic mid-epoch ``last.pt`` is due after the optimizer step just taken (rank 0)."""
        return self.info.main and self.saver.due(s.ema.updates)

    def stop_requested(self, device: torch.device) -> bool:
        """A signal reached any rank (every rank agrees; the flag is then set on each)."""
        stop = dist.any_flag(self.signals.requested, device)
        if stop:
            self.signals.request()
        return stop

    def stop(self, s: TrainState, p: EpochProgress, nb: int) -> None:
        """Save the position ``p`` (right after an optimizer step) and raise :class:`Stopped`."""
        signum = int(self.signals.signum or signal.SIGTERM)
        self.signals.saving = True
        try:
            self.save(s, p.epoch - 1, None, interrupted=True, progress=p)
            dist.barrier()
        finally:
            self.signals.saving = False
        raise self.stopped(s, signum, f"in epoch {p.epoch} after batch {p.batch}/{nb}")

    def stopped(self, s: TrainState, signum: int, where: str) -> Stopped:
        """The :class:`Stopped` to raise: which signal, where, and the command that resumes."""
        last = self.saver.last
        name = signal.Signals(signum).name if signum in signal.Signals._value2member_map_ else f"signal {signum}"
        return Stopped(signum, str(last), f"stopped by {name} {where} (optimizer step {s.ema.updates}): saved "
                       f"{last}; resume with: python tools/train.py --resume {last}")  # fmt: skip

    def restore(self, s: TrainState, ckpt: dict[str, Any], save_dir: Path, device: torch.device) -> None:
        """Put a checkpoint's training state into ``s``: weights, optimizer, counters, the resume position."""
        where = str(s.opt.resume)  # the checkpoint resumed (a path by now)
        _load_modules(s, ckpt, where)
        s.start_epoch = int(ckpt["epoch"]) + 1
        if ckpt.get("progress") is not None:  # stopped inside an epoch: continue at its next batch
            s.progress = EpochProgress.from_state(ckpt["progress"], device)
            s.start_epoch = s.progress.epoch
            if ckpt.get("n_train") != self.n_train:
                warnings.warn(f"the training set has {self.n_train} images, the stopped run had "
                              f"{ckpt.get('n_train')}: epoch {s.start_epoch} restarts at its first batch "
                              "(an exact resume needs the same data)", stacklevel=2)  # fmt: skip
                s.progress = None
        _restore_counters(s, ckpt, save_dir / "results.csv")
        if ckpt.get("rng") is not None and self.info.rank == 0:
            set_rng_state(ckpt["rng"])
        if s.start_epoch >= s.opt.epochs:
            raise ResumeError(f"checkpoint {where!r}: the run already finished its {s.opt.epochs} epochs; "
                              "nothing to resume")  # fmt: skip
        if self.info.main:
            at = f", batch {s.progress.batch}" if s.progress is not None else ""
            print(f"resuming from epoch {s.start_epoch}{at} of {s.opt.epochs}")


def _load_modules(s: TrainState, ckpt: dict[str, Any], where: str) -> None:
    """Model, optimizer, scaler, loss buffers and EMA from ``ckpt``; a mismatch fails naming the checkpoint."""
    try:
        unwrap(s.model).load_state_dict(ckpt["model"])
        s.optimizer.load_state_dict(ckpt["optimizer"])
        s.scaler.load_state_dict(ckpt["scaler"])
        s.loss_fn.load_state_dict(ckpt["loss"])
        if ckpt.get("ema") is not None:
            s.ema.ema.load_state_dict(ckpt["ema"])
            s.ema.updates = int(ckpt["updates"])
    except (ValueError, RuntimeError, KeyError) as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise fail(Path(where), f"checkpoint {where!r}: its training state does not fit: {msg}") from e


def _restore_counters(s: TrainState, ckpt: dict[str, Any], csv: Path) -> None:
    """Results rows, best fitness, counters, elapsed time and the schedule's position from ``ckpt``."""
    if "results" in ckpt:
        s.results = [dict(r) for r in ckpt["results"]]
    elif csv.is_file():  # checkpoints from before the rows travelled in them: the file's rows up to it
        s.results = [r for r in read_rows(csv) if r["epoch"] < s.start_epoch]
    s.best_fitness, s.best_epoch = float(ckpt["best_fitness"]), int(ckpt["best_epoch"])
    s.nonfinite_total = int(ckpt.get("nonfinite_total", 0))
    s.elapsed = float(ckpt.get("elapsed", 0.0))
    s.best_row = ckpt.get("best_row")
    if ckpt.get("scheduler") is not None:
        s.scheduler.load_state_dict(ckpt["scheduler"])
    else:  # checkpoints from before the scheduler was saved: LambdaLR steps once per finished epoch
        s.scheduler = torch.optim.lr_scheduler.LambdaLR(s.optimizer, s.lf, last_epoch=s.start_epoch - 1)
        s.scheduler.step()
