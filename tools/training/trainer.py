"""The trainer: builds a run from its :class:`TrainConfig` (data, model, loss, optimizer, schedule, EMA) and
trains it epoch after epoch, validating, logging and checkpointing, with ``--time``, ``--close-mosaic`` and
early stopping. One epoch's steps are :class:`tools.training.epoch.EpochLoop`'s, checkpoints and resume
:class:`tools.training.checkpointing.Checkpointing`'s (the trainer's two bases).

The config is a frozen value: ``--time`` re-plans the number of epochs by replacing ``self.opt`` with a copy
whose ``epochs`` is the new count (so the checkpoint's ``opt`` records it and ``--resume`` goes on with it).
"""

from __future__ import annotations

import math
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

from . import console, dist
from .budget import epochs_that_fit, replan_schedule
from .config import TrainConfig
from .ema import ModelEMA
from .epoch import EpochLoop, no_cv2_threads
from .optim import build_optimizer, lr_lambda, nominal_batch, resolve_optimizer
from .preempt import StopSignals
from .results import plot_results, write_rows
from .runs import save_yaml
from .saver import CheckpointSaver
from .setup import autoanchor, build_datasets, build_loss, build_net, resolve_data
from .state import seed_everything
from .timing import NullTimer

NBS = 64  # nominal batch size


class Trainer(EpochLoop):
    """One training run (module docstring); :meth:`fit` trains it."""

    def __init__(self, opt: TrainConfig, hyp: dict[str, float], save_dir: Path, info: dist.DistInfo,
                 device: torch.device, resume_ckpt: dict[str, Any] | None = None) -> None:  # fmt: skip
        self.opt, self.hyp, self.save_dir, self.info, self.device = opt, dict(hyp), save_dir, info, device
        self.wdir = save_dir / "weights"
        self.timer = NullTimer()  # tools/bench_train.py swaps in a StageTimer
        no_cv2_threads()
        seed_everything(opt.seed + info.rank)
        self.data, self.data_name = resolve_data(opt.data)
        self.train_ds, self.val_ds, self.val_gt = build_datasets(self.data, opt, hyp)
        if resume_ckpt is not None:  # anchors (a buffer) and weights first: the loss is built from the anchors
            self.model = self._resumed_model(resume_ckpt)
        else:
            self.model = build_net(opt, self.data)
            if not opt.noautoanchor:
                autoanchor(self.model, self.train_ds, hyp, opt, verbose=info.main)
        # channels-last convolutions: 14 % faster forward + backward of yolov4-tiny-s on 2 CPU cores (batch 16,
        # 256 px), same loss; the fused loss reads the head's permuted view in either layout
        self.memory_format = torch.channels_last if device.type == "cpu" else torch.contiguous_format
        self.model.to(device, memory_format=self.memory_format)
        self.loss_fn = build_loss(self.model, opt, hyp, self.train_ds).to(device)
        if info.main:
            g = self.loss_fn.cfg
            print(f"loss gains: box {g.box:.4g}, obj {g.obj:.4g}, cls {g.cls:.4g} (--cls-scaling {opt.cls_scaling}, "
                  f"{self.loss_fn.nc} classes)")  # fmt: skip
        self.batch = opt.batch_size // info.world_size
        self.nbs = nominal_batch(len(self.train_ds), opt.batch_size, NBS)
        self.accumulate = max(round(self.nbs / opt.batch_size), 1)
        decay = hyp["weight_decay"] * opt.batch_size * self.accumulate / NBS
        name, lr0, momentum = resolve_optimizer(opt.optimizer, hyp, len(self.train_ds), opt.batch_size, opt.epochs,
                                                self.loss_fn.nc, NBS)  # fmt: skip
        if opt.optimizer == "auto":
            self.hyp.update(lr0=lr0, momentum=momentum)
            if name != "SGD":  # ultralytics v8 too: a 0.1 bias lr in warmup is far too high for Adam's steps
                self.hyp["warmup_bias_lr"] = 0.0
            if info.main:
                wb = self.hyp["warmup_bias_lr"]
                print(f"optimizer auto: {name} lr0={lr0} momentum={momentum} warmup_bias_lr={wb}")
        if info.main:
            steps = math.ceil(len(self.train_ds) / opt.batch_size / self.accumulate)
            print(f"nominal batch {self.nbs}: {self.accumulate} x {opt.batch_size} images a step, {steps} an epoch")
        self.optimizer = build_optimizer(self.model, name, lr0, momentum, decay)
        self.lf = lr_lambda(opt.epochs, hyp["lrf"], opt.cos_lr)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_lambda=self.lf)
        self.amp = opt.amp and device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.ema = ModelEMA(self.model)  # on every rank: each infers its val shard with it
        self.start_epoch, self.best_fitness, self.best_epoch = 0, -1.0, -1
        self.progress = None  # a mid-epoch position to resume from
        self.results = []  # results.csv rows so far (they travel in the checkpoint)
        self.skipped_images = []  # images the loader could not read during this process
        self.signals = StopSignals(verbose=info.main)
        self.saver = CheckpointSaver(self.wdir, opt.save_period_steps, opt.save_period_minutes)
        self.nonfinite_total = 0
        self.elapsed = 0.0  # training seconds before this process (resume)
        self.t0 = time.time()
        self.best_row = None
        self.final_table: str | None = None
        if resume_ckpt is not None:
            self._restore(resume_ckpt)
        if info.enabled:
            if opt.sync_bn and device.type == "cuda":
                self.model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
            self.model = DDP(self.model, device_ids=[device.index] if device.type == "cuda" else None)
        self.tb = _tensorboard(save_dir) if info.main else None

    # ----------------------------------------------------------------------------------------------- loop
    def fit(self) -> dict[str, float]:
        """Train the remaining epochs. SIGTERM / SIGINT stop it at the next optimizer step with a resumable
        ``last.pt`` and raise :class:`tools.training.preempt.Stopped`."""
        with self.signals:
            try:
                return self._fit()
            finally:
                plots = not self.opt.noplots  # yolov5: --noplots skips results.png too
                if self.info.main and plots and (self.save_dir / "results.csv").exists():
                    plot_results(self.save_dir / "results.csv")

    def _fit(self) -> dict[str, float]:
        info = self.info  # no alias of self.opt: --time replaces it (_fit_budget)
        if info.main:
            save_yaml(self.save_dir / "hyp.yaml", self.hyp)
            save_yaml(self.save_dir / "opt.yaml", asdict(self.opt))
            if not self.opt.noplots:
                write_train_start_plots(self.save_dir, self.train_ds)  # labels.jpg
            if self.start_epoch:  # results.csv as the checkpoint knows it (a kill may have left one row more)
                write_rows(self.save_dir / "results.csv", self.results)
        last: dict[str, float] = {}
        stop = False
        self.t0 = time.time() - self.elapsed
        if info.main and self.opt.time is not None:
            hours = self.opt.time
            print(f"time budget {hours:g} h: the number of epochs is re-planned after each epoch (--epochs ignored)")
        epoch = self.start_epoch - 1
        while epoch + 1 < self.opt.epochs:  # the epochs can change under --time
            epoch += 1
            close = self.opt.close_mosaic
            if close and epoch >= self.opt.epochs - close and self.train_ds.aug.mosaic > 0:
                if info.main:
                    print(f"closing mosaic: the last {self.opt.epochs - epoch} epochs train on single images")
                self.train_ds.aug = replace(self.train_ds.aug, mosaic=0.0)
            try:
                train_row = self.train_epoch(epoch)
            except KeyboardInterrupt:  # not from SIGINT (handled as a stop): e.g. raised by a callback
                print(f"\ninterrupted in epoch {epoch}: saving {self.wdir / 'last.pt'} (resume redoes epoch {epoch})")
                self.save(epoch - 1, None, interrupted=True)
                raise
            self.scheduler.step()
            if self.opt.time is not None:
                self._fit_budget(epoch)
            final = epoch + 1 >= self.opt.epochs
            with self.timer("validation"):
                val_row = self.validate(final) if (not self.opt.noval or final) else _empty_val()
            fitness = mn.fitness(val_row)
            if fitness > self.best_fitness:
                self.best_fitness, self.best_epoch = fitness, epoch
                self.best_row = {k: float(v) for k, v in val_row.items()}
            last = {"epoch": epoch, **train_row, **val_row, "time": time.time() - self.t0}
            self.results.append({k: float(v) for k, v in last.items()})
            if info.main:
                write_rows(self.save_dir / "results.csv", self.results)
                if self.tb is not None:
                    for k, v in last.items():
                        self.tb.add_scalar(k, v, epoch)
                    self.tb.flush()  # short runs: the scalars reach the events file each epoch
            self.save(epoch, fitness)
            self.loss_fn.next_epoch()
            patience = self.opt.patience
            if patience and epoch - self.best_epoch >= patience:
                stop = True
                print(f"early stop: no improvement in {patience} epochs (best epoch {self.best_epoch})")
            halt = dist.any_flag(self.signals.requested, self.device)
            if dist.broadcast_flag(stop, self.device):
                break
            if halt and epoch + 1 < self.opt.epochs:  # a signal during validation: stop at this epoch boundary
                raise self._stopped(int(self.signals.signum or 15), f"after epoch {epoch}")
        if info.main and last:
            done = int(last["epoch"]) + 1 - self.start_epoch
            print(console.final_summary(done, time.time() - self.t0, self.best_epoch, self.best_row, self.save_dir,
                                        self.final_table))  # fmt: skip
            if self.skipped_images:
                n, names = len(self.skipped_images), ", ".join(self.skipped_images[:5])
                more = " ..." if n > 5 else ""
                print(f"{n} training image(s) could not be read during the run and were skipped: {names}{more}")
        return last

    def _fit_budget(self, epoch: int) -> None:
        """``--time``: re-plan the number of epochs, the schedule and close-mosaic (``tools/training/budget.py``)."""
        hours = self.opt.time
        assert hours is not None  # called under --time only
        elapsed = time.time() - self.t0  # resumed time included
        n = dist.broadcast_int(epochs_that_fit(hours * 3600, elapsed, epoch + 1), self.device)
        if n == self.opt.epochs:
            return
        if self.info.main:
            print(f"time budget {hours:g} h: {n} epochs fit ({elapsed / (epoch + 1):.1f} s an epoch so far)")
        self.opt = replace(self.opt, epochs=n)  # the plan from here on, and what the checkpoints record
        self.lf = lr_lambda(n, self.hyp["lrf"], self.opt.cos_lr)
        replan_schedule(self.scheduler, self.lf)

    # ----------------------------------------------------------------------------------------------- val
    @torch.no_grad()
    def validate(self, final: bool = False) -> dict[str, float]:
        """COCO mAP, calibration and the val losses of the EMA model, from one inference pass over the val set."""
        model = self.ema.ema
        was = self.loss_fn.training
        self.loss_fn.eval()  # online smoothing must not learn from validation
        try:
            config = EvalConfig(batch_size=self.batch * 2, workers=self.opt.workers, half=self.amp, backend="faster")
            res = evaluate_model(model, self.val_ds, config, self.val_gt, self.device, val_loss=self._val_items)
        finally:
            self.loss_fn.train(was)
        if res is None:  # non-zero ranks
            return _empty_val()
        if self.info.main:
            print(console.val_header())
            print(console.all_line(res))
            if final:
                self.final_table = console.class_table(res)
                if not self.opt.noplots:
                    write_val_plots(self.save_dir, res, self.val_ds)  # confusion matrix, P/R/F1 curves, val batch 0
        return res.metrics()  # P, R, mAP50, mAP50-95, D-ECE and the val losses under metric_names

    def _val_items(self, logits: list[torch.Tensor], targets: torch.Tensor) -> torch.Tensor:
        """Loss items ``(box, obj, cls)`` of one val batch (eval-mode body: BN frozen)."""
        targets, ignore = split_ignore(targets)  # class -1 rows: ignore regions
        return self.loss_fn(logits, targets, ignore)[1]


def _empty_val() -> dict[str, float]:
    return dict.fromkeys((*mn.METRICS, *mn.VAL_LOSSES), 0.0)


def _tensorboard(save_dir: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard not installed: log to results.csv only
        return None
    return SummaryWriter(str(save_dir))
