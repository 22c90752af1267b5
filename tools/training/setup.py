"""Build what a run needs from the options: device, data, model, loss."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import torch

from data.datasets import build_dataset, coco_gt_for
from data.demo import ensure_demo
from data.yaml_io import load_data_yaml
from detloss import LossConfig, YoloLoss, scale_yolov5_hyp
from detloss.smoothing import class_prior_from_counts
from models import build_model
from models.checkpoint import load_checkpoint

from .dist import DistInfo


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. too many consecutive non-finite losses); the last good checkpoint is kept."""


def select_device(spec: str, info: DistInfo) -> torch.device:
    """``cpu``, ``0``, ``0,1`` or ``""`` (CUDA if available) like yolov5; under torchrun each rank takes LOCAL_RANK."""
    spec = str(spec).strip().lower().replace("cuda:", "")
    if spec == "cpu":
        return torch.device("cpu")
    if spec and not torch.cuda.is_available():
        raise ValueError(f"--device {spec!r} asks for CUDA but no CUDA device is available; use --device cpu")
    if not torch.cuda.is_available():
        return torch.device("cpu")
    ids = [int(s) for s in spec.split(",") if s.strip()] or list(range(torch.cuda.device_count()))
    bad = [i for i in ids if i >= torch.cuda.device_count()]
    if bad:
        raise ValueError(f"--device {spec!r}: CUDA device(s) {bad} not present ({torch.cuda.device_count()} found)")
    idx = ids[info.local_rank % len(ids)] if info.enabled else ids[0]
    torch.cuda.set_device(idx)
    return torch.device("cuda", idx)


def resolve_data(data: str | None) -> tuple[dict[str, Any], str]:
    """The data dict and a label for logs; no ``--data`` means the built-in demo dataset."""
    path = ensure_demo() if not data else Path(data)
    return load_data_yaml(path), str(path)


def build_datasets(d: dict[str, Any], opt: argparse.Namespace, hyp: dict[str, float]) -> tuple[Any, Any, Any]:
    train = build_dataset(d, "train", opt.imgsz, augment=True, hyp=hyp, seed=opt.seed)
    val = build_dataset(d, "val", opt.imgsz, augment=False)
    return train, val, coco_gt_for(d, "val")


def build_net(opt: argparse.Namespace, d: dict[str, Any]) -> tuple[torch.nn.Module, dict[str, Any] | None]:
    """A fresh model of ``--cfg`` or one initialised from ``--weights`` (a detloss checkpoint)."""
    names = list(d["names"])
    ckpt = None
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
    return model, ckpt


def build_loss(model: Any, opt: argparse.Namespace, hyp: dict[str, float], train_ds: Any) -> YoloLoss:
    """yolov5's hyp scaling by levels, classes and image size, then ``YoloLoss`` from the model's anchors."""
    kw = model.loss_kwargs()
    nl = len(kw["strides"])
    scaled = scale_yolov5_hyp({**hyp, "label_smoothing": opt.label_smoothing}, nl, kw["num_classes"], opt.imgsz)
    cfg = LossConfig.from_yolov5_hyp(
        scaled, decode=model.decode, scale_x_y=model.scale_x_y, label_smoothing_kind=opt.label_smoothing_kind
    )
    prior = None
    if opt.label_smoothing_kind == "prior":
        counts = np.zeros(kw["num_classes"])
        for lab in train_ds.labels:
            if len(lab):
                counts += np.bincount(np.asarray(lab)[:, 0].astype(int), minlength=kw["num_classes"])
        prior = class_prior_from_counts(torch.as_tensor(counts), pseudo_count=1.0)
    return YoloLoss(**kw, config=cfg, class_prior=prior)
