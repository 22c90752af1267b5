"""A model over a loader of dataset batches -> COCO results, with the stage times and, if asked, the val losses.

Pipeline (yolov5 ``val.py`` defaults, :class:`tools.evaluation.config.EvalConfig`): batched letterboxed images
-> decoded output ``[bs, N, 5 + nc]`` of the model in eval mode, its convs and batch norms folded into one conv
each (:func:`models.fold.folded_for_eval`, a copy: the caller's model is not touched)
-> :func:`tools.inference.postprocess.postprocess` (NMS, boxes back to original-image pixels) -> COCO results
with ``category_id = cat_ids[cls]``.

Validation losses come from the same forward pass when a ``val_loss`` callable is given: the model is
called as ``model(x, raw=True)`` and returns the decoded boxes together with the per-level logits.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from models.fold import folded_for_eval
from tools.evaluation.cocojson import detections_to_coco
from tools.evaluation.config import EvalConfig

from .datasets import base_dataset
from .device import select_device
from .postprocess import calibrate_detections, forward_decoded, meta_value, postprocess

__all__ = ["InferenceOutput", "infer"]


@dataclass
class InferenceOutput:
    """COCO results of a pass, the image ids it covered, and seconds spent (preprocess, inference, NMS)."""

    results: list[dict] = field(default_factory=list)
    image_ids: list[Any] = field(default_factory=list)
    times: dict[str, float] = field(default_factory=lambda: {"pre": 0.0, "inference": 0.0, "nms": 0.0})
    loss_sum: torch.Tensor | None = None  # sum over batches of the val_loss items (when asked for)
    loss_batches: int = 0


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.inference_mode()
def infer(
    model: nn.Module,
    loader: Iterable,
    device: torch.device | str,
    config: EvalConfig | None = None,
    cat_ids: Sequence[int] | None = None,
    multi_label: bool = True,
    calibrator: Any = None,
    val_loss: Callable[[list[torch.Tensor], torch.Tensor], torch.Tensor] | None = None,
) -> InferenceOutput:
    """Run ``model`` over ``loader`` (batches of ``data.datasets.collate_fn``) and collect COCO results.

    ``config``: NMS ``conf_thres``, ``iou_thres``, ``max_det`` and ``half`` (fp16 autocast on CUDA; box math
    after the model is float32) are read; default ``EvalConfig()``. ``cat_ids[cls]`` is each class's category
    id (default: ``loader.dataset.cat_ids``). ``calibrator`` (a checkpoint's ``"calibrator"`` state or a
    ``Calibrator``): applied to the final confidences after NMS. ``val_loss(logits, targets) -> items``: also run
    on the same forward pass, summed into ``loss_sum`` (a trainer's validation losses).
    """
    cfg = EvalConfig() if config is None else config
    if cat_ids is None:
        cat_ids = getattr(base_dataset(getattr(loader, "dataset", None)), "cat_ids", None)
    if cat_ids is None:
        raise ValueError("cat_ids (class index -> COCO category id) not given and the dataset has no .cat_ids")
    device = select_device(device)
    was_training = model.training
    model.eval()
    run = folded_for_eval(model)  # an eval-mode copy, one conv for each conv + batch norm
    out = InferenceOutput()
    use_amp = cfg.half and device.type == "cuda"
    try:
        for imgs, labels, _paths, metas in loader:
            t0 = time.perf_counter()
            x = imgs.to(device, non_blocking=True).float() / 255.0
            _sync(device)
            t1 = time.perf_counter()
            pred = _forward(run, x, labels, use_amp, val_loss, out)
            _sync(device)
            t2 = time.perf_counter()
            dets = postprocess(pred, metas, cfg.conf_thres, cfg.iou_thres, cfg.max_det, multi_label)
            _add_results(out, dets, metas, cat_ids, calibrator)
            t3 = time.perf_counter()
            out.times["pre"] += t1 - t0
            out.times["inference"] += t2 - t1
            out.times["nms"] += t3 - t2
    finally:
        model.train(was_training)
    return out


def _forward(model: nn.Module, x: torch.Tensor, labels: torch.Tensor, use_amp: bool, val_loss: Callable | None,
             out: InferenceOutput) -> torch.Tensor:  # fmt: skip
    """The decoded output ``[bs, N, 5 + nc]`` of images ``x`` (on the model's device); with ``val_loss``, the loss
    items of the same forward pass on ``labels`` are added to ``out.loss_sum``."""
    if val_loss is None:
        return forward_decoded(model, x, use_amp)
    with torch.autocast(x.device.type, dtype=torch.float16, enabled=use_amp):
        pred, raw = model(x, raw=True)
    items = val_loss(raw, labels.to(x.device)).detach().float()
    out.loss_sum = items if out.loss_sum is None else out.loss_sum + items
    out.loss_batches += 1
    return pred


def _add_results(out: InferenceOutput, dets: list[torch.Tensor], metas: list, cat_ids: Sequence[int],
                 calibrator: Any) -> None:  # fmt: skip
    """Append each image's id and its detections ``[k, 6]`` (calibrated, as COCO results) to ``out``."""
    for det, meta in zip(dets, metas):
        image_id = meta_value(meta, "image_id")
        out.image_ids.append(image_id)
        if len(det):
            det = calibrate_detections(det, calibrator)
            out.results += detections_to_coco(det[:, :4], det[:, 4], det[:, 5], image_id, cat_ids)
