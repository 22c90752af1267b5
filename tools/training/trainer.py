"""The trainer: builds a run from its :class:`TrainConfig` and :class:`Hyp` (data, model, loss, then the
:class:`TrainState`: optimizer, schedule, EMA) and trains it epoch after epoch, validating, logging and
checkpointing, with ``--time``, ``--close-mosaic`` and early stopping.

Composed, not inherited: the run's mutable state is one :class:`TrainState` (``self.state``); saving,
restoring and preemption are a :class:`Checkpointer`'s (``self.checkpointer``); one epoch's batches are the
step loop's (:func:`tools.training.steps.train_epoch`); the epoch loop is :meth:`Trainer.fit` here.

The config is a frozen value: ``--time`` re-plans the number of epochs by replacing ``state.opt`` with a copy
whose ``epochs`` is the new count (so the checkpoint's ``opt`` records it and ``--resume`` goes on with it).
"""

from __future__ import annotations

import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel as DDP

from detloss import split_ignore
from tools.detection.runplots import write_train_start_plots, write_val_plots
from tools.evaluation import EvalConfig
from tools.evaluation import metric_names as mn
from tools.inference.evaluate import evaluate_model

from . import console, dist, steps
from .budget import epochs_that_fit, replan_schedule
from .build import batch_plan, build_state, planned_updates
from .checkpointing import Checkpointer, resumed_model
from .config import TrainConfig
from .ema import ema_tau
from .hyp import Hyp
from .optim import lr_lambda
from .precision import autocast_dtype, describe_precision
from .results import plot_results, write_rows
from .runs import save_yaml
from .setup import autoanchor, build_datasets, build_loss, build_net, resolve_data
from .state import EpochProgress, seed_everything
from .timing import NullTimer

__all__ = ["Trainer"]


class Trainer:
    """One training run (module docstring); :meth:`fit` trains it. ``resume_ckpt``: a checkpoint to go on from
    (``tools/train.py --resume`` loaded and checked it; ``opt.resume`` is its path)."""

    def __init__(self, opt: TrainConfig, hyp: Hyp, save_dir: Path, info: dist.DistInfo, device: torch.device,
                 resume_ckpt: dict[str, Any] | None = None) -> None:  # fmt: skip
        self.save_dir, self.info, self.device = save_dir, info, device
        self.wdir = save_dir / "weights"
        self.timer: Any = NullTimer()  # tools/bench_train.py swaps in a StageTimer
        steps.no_cv2_threads()
        seed_everything(opt.seed + info.rank)
        self.data, self.data_name = resolve_data(opt.data)
        self.train_ds, self.val_ds, self.val_gt = build_datasets(self.data, opt, hyp)
        # channels-last convolutions: 14 % faster forward + backward of yolov4-tiny-s on 2 CPU cores (batch 16,
        # 256 px), same loss; the fused loss reads the head's permuted view in either layout
        self.memory_format = torch.channels_last if device.type == "cpu" else torch.contiguous_format
        # Module.to documents memory_format as a form of its own (not beside a device): two calls
        model = self._model(opt, hyp, resume_ckpt).to(device).to(memory_format=self.memory_format)
        loss_fn = build_loss(model, opt, hyp, self.train_ds).to(device)
        if info.main:
            g = loss_fn.cfg
            print(f"loss gains: box {g.box:.4g}, obj {g.obj:.4g}, cls {g.cls:.4g} (--cls-scaling {opt.cls_scaling}, "
                  f"{loss_fn.nc} classes)")  # fmt: skip
        self.batch = opt.batch_size // info.world_size  # images a rank loads per batch
        self.nbs, self.accumulate = batch_plan(len(self.train_ds), opt.batch_size)
        self.amp_dtype = autocast_dtype(device, opt.amp)  # fp16 on CUDA, bf16 on a CPU with native bf16, else None
        if info.main:
            print(describe_precision(device, opt.amp))
        scaled = self.amp_dtype is torch.float16  # bf16 needs no loss scaling
        self.state = build_state(opt, hyp, model, loss_fn, len(self.train_ds), scaled, verbose=info.main)
        self.checkpointer = Checkpointer(self.wdir, info, len(self.train_ds), opt.save_period_steps,
                                         opt.save_period_minutes)  # fmt: skip
        if resume_ckpt is not None:
            self.checkpointer.restore(self.state, resume_ckpt, save_dir, device)
        if info.enabled:
            self._wrap_ddp()
        self.tb = _tensorboard(save_dir) if info.main else None

    def _model(self, opt: TrainConfig, hyp: Hyp, resume_ckpt: dict[str, Any] | None) -> torch.nn.Module:
        """The checkpoint's model on resume (anchors first: the loss is built from them), else ``--cfg`` or
        ``--weights`` with autoanchor."""
        if resume_ckpt is not None:
            return resumed_model(resume_ckpt, str(opt.resume), list(self.data["names"]), self.data_name)
        model = build_net(opt, self.data)
        if not opt.noautoanchor:
            autoanchor(model, self.train_ds, hyp, opt, verbose=self.info.main)
        return model

    def _wrap_ddp(self) -> None:
        s = self.state
        if s.opt.sync_bn and self.device.type == "cuda":
            s.model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(s.model)
        s.model = DDP(s.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)

    # the state's parts by their old names (tools/bench_train.py, tests)
    opt = property(lambda self: self.state.opt)
    hyp = property(lambda self: self.state.hyp)
    model = property(lambda self: self.state.model)
    optimizer = property(lambda self: self.state.optimizer)
    ema = property(lambda self: self.state.ema)
    loss_fn = property(lambda self: self.state.loss_fn)

    # ----------------------------------------------------------------------------------------------- steps
    def train_epoch(self, epoch: int) -> dict[str, float]:
        """One epoch's steps (:func:`tools.training.steps.train_epoch`); the train columns of its row."""
        return steps.train_epoch(self, epoch)

    def _after_step(self, p: EpochProgress, nb: int) -> None:
        """At a step boundary: stop on a signal (every rank agrees), or write a periodic mid-epoch ``last.pt``."""
        if self.checkpointer.stop_requested(self.device):
            self.checkpointer.stop(self.state, p, nb)
        if self.checkpointer.due(self.state):
            self.save(p.epoch - 1, None, progress=p)

    def save(self, epoch: int, fitness: float | None, interrupted: bool = False,
             progress: EpochProgress | None = None) -> None:  # fmt: skip
        """:meth:`Checkpointer.save` of this run's state."""
        self.checkpointer.save(self.state, epoch, fitness, interrupted, progress)

    # ----------------------------------------------------------------------------------------------- epochs
    def fit(self) -> dict[str, float]:
        """Train the remaining epochs; the last epoch's results row. SIGTERM / SIGINT stop it at the next
        optimizer step with a resumable ``last.pt`` and raise :class:`tools.training.preempt.Stopped`."""
        with self.checkpointer.signals:
            try:
                return self._fit()
            finally:
                plots = not self.state.opt.noplots  # yolov5: --noplots skips results.png too
                if self.info.main and plots and (self.save_dir / "results.csv").exists():
                    plot_results(self.save_dir / "results.csv")

    def _fit(self) -> dict[str, float]:
        s = self.state  # no alias of s.opt: --time replaces it (_fit_budget)
        self._write_run_files()
        s.t0 = time.time() - s.elapsed
        if self.info.main and s.opt.time is not None:
            hours = s.opt.time
            print(f"time budget {hours:g} h: the number of epochs is re-planned after each epoch (--epochs ignored)")
        last: dict[str, float] = {}
        epoch = s.start_epoch - 1
        while epoch + 1 < s.opt.epochs:  # the epochs can change under --time
            epoch += 1
            last = self._epoch(epoch)
            if self._early_stop(epoch):
                break
        if self.info.main and last:
            self._summary(int(last["epoch"]) + 1 - s.start_epoch)
        return last

    def _write_run_files(self) -> None:
        """hyp.yaml, opt.yaml, labels.jpg, and on resume results.csv as the checkpoint knows it (rank 0)."""
        s = self.state
        if not self.info.main:
            return
        save_yaml(self.save_dir / "hyp.yaml", s.hyp.as_dict())
        save_yaml(self.save_dir / "opt.yaml", asdict(s.opt))
        if not s.opt.noplots:
            write_train_start_plots(self.save_dir, self.train_ds)  # labels.jpg
        if s.start_epoch:  # a kill may have left one row more in the file
            write_rows(self.save_dir / "results.csv", s.results)

    def _epoch(self, epoch: int) -> dict[str, float]:
        """Train, re-plan (``--time``), validate, record and checkpoint one epoch; its results row."""
        s = self.state
        self._close_mosaic(epoch)
        try:
            train_row = self.train_epoch(epoch)
        except KeyboardInterrupt:  # not from SIGINT (handled as a stop): e.g. raised by a callback
            print(f"\ninterrupted in epoch {epoch}: saving {self.wdir / 'last.pt'} (resume redoes epoch {epoch})")
            self.save(epoch - 1, None, interrupted=True)
            raise
        s.scheduler.step()
        if s.opt.time is not None:
            self._fit_budget(epoch)
        final = epoch + 1 >= s.opt.epochs
        with self.timer("validation"):
            val_row = self.validate(final) if (not s.opt.noval or final) else _empty_val()
        fitness = mn.fitness(val_row)
        if fitness > s.best_fitness:
            s.best_fitness, s.best_epoch = fitness, epoch
            s.best_row = {k: float(v) for k, v in val_row.items()}
        row = {"epoch": epoch, **train_row, **val_row, "time": s.seconds()}
        self._record(epoch, row)
        self.save(epoch, fitness)
        s.loss_fn.next_epoch()
        return row

    def _close_mosaic(self, epoch: int) -> None:
        """``--close-mosaic N``: the last N epochs train on single images."""
        close, epochs = self.state.opt.close_mosaic, self.state.opt.epochs
        if close and epoch >= epochs - close and self.train_ds.aug.mosaic > 0:
            if self.info.main:
                print(f"closing mosaic: the last {epochs - epoch} epochs train on single images")
            self.train_ds.aug = replace(self.train_ds.aug, mosaic=0.0)

    def _record(self, epoch: int, row: dict[str, float]) -> None:
        """The row into the state (so into the checkpoint), results.csv and TensorBoard."""
        self.state.results.append({k: float(v) for k, v in row.items()})
        if not self.info.main:
            return
        write_rows(self.save_dir / "results.csv", self.state.results)
        if self.tb is not None:
            for k, v in row.items():
                self.tb.add_scalar(k, v, epoch)
            self.tb.flush()  # short runs: the scalars reach the events file each epoch

    def _early_stop(self, epoch: int) -> bool:
        """``--patience`` ran out (every rank agrees); a signal during validation stops at this epoch boundary."""
        s, patience = self.state, self.state.opt.patience
        stop = bool(patience) and epoch - s.best_epoch >= patience
        if stop:
            print(f"early stop: no improvement in {patience} epochs (best epoch {s.best_epoch})")
        halt = dist.any_flag(self.checkpointer.signals.requested, self.device)
        if dist.broadcast_flag(stop, self.device):
            return True
        if halt and epoch + 1 < s.opt.epochs:
            signum = int(self.checkpointer.signals.signum or 15)
            raise self.checkpointer.stopped(s, signum, f"after epoch {epoch}")
        return False

    def _summary(self, done: int) -> None:
        s = self.state
        print(console.final_summary(done, s.seconds(), s.best_epoch, s.best_row, self.save_dir, s.final_table))
        if s.skipped_images:
            n, names = len(s.skipped_images), ", ".join(s.skipped_images[:5])
            more = " ..." if n > 5 else ""
            print(f"{n} training image(s) could not be read during the run and were skipped: {names}{more}")

    def _fit_budget(self, epoch: int) -> None:
        """``--time``: re-plan the number of epochs, the schedule and close-mosaic (``tools/training/budget.py``)."""
        s = self.state
        hours = s.opt.time
        assert hours is not None  # called under --time only
        elapsed = s.seconds()  # resumed time included
        n = dist.broadcast_int(epochs_that_fit(hours * 3600, elapsed, epoch + 1), self.device)
        if n == s.opt.epochs:
            return
        if self.info.main:
            print(f"time budget {hours:g} h: {n} epochs fit ({elapsed / (epoch + 1):.1f} s an epoch so far)")
        s.opt = replace(s.opt, epochs=n)  # the plan from here on, and what the checkpoints record
        s.lf = lr_lambda(n, s.hyp.lrf, s.opt.cos_lr)
        replan_schedule(s.scheduler, s.lf)
        s.ema.tau = ema_tau(planned_updates(len(self.train_ds), s.opt.batch_size, self.accumulate, n))

    # ----------------------------------------------------------------------------------------------- val
    @torch.no_grad()
    def validate(self, final: bool = False) -> dict[str, float]:
        """COCO mAP, calibration and the val losses of the EMA model, from one inference pass over the val set."""
        s = self.state
        was = s.loss_fn.training
        s.loss_fn.eval()  # online smoothing must not learn from validation
        try:
            config = EvalConfig(
                batch_size=self.batch * 2, workers=s.opt.workers, half=self.amp_dtype is torch.float16, backend="faster"
            )
            res = evaluate_model(s.ema.ema, self.val_ds, config, self.val_gt, self.device, val_loss=self._val_items)
        finally:
            s.loss_fn.train(was)
        if res is None:  # non-zero ranks
            return _empty_val()
        if self.info.main:
            print(console.val_header())
            print(console.all_line(res))
            if final:
                s.final_table = console.class_table(res)
                if not s.opt.noplots:
                    write_val_plots(self.save_dir, res, self.val_ds)  # confusion matrix, P/R/F1 curves, val batch 0
        return res.metrics()  # P, R, mAP50, mAP50-95, D-ECE and the val losses under metric_names

    def _val_items(self, logits: list[torch.Tensor], targets: torch.Tensor) -> torch.Tensor:
        """Loss items ``(box, obj, cls)`` of one val batch (eval-mode body: BN frozen)."""
        targets, ignore = split_ignore(targets)  # class -1 rows: ignore regions
        return self.state.loss_fn(logits, targets, ignore)[1]


def _empty_val() -> dict[str, float]:
    return dict.fromkeys((*mn.METRICS, *mn.VAL_LOSSES), 0.0)


def _tensorboard(save_dir: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard not installed: log to results.csv only
        return None
    return SummaryWriter(str(save_dir))
