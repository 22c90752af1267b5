"""The training loop: AMP step order, accumulation, warmup, clipping, EMA, validation, checkpoints, resume.

Step order (yolov5 train.py): ``scaler.scale(loss).backward()``; every ``accumulate`` batches ``unscale_``,
``clip_grad_norm_``, ``scaler.step``, ``scaler.update``, ``zero_grad``, EMA update. Unlike yolov5, leftover
accumulated gradients are stepped at the end of each epoch, so an epoch boundary is a clean resume point.
Every optimizer step is one too: SIGTERM / SIGINT (:mod:`tools.training.preempt`), ``--save-period-steps``
and ``--save-period-minutes`` write ``last.pt`` there with the position inside the epoch
(:class:`tools.training.state.EpochProgress`), and ``--resume`` continues from that step, giving the same
weights, optimizer state and results rows as a run that was never stopped (bit for bit on the CPU).
"""

from __future__ import annotations

import argparse
import math
import time
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader

from data.datasets import collate_fn
from detloss import split_ignore
from models import build_model
from models.checkpoint import unwrap
from tools.detection.runplots import save_batch_image, write_train_start_plots, write_val_plots
from tools.evaluation import EvalConfig
from tools.evaluation import metric_names as mn
from tools.inference.evaluate import evaluate_model

from . import console, dist
from .budget import epochs_that_fit, replan_schedule
from .clipping import clip_grad_value_counted
from .ema import ModelEMA
from .optim import build_optimizer, interp, lr_lambda, nominal_batch, resolve_optimizer
from .preempt import Stopped, StopSignals
from .results import plot_results, read_rows, write_rows
from .resume import ResumeError, check_data, fail
from .runs import save_yaml
from .saver import CheckpointSaver
from .setup import TrainingError, autoanchor, build_datasets, build_loss, build_net, resolve_data
from .state import EpochProgress, epoch_generator, epoch_order, rng_state, seed_everything, set_rng_state
from .timing import NullTimer, timed_iter

NBS = 64  # nominal batch size


def _no_cv2_threads(_worker_id: int = 0) -> None:
    """OpenCV's own thread pool in each loader process would oversubscribe the cores torch already uses."""
    try:
        import cv2
    except ImportError:  # pragma: no cover - opencv is in the train extra
        return
    cv2.setNumThreads(0)


class Trainer:
    def __init__(self, opt: argparse.Namespace, hyp: dict[str, float], save_dir: Path, info: dist.DistInfo,
                 device: torch.device, resume_ckpt: dict[str, Any] | None = None) -> None:  # fmt: skip
        self.opt, self.hyp, self.save_dir, self.info, self.device = opt, dict(hyp), save_dir, info, device
        self.wdir = save_dir / "weights"
        self.timer: Any = NullTimer()  # tools/bench_train.py swaps in a StageTimer
        _no_cv2_threads()
        seed_everything(opt.seed + info.rank)
        self.data, self.data_name = resolve_data(opt.data)
        self.train_ds, self.val_ds, self.val_gt = build_datasets(self.data, opt, hyp)
        if resume_ckpt is not None:  # anchors (a buffer) and weights first: the loss is built from the anchors
            self.model = self._resumed_model(resume_ckpt)
        else:
            self.model = build_net(opt, self.data)
            if not getattr(opt, "noautoanchor", False):
                autoanchor(self.model, self.train_ds, hyp, opt, verbose=info.main)
        # channels-last convolutions: 14 % faster forward + backward of yolov4-tiny-s on 2 CPU cores (batch 16,
        # 256 px), same loss; the fused loss reads the head's permuted view in either layout
        self.memory_format = torch.channels_last if device.type == "cpu" else torch.contiguous_format
        self.model.to(device, memory_format=self.memory_format)
        self.loss_fn = build_loss(self.model, opt, hyp, self.train_ds).to(device)
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
        self.amp = bool(opt.amp) and device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.ema = ModelEMA(self.model)  # on every rank: each infers its val shard with it
        self.start_epoch, self.best_fitness, self.best_epoch = 0, -1.0, -1
        self.progress: EpochProgress | None = None  # a mid-epoch position to resume from
        self.results: list[dict[str, float]] = []  # results.csv rows so far (they travel in the checkpoint)
        self.skipped_images: list[str] = []  # images the loader could not read during this process
        self.signals = StopSignals(verbose=info.main)
        self.saver = CheckpointSaver(self.wdir, getattr(opt, "save_period_steps", 0),
                                     getattr(opt, "save_period_minutes", 0.0))  # fmt: skip
        self.nonfinite_total = 0
        self.elapsed = 0.0  # training seconds before this process (resume)
        self.t0 = time.time()
        self.best_row: dict[str, float] | None = None
        self.final_table: str | None = None
        if resume_ckpt is not None:
            self._restore(resume_ckpt)
        if info.enabled:
            if opt.sync_bn and device.type == "cuda":
                self.model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
            self.model = DDP(self.model, device_ids=[device.index] if device.type == "cuda" else None)
        self.tb = _tensorboard(save_dir) if info.main else None

    # ----------------------------------------------------------------------------------------------- state
    def _resumed_model(self, ckpt: dict[str, Any]) -> torch.nn.Module:
        """The checkpoint's own model (cfg, classes, decode, anchors), so ``--weights`` need not exist any more."""
        where = self.opt.resume
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
            where = self.opt.resume
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
            opt=vars(self.opt), hyp=self.hyp, rng=rng_state(), interrupted=interrupted,
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

    # ----------------------------------------------------------------------------------------------- loop
    def fit(self) -> dict[str, float]:
        """Train the remaining epochs. SIGTERM / SIGINT stop it at the next optimizer step with a resumable
        ``last.pt`` and raise :class:`tools.training.preempt.Stopped`."""
        with self.signals:
            try:
                return self._fit()
            finally:
                plots = not getattr(self.opt, "noplots", False)  # yolov5: --noplots skips results.png too
                if self.info.main and plots and (self.save_dir / "results.csv").exists():
                    plot_results(self.save_dir / "results.csv")

    def _fit(self) -> dict[str, float]:
        opt, info = self.opt, self.info
        if info.main:
            save_yaml(self.save_dir / "hyp.yaml", self.hyp)
            save_yaml(self.save_dir / "opt.yaml", vars(opt))
            if not getattr(opt, "noplots", False):
                write_train_start_plots(self.save_dir, self.train_ds)  # labels.jpg
            if self.start_epoch:  # results.csv as the checkpoint knows it (a kill may have left one row more)
                write_rows(self.save_dir / "results.csv", self.results)
        last: dict[str, float] = {}
        stop = False
        self.t0 = time.time() - self.elapsed
        if info.main and getattr(opt, "time", None):
            print(f"time budget {opt.time:g} h: the number of epochs is re-planned after each epoch (--epochs ignored)")
        epoch = self.start_epoch - 1
        while epoch + 1 < opt.epochs:  # opt.epochs can change under --time
            epoch += 1
            if opt.close_mosaic and epoch >= opt.epochs - opt.close_mosaic and self.train_ds.aug.mosaic > 0:
                if info.main:
                    print(f"closing mosaic: the last {opt.epochs - epoch} epochs train on single images")
                self.train_ds.aug = replace(self.train_ds.aug, mosaic=0.0)
            try:
                train_row = self.train_epoch(epoch)
            except KeyboardInterrupt:  # not from SIGINT (handled as a stop): e.g. raised by a callback
                print(f"\ninterrupted in epoch {epoch}: saving {self.wdir / 'last.pt'} (resume redoes epoch {epoch})")
                self.save(epoch - 1, None, interrupted=True)
                raise
            self.scheduler.step()
            if getattr(opt, "time", None):
                self._fit_budget(epoch)
            final = epoch + 1 >= opt.epochs
            with self.timer("validation"):
                val_row = self.validate(final) if (not opt.noval or final) else _empty_val()
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
            if opt.patience and epoch - self.best_epoch >= opt.patience:
                stop = True
                print(f"early stop: no improvement in {opt.patience} epochs (best epoch {self.best_epoch})")
            halt = dist.any_flag(self.signals.requested, self.device)
            if dist.broadcast_flag(stop, self.device):
                break
            if halt and epoch + 1 < opt.epochs:  # a signal during validation: stop at this epoch boundary
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
        opt = self.opt
        elapsed = time.time() - self.t0  # resumed time included
        n = dist.broadcast_int(epochs_that_fit(opt.time * 3600, elapsed, epoch + 1), self.device)
        if n == opt.epochs:
            return
        if self.info.main:
            print(f"time budget {opt.time:g} h: {n} epochs fit ({elapsed / (epoch + 1):.1f} s an epoch so far)")
        opt.epochs = n
        self.lf = lr_lambda(n, self.hyp["lrf"], opt.cos_lr)
        replan_schedule(self.scheduler, self.lf)

    def _loader(self, epoch: int, start_batch: int = 0) -> tuple[DataLoader, int]:
        """The epoch's loader from batch ``start_batch`` on, and the number of batches of the whole epoch."""
        self.train_ds.set_epoch(epoch)
        order = epoch_order(self.train_ds, self.opt.seed, epoch, self.info.rank, self.info.world_size)
        nb = math.ceil(len(order) / self.batch)
        # the generator only seeds the workers (the order is fixed above): the global RNG is not drawn from
        loader = DataLoader(self.train_ds, batch_size=self.batch, sampler=order[start_batch * self.batch :],
                          generator=epoch_generator(self.opt.seed, epoch), num_workers=self.opt.workers,
                          collate_fn=collate_fn, pin_memory=self.device.type == "cuda", drop_last=False,
                          worker_init_fn=_no_cv2_threads, persistent_workers=False)  # fmt: skip
        return loader, nb

    def train_epoch(self, epoch: int) -> dict[str, float]:
        """One epoch (from the resumed position when there is one for ``epoch``); the train columns of its row."""
        opt, hyp, model = self.opt, self.hyp, self.model
        p = self.progress if self.progress is not None and self.progress.epoch == epoch else None
        self.progress = None
        loader, nb = self._loader(epoch, p.batch if p is not None else 0)
        if p is None:
            p = EpochProgress(epoch, last_opt_step=epoch * nb - 1, mloss=torch.zeros(3, device=self.device))
        nw = max(round(hyp["warmup_epochs"] * nb), 100) if hyp["warmup_epochs"] > 0 else -1
        model.train()
        self.loss_fn.train()
        self.vclip = p.vclip  # gradient elements clipped by --clip-grad-value, all gradient elements
        if self.info.main:
            print(console.train_header())
        pbar = _progress(timed_iter(loader, self.timer), nb, self.info.main, initial=p.batch)
        self.optimizer.zero_grad()
        pending = False  # gradients accumulated since the last optimizer step

        def step() -> None:
            with self.timer("optimizer"):
                norm = self._step()
            if norm is not None:
                p.norms.append(norm)
                p.clipped += int(opt.clip_grad > 0 and norm > opt.clip_grad)

        for i, (imgs, targets, paths, _) in enumerate(pbar, start=p.batch):
            ni = i + nb * epoch
            imgs = (imgs.to(self.device, non_blocking=True).float() / 255).contiguous(memory_format=self.memory_format)
            targets, ignore = split_ignore(targets)  # class -1 rows: ignore regions (CPU batch, no device sync)
            targets, ignore = targets.to(self.device), ignore.to(self.device)
            if i == 0 and epoch == self.start_epoch and self.info.main and not getattr(opt, "noplots", False):
                save_batch_image(imgs, targets, self.train_ds.names, self.save_dir / "train_batch0.jpg")  # augmented
            accumulate = self.accumulate
            if ni <= nw:
                xi = (0.0, float(nw))
                accumulate = max(1, round(interp(ni, xi, (1.0, self.nbs / opt.batch_size))))
                for j, g in enumerate(self.optimizer.param_groups):
                    start = hyp["warmup_bias_lr"] if j == 2 else 0.0
                    g["lr"] = interp(ni, xi, (start, g["initial_lr"] * self.lf(epoch)))
                    if "momentum" in g:
                        g["momentum"] = interp(ni, xi, (hyp["warmup_momentum"], hyp["momentum"]))
            with self.timer("forward"), torch.autocast(self.device.type, enabled=self.amp):
                preds = model(imgs)
            with self.timer("loss"):
                loss, items = self.loss_fn(preds, targets, ignore)  # built with check_finite=False: checked here, once
            if self.info.enabled:
                loss = loss * self.info.world_size  # DDP averages gradients over ranks
            if not bool(torch.isfinite(loss)):
                self._non_finite(p, loss, items, i, paths)
                continue
            p.consecutive = 0
            with self.timer("backward"):
                self.scaler.scale(loss).backward()
            pending = True
            stepped = ni - p.last_opt_step >= accumulate or i == nb - 1
            if stepped:
                pending = False
                step()
                p.last_opt_step = ni
            p.mloss = (p.mloss * i + items) / (i + 1)
            p.batch = i + 1
            if self.info.main:
                mem = f"{torch.cuda.memory_reserved(self.device) / 1e9:.3g}G" if self.device.type == "cuda" else "0G"
                desc = console.train_desc(epoch, opt.epochs, mem, p.mloss, targets.shape[0], imgs.shape[-1])
                pbar.set_description(desc)
            if stepped:
                self._after_step(p, nb)
        if pending:  # the epoch's last batches were skipped as non-finite: step what was accumulated before them
            step()
        self._note_skipped()
        lrs = [g["lr"] for g in self.optimizer.param_groups]
        mloss = dist.all_mean(p.mloss)
        norms = p.norms
        return {
            "train/box_loss": float(mloss[0]), "train/obj_loss": float(mloss[1]), "train/cls_loss": float(mloss[2]),
            "x/lr0": lrs[0], "x/lr1": lrs[1], "x/lr2": lrs[2],
            "train/grad_norm": float(sum(norms) / len(norms)) if norms else float("nan"),
            "train/clipped_frac": p.clipped / max(len(norms), 1), "train/nonfinite_steps": float(self.nonfinite_total),
            "train/clipped_value_frac": self.vclip[0] / max(self.vclip[1], 1),
        }  # fmt: skip

    def _after_step(self, p: EpochProgress, nb: int) -> None:
        """At a step boundary: stop on a signal (every rank agrees), or write a periodic mid-epoch ``last.pt``."""
        stop = dist.any_flag(self.signals.requested, self.device)  # a signal may reach one rank only
        if stop:
            self.signals.request()
        if stop:
            self._stop(p, nb)
        if self.info.main and self.saver.due(self.ema.updates):
            self.save(p.epoch - 1, None, progress=p)

    def _non_finite(self, p: EpochProgress, loss: torch.Tensor, items: torch.Tensor, i: int, paths: Any) -> None:
        """Count a skipped non-finite step; after ``--max-nonfinite`` in a row stop with the likely causes."""
        reason = f"loss {float(loss.detach())}, items (box, obj, cls) {items.tolist()}"
        self.nonfinite_total += 1
        p.consecutive += 1
        warnings.warn(f"non-finite loss at epoch {p.epoch} batch {i}: {reason}; step skipped", stacklevel=2)
        if p.consecutive >= self.opt.max_nonfinite:
            lr = max(g["lr"] for g in self.optimizer.param_groups)
            imgs = ", ".join(str(x) for x in list(paths)[:3])
            raise TrainingError(
                f"{p.consecutive} consecutive non-finite losses (epoch {p.epoch}, batch {i}, --max-nonfinite "
                f"{self.opt.max_nonfinite}): stopping. Likely causes: a learning rate too high (lr now {lr:.3g}, "
                f"lr0 {self.hyp['lr0']:g}; try a lower lr0 or a longer warmup), or broken data (boxes of zero or "
                f"negative size, NaN coordinates, corrupt images; the last batch had {imgs}). The last good "
                f"checkpoint is {self.saver.last if self.saver.last.is_file() else 'none yet'}."
            )

    def _note_skipped(self) -> None:
        """Name the images the loader could not read this epoch (skipped by ``data``, any worker)."""
        found = getattr(self.train_ds, "skipped_at_load", None)
        new = [p for p in (found() if found is not None else []) if p not in self.skipped_images]
        self.skipped_images += new
        if new and self.info.main:
            print(f"{len(new)} image(s) could not be read and were skipped: {', '.join(new[:5])}"
                  + (" ..." if len(new) > 5 else ""))  # fmt: skip

    def _step(self) -> float | None:
        """unscale_, clip, step, update, zero_grad, EMA. Returns the gradient norm before clipping."""
        self.scaler.unscale_(self.optimizer)
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        vclip, n_grad = clip_grad_value_counted(params, getattr(self.opt, "clip_grad_value", 0.0))  # before the norm
        max_norm = self.opt.clip_grad if self.opt.clip_grad > 0 else math.inf
        norm_t = torch.nn.utils.clip_grad_norm_(params, max_norm=max_norm)
        norm, n_vclip = torch.stack((norm_t.float(), vclip.to(norm_t.device))).tolist()  # the step's one sync
        self.vclip[0] += n_vclip  # in place: the list is the epoch progress's
        self.vclip[1] += n_grad
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad()
        self.ema.update(self.model)
        return norm if math.isfinite(norm) else None

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
                if not getattr(self.opt, "noplots", False):
                    write_val_plots(self.save_dir, res, self.val_ds)  # confusion matrix, P/R/F1 curves, val batch 0
        return res.metrics()  # P, R, mAP50, mAP50-95, D-ECE and the val losses under metric_names

    def _val_items(self, logits: list[torch.Tensor], targets: torch.Tensor) -> torch.Tensor:
        """Loss items ``(box, obj, cls)`` of one val batch (eval-mode body: BN frozen)."""
        targets, ignore = split_ignore(targets)  # class -1 rows: ignore regions
        return self.loss_fn(logits, targets, ignore)[1]


def _empty_val() -> dict[str, float]:
    return dict.fromkeys((*mn.METRICS, *mn.VAL_LOSSES), 0.0)


def _progress(loader: Any, total: int, enabled: bool, initial: int = 0) -> Any:
    try:
        from tqdm import tqdm
    except ImportError:
        return loader
    return tqdm(loader, total=total, initial=initial, disable=not enabled, bar_format="{l_bar}{bar:10}{r_bar}")


def _tensorboard(save_dir: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard not installed: log to results.csv only
        return None
    return SummaryWriter(str(save_dir))
