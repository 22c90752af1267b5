"""One training epoch of the trainer: the loader, the step order, accumulation, warmup, clipping, EMA, non-finite
losses, and the stops and periodic checkpoints at optimizer-step boundaries.

Step order (yolov5 train.py): ``scaler.scale(loss).backward()``; every ``accumulate`` batches ``unscale_``,
``clip_grad_norm_``, ``scaler.step``, ``scaler.update``, ``zero_grad``, EMA update. Unlike yolov5, leftover
accumulated gradients are stepped at the end of each epoch, so an epoch boundary is a clean resume point.
Every optimizer step is one too: SIGTERM / SIGINT (:mod:`tools.training.preempt`), ``--save-period-steps``
and ``--save-period-minutes`` write ``last.pt`` there with the position inside the epoch
(:class:`tools.training.state.EpochProgress`), and ``--resume`` continues from that step.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import torch
from torch.utils.data import DataLoader

from data.datasets import collate_fn
from detloss import split_ignore
from tools.detection.runplots import save_batch_image

from . import console, dist
from .checkpointing import Checkpointing
from .clipping import clip_grad_value_counted
from .optim import interp
from .setup import TrainingError
from .state import EpochProgress, epoch_generator, epoch_order
from .timing import timed_iter

__all__ = ["EpochLoop", "no_cv2_threads"]


def no_cv2_threads(_worker_id: int = 0) -> None:
    """OpenCV's own thread pool in each loader process would oversubscribe the cores torch already uses."""
    try:
        import cv2
    except ImportError:  # pragma: no cover - opencv is in the train extra
        return
    cv2.setNumThreads(0)


class EpochLoop(Checkpointing):
    """The epoch half of :class:`tools.training.trainer.Trainer` (a base of it; ``Trainer.__init__`` builds the
    attributes declared here and in :class:`Checkpointing`)."""

    timer: Any  # a NullTimer, or bench_train's StageTimer
    memory_format: torch.memory_format
    batch: int  # images a rank loads per batch
    nbs: int  # the nominal batch
    accumulate: int  # batches an optimizer step after warmup
    amp: bool
    vclip: list[float]  # elements clipped by --clip-grad-value, elements seen (the epoch progress's list)
    skipped_images: list[str]  # images the loader could not read during this process

    def _loader(self, epoch: int, start_batch: int = 0) -> tuple[DataLoader, int]:
        """The epoch's loader from batch ``start_batch`` on, and the number of batches of the whole epoch."""
        self.train_ds.set_epoch(epoch)
        order = epoch_order(self.train_ds, self.opt.seed, epoch, self.info.rank, self.info.world_size)
        nb = math.ceil(len(order) / self.batch)
        # the generator only seeds the workers (the order is fixed above): the global RNG is not drawn from
        loader = DataLoader(self.train_ds, batch_size=self.batch, sampler=order[start_batch * self.batch :],
                          generator=epoch_generator(self.opt.seed, epoch), num_workers=self.opt.workers,
                          collate_fn=collate_fn, pin_memory=self.device.type == "cuda", drop_last=False,
                          worker_init_fn=no_cv2_threads, persistent_workers=False)  # fmt: skip
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
            if i == 0 and epoch == self.start_epoch and self.info.main and not opt.noplots:
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
        vclip, n_grad = clip_grad_value_counted(params, self.opt.clip_grad_value)  # before the norm
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


def _progress(loader: Any, total: int, enabled: bool, initial: int = 0) -> Any:
    try:
        from tqdm import tqdm
    except ImportError:
        return loader
    return tqdm(loader, total=total, initial=initial, disable=not enabled, bar_format="{l_bar}{bar:10}{r_bar}")
