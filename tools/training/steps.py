"""The step loop: one training epoch's batches: the loader, the step order, accumulation, warmup, clipping, EMA,
non-finite losses, and the stops and periodic checkpoints at optimizer-step boundaries.

Step order (yolov5 train.py): ``scaler.scale(loss).backward()``; every ``accumulate`` batches ``unscale_``,
``clip_grad_norm_``, ``scaler.step``, ``scaler.update``, ``zero_grad``, EMA update. Unlike yolov5, leftover
accumulated gradients are stepped at the end of each epoch, so an epoch boundary is a clean resume point.
Every optimizer step is one too: the trainer's ``_after_step`` hook stops there on SIGTERM / SIGINT
(:mod:`tools.training.preempt`) or writes a periodic ``last.pt`` (``--save-period-steps`` /
``--save-period-minutes``) with the position inside the epoch (:class:`tools.training.state.EpochProgress`),
and ``--resume`` continues from that step.

The functions take the trainer (:class:`tools.training.trainer.Trainer`): its run context (device, batch split,
data, timer) and its :class:`tools.training.run_state.TrainState` ``tr.state``, which they update.
"""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.data import DataLoader

from data.datasets import collate_fn
from detloss import split_ignore
from tools.detection.runplots import save_batch_image

from . import console, dist
from .clipping import clip_grad_value_counted
from .optim import interp
from .setup import TrainingError
from .state import EpochProgress, epoch_generator, epoch_order
from .timing import timed_iter

if TYPE_CHECKING:  # the trainer calls these functions: no import at run time
    from .run_state import TrainState
    from .trainer import Trainer

__all__ = ["no_cv2_threads", "optimizer_step", "train_epoch", "warmup"]


def no_cv2_threads(_worker_id: int = 0) -> None:
    """OpenCV's own thread pool in each loader process would oversubscribe the cores torch already uses."""
    try:
        import cv2
    except ImportError:  # pragma: no cover - opencv is in the train extra
        return
    cv2.setNumThreads(0)


def epoch_loader(tr: Trainer, epoch: int, start_batch: int = 0) -> tuple[DataLoader, int]:
    """The epoch's loader from batch ``start_batch`` on, and the number of batches of the whole epoch."""
    seed = tr.state.opt.seed
    tr.train_ds.set_epoch(epoch)
    order = epoch_order(tr.train_ds, seed, epoch, tr.info.rank, tr.info.world_size)
    nb = math.ceil(len(order) / tr.batch)
    # the generator only seeds the workers (the order is fixed above): the global RNG is not drawn from
    loader = DataLoader(tr.train_ds, batch_size=tr.batch, sampler=order[start_batch * tr.batch :],
                        generator=epoch_generator(seed, epoch), num_workers=tr.state.opt.workers,
                        collate_fn=collate_fn, pin_memory=tr.device.type == "cuda", drop_last=False,
                        worker_init_fn=no_cv2_threads, persistent_workers=False)  # fmt: skip
    return loader, nb


def train_epoch(tr: Trainer, epoch: int) -> dict[str, float]:
    """One epoch (from the resumed position when there is one for ``epoch``); the train columns of its row."""
    s = tr.state
    p = s.progress if s.progress is not None and s.progress.epoch == epoch else None
    s.progress = None
    loader, nb = epoch_loader(tr, epoch, p.batch if p is not None else 0)
    if p is None:
        p = EpochProgress(epoch, last_opt_step=epoch * nb - 1, mloss=torch.zeros(3, device=tr.device))
    nw = max(round(s.hyp.warmup_epochs * nb), 100) if s.hyp.warmup_epochs > 0 else -1  # warmup batches
    s.model.train()
    s.loss_fn.train()
    s.vclip = p.vclip  # gradient elements clipped by --clip-grad-value, all gradient elements
    if tr.info.main:
        print(console.train_header())
    pbar = _progress(timed_iter(loader, tr.timer), nb, tr.info.main, initial=p.batch)
    s.optimizer.zero_grad()
    pending = False  # gradients accumulated since the last optimizer step
    for i, batch in enumerate(pbar, start=p.batch):
        done = train_batch(tr, p, batch, i, nb, nw, pbar)
        pending = pending if done is None else not done
    if pending:  # the epoch's last batches were skipped as non-finite: step what was accumulated before them
        _step(tr, p)
    _note_skipped(tr)
    return _train_row(s, p)


def train_batch(tr: Trainer, p: EpochProgress, batch: Any, i: int, nb: int, nw: int, pbar: Any) -> bool | None:
    """Batch ``i`` of ``nb``: forward, loss, backward, and the optimizer step when one is due. Returns whether
    it stepped (None: skipped as non-finite). ``nw``: the warmup's length in batches (-1: none)."""
    s, epoch = tr.state, p.epoch
    imgs, targets, paths, _ = batch
    ni = i + nb * epoch  # batches since the run began
    imgs = (imgs.to(tr.device, non_blocking=True).float() / 255).contiguous(memory_format=tr.memory_format)
    targets, ignore = split_ignore(targets)  # class -1 rows: ignore regions (CPU batch, no device sync)
    targets, ignore = targets.to(tr.device), ignore.to(tr.device)
    if i == 0 and epoch == s.start_epoch and tr.info.main and not s.opt.noplots:
        save_batch_image(imgs, targets, tr.train_ds.names, tr.save_dir / "train_batch0.jpg")  # augmented
    accumulate = warmup(s, ni, nw, epoch, tr.nbs) if ni <= nw else tr.accumulate
    loss, items = _forward(tr, imgs, targets, ignore)
    if not bool(torch.isfinite(loss)):
        _non_finite(tr, p, loss, items, i, paths)
        return None
    p.consecutive = 0
    with tr.timer("backward"):
        s.scaler.scale(loss).backward()
    stepped = ni - p.last_opt_step >= accumulate or i == nb - 1
    if stepped:
        _step(tr, p)
        p.last_opt_step = ni
    p.mloss = (p.mloss * i + items) / (i + 1)
    p.batch = i + 1
    if tr.info.main:
        mem = f"{torch.cuda.memory_reserved(tr.device) / 1e9:.3g}G" if tr.device.type == "cuda" else "0G"
        pbar.set_description(console.train_desc(epoch, s.opt.epochs, mem, p.mloss, targets.shape[0], imgs.shape[-1]))
    if stepped:
        tr._after_step(p, nb)
    return stepped


def warmup(s: TrainState, ni: int, nw: int, epoch: int, nbs: int) -> int:
    """yolov5's warmup at batch ``ni`` of ``nw``: the accumulation ramps from 1 to ``nbs / batch``, each group's
    lr from 0 (the bias group: ``warmup_bias_lr``) to its scheduled lr, momentum from ``warmup_momentum``.
    Sets the optimizer's groups; returns the accumulation."""
    xi = (0.0, float(nw))
    hyp = s.hyp
    for j, g in enumerate(s.optimizer.param_groups):
        start = hyp.warmup_bias_lr if j == 2 else 0.0
        g["lr"] = interp(ni, xi, (start, g["initial_lr"] * s.lf(epoch)))
        if "momentum" in g:
            g["momentum"] = interp(ni, xi, (hyp.warmup_momentum, hyp.momentum))
    return max(1, round(interp(ni, xi, (1.0, nbs / s.opt.batch_size))))


def _forward(tr: Trainer, imgs: torch.Tensor, targets: torch.Tensor, ignore: torch.Tensor) -> tuple[torch.Tensor, Any]:
    """The batch's total loss (scaled by the world size: DDP averages gradients over ranks) and its items."""
    s = tr.state
    amp = tr.amp_dtype is not None
    with tr.timer("forward"), torch.autocast(tr.device.type, dtype=tr.amp_dtype, enabled=amp):
        preds = s.model(imgs)
    with tr.timer("loss"):
        loss, items = s.loss_fn(preds, targets, ignore)  # built with check_finite=False: checked here, once
    if tr.info.enabled:
        loss = loss * tr.info.world_size
    return loss, items


def _step(tr: Trainer, p: EpochProgress) -> None:
    """One optimizer step, its gradient norm and clip recorded in ``p``."""
    with tr.timer("optimizer"):
        norm = optimizer_step(tr.state)
    if norm is not None:
        p.norms.append(norm)
        p.clipped += int(tr.state.opt.clip_grad > 0 and norm > tr.state.opt.clip_grad)


def optimizer_step(s: Any) -> float | None:
    """unscale_, clip (by value, then by norm), step, update, zero_grad, EMA, on ``s`` (a
    :class:`tools.training.run_state.TrainState` or anything with its ``model``, ``optimizer``, ``scaler``,
    ``ema``, ``opt`` and ``vclip``). Returns the gradient norm before clipping (None when not finite)."""
    s.scaler.unscale_(s.optimizer)
    params = [p for g in s.optimizer.param_groups for p in g["params"]]
    vclip, n_grad = clip_grad_value_counted(params, s.opt.clip_grad_value)  # before the norm
    max_norm = s.opt.clip_grad if s.opt.clip_grad > 0 else math.inf
    norm_t = torch.nn.utils.clip_grad_norm_(params, max_norm=max_norm)
    norm, n_vclip = torch.stack((norm_t.float(), vclip.to(norm_t.device))).tolist()  # the step's one sync
    s.vclip[0] += n_vclip  # in place: the list is the epoch progress's
    s.vclip[1] += n_grad
    s.scaler.step(s.optimizer)
    s.scaler.update()
    s.optimizer.zero_grad()
    s.ema.update(s.model)
    return norm if math.isfinite(norm) else None


def _train_row(s: TrainState, p: EpochProgress) -> dict[str, float]:
    """The train columns of the epoch's results row (mean losses over ranks, lrs, gradient figures)."""
    lrs = [g["lr"] for g in s.optimizer.param_groups]
    mloss = dist.all_mean(p.mloss)
    norms = p.norms
    return {
        "train/box_loss": float(mloss[0]), "train/obj_loss": float(mloss[1]), "train/cls_loss": float(mloss[2]),
        "x/lr0": lrs[0], "x/lr1": lrs[1], "x/lr2": lrs[2],
        "train/grad_norm": float(sum(norms) / len(norms)) if norms else float("nan"),
        "train/clipped_frac": p.clipped / max(len(norms), 1), "train/nonfinite_steps": float(s.nonfinite_total),
        "train/clipped_value_frac": s.vclip[0] / max(s.vclip[1], 1),
    }  # fmt: skip


def _non_finite(tr: Trainer, p: EpochProgress, loss: torch.Tensor, items: torch.Tensor, i: int, paths: Any) -> None:
    """Count a skipped non-finite step; after ``--max-nonfinite`` in a row stop with the likely causes."""
    s = tr.state
    reason = f"loss {float(loss.detach())}, items (box, obj, cls) {items.tolist()}"
    s.nonfinite_total += 1
    p.consecutive += 1
    warnings.warn(f"non-finite loss at epoch {p.epoch} batch {i}: {reason}; step skipped", stacklevel=3)
    if p.consecutive < s.opt.max_nonfinite:
        return
    lr = max(g["lr"] for g in s.optimizer.param_groups)
    imgs = ", ".join(str(x) for x in list(paths)[:3])
    last = tr.checkpointer.last
    raise TrainingError(
        f"{p.consecutive} consecutive non-finite losses (epoch {p.epoch}, batch {i}, --max-nonfinite "
        f"{s.opt.max_nonfinite}): stopping. Likely causes: a learning rate too high (lr now {lr:.3g}, "
        f"lr0 {s.hyp.lr0:g}; try a lower lr0 or a longer warmup), or broken data (boxes of zero or "
        f"negative size, NaN coordinates, corrupt images; the last batch had {imgs}). The last good "
        f"checkpoint is {last if last.is_file() else 'none yet'}."
    )


def _note_skipped(tr: Trainer) -> None:
    """Name the images the loader could not read this epoch (skipped by ``data``, any worker)."""
    found = getattr(tr.train_ds, "skipped_at_load", None)
    seen = tr.state.skipped_images
    new = [p for p in (found() if found is not None else []) if p not in seen]
    seen += new
    if new and tr.info.main:
        print(f"{len(new)} image(s) could not be read and were skipped: {', '.join(new[:5])}"
              + (" ..." if len(new) > 5 else ""))  # fmt: skip


def _progress(loader: Any, total: int, enabled: bool, initial: int = 0) -> Any:
    try:
        from tqdm import tqdm
    except ImportError:
        return loader
    return tqdm(loader, total=total, initial=initial, disable=not enabled, bar_format="{l_bar}{bar:10}{r_bar}")
