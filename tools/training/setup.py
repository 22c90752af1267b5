"""Build what a run needs from the options: device, data, model, loss."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from data.cache import auto_cache, ram_bytes, shape_array
from data.datasets import build_dataset, coco_gt_for
from detloss import LossConfig, YoloLoss, scale_yolov5_hyp
from detloss.autoanchor import check_anchors, label_wh
from detloss.smoothing import class_prior_from_counts
from models import build_model
from models.checkpoint import load_checkpoint
from tools.inference.datasets import resolve_data
from tools.inference.device import select_device as parse_device

from .config import TrainConfig
from .dist import DistInfo
from .hyp import Hyp

__all__ = ["TrainingError", "autoanchor", "build_datasets", "build_loss", "build_net", "resolve_data", "select_device"]


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. too many consecutive non-finite losses); the last good checkpoint is kept."""


def select_device(spec: str, info: DistInfo) -> torch.device:
    """:func:`tools.inference.device.select_device` for this process of a run (the LOCAL_RANK-th listed CUDA
    device under torchrun)."""
    return parse_device(spec, info.local_rank if info.enabled else None)


def build_datasets(d: dict[str, Any], opt: TrainConfig, hyp: Hyp) -> tuple[Any, Any, Any]:
    train = build_dataset(d, "train", opt.imgsz, augment=True, hyp=hyp.as_dict(), seed=opt.seed)
    val = build_dataset(d, "val", opt.imgsz, augment=False)
    cache = opt.cache
    if cache is None:  # no --cache / --no-cache: RAM when the resized images fit (data.cache.auto_cache)
        need = sum(ram_bytes(shape_array(ds.shapes), opt.imgsz) for ds in (train, val))
        cache = auto_cache(need)
        fits = "fit in" if cache else "do not fit in"
        print(f"--cache {cache or 'off'}: the resized images ({need / 2**30:.2f} GiB) {fits} RAM "
              "(--cache ram / --cache disk / --no-cache to choose)")  # fmt: skip
    if cache:
        train.cache_images(cache)
        val.cache_images(cache)
    return train, val, coco_gt_for(d, "val")


def build_net(opt: TrainConfig, d: dict[str, Any]) -> torch.nn.Module:
    """A fresh model of ``--cfg`` or one initialised from ``--weights`` (a detloss checkpoint)."""
    names = list(d["names"])
    if opt.weights:
        ckpt = load_checkpoint(opt.weights)
        if ckpt["nc"] != len(names):
            print(f"--weights has {ckpt['nc']} classes, the data {len(names)}: the head is re-initialised")
        model = build_model(ckpt["cfg"], len(names), names, ckpt["decode"], ckpt["scale_x_y"], ckpt["anchors"])
        state = ckpt.get("ema") or ckpt["model"]
        own = model.state_dict()
        fit = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
        model.load_state_dict(fit, strict=False)
        print(f"transferred {len(fit)}/{len(own)} tensors from {opt.weights}")
    else:
        model = build_model(opt.cfg, len(names), names)
    return model


def build_loss(model: Any, opt: TrainConfig, hyp: Hyp, train_ds: Any) -> YoloLoss:
    """yolov5's hyp scaling by levels, classes (``--cls-scaling``) and image size, then ``YoloLoss`` from the
    model's anchors."""
    kw = model.loss_kwargs()
    nl = len(kw["strides"])
    values = {**hyp.as_dict(), "label_smoothing": opt.label_smoothing}
    scaled = scale_yolov5_hyp(values, nl, kw["num_classes"], opt.imgsz, opt.cls_scaling)
    cfg = LossConfig.from_yolov5_hyp(
        scaled,
        decode=model.decode,
        scale_x_y=model.scale_x_y,
        label_smoothing_kind=opt.label_smoothing_kind,
        multi_label=bool(getattr(train_ds, "multi_label", False)),  # the data YAML's multi_label
        check_finite=False,  # the trainer checks the total itself: one host sync per step, not two
    )
    prior = None
    if opt.label_smoothing_kind == "prior":
        counts = np.zeros(kw["num_classes"])
        for lab in train_ds.labels:
            cls = np.asarray(lab)[:, 0].astype(int)
            cls = cls[cls >= 0]  # class -1: ignore regions, not objects
            if len(cls):
                counts += np.bincount(cls, minlength=kw["num_classes"])
        prior = class_prior_from_counts(torch.as_tensor(counts), pseudo_count=1.0)
    return YoloLoss(**kw, config=cfg, class_prior=prior)


def autoanchor(model: Any, train_ds: Any, hyp: Hyp, opt: TrainConfig, verbose: bool = True) -> bool:
    """yolov5's autoanchor: check the best possible recall of the model's anchors on the training box shapes
    (at ``--imgsz``, ``anchor_t`` from the hyp) and, below 0.98, fit new ones (:mod:`detloss.autoanchor`).
    New anchors are written into the model's head (they travel in its checkpoints). Returns True if changed."""
    wh = label_wh(train_ds.shapes, train_ds.labels, opt.imgsz, seed=opt.seed)
    if len(wh) == 0:
        if verbose:
            print("autoanchor: no boxes in the training labels, anchors kept")
        return False
    head = model.head
    res = check_anchors(wh, head.anchors_px.detach().cpu(), thr=hyp.anchor_t, seed=opt.seed)
    if verbose:
        print(res.message())
    if res.changed:
        with torch.no_grad():
            head.anchors_px.copy_(res.anchors.to(head.anchors_px))
    return res.changed
