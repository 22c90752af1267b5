"""Model inference to COCO results, and model evaluation for ``tools/eval.py`` and the trainer's validation.

Pipeline (yolov5 ``val.py`` defaults): batched letterboxed images -> ``model.eval()`` decoded output
``[bs, N, 5 + nc]`` -> ``non_max_suppression(conf_thres=0.001, iou_thres=0.6, max_det=300, multi_label=True)``
-> boxes mapped back to original-image pixels (``data.letterbox.unletterbox_boxes``) -> COCO results with
``category_id = cat_ids[cls]`` -> ``evaluate_results`` against the split's COCO ground truth.

Distributed (``torchrun``, ``torch.distributed`` initialised with world size > 1): each rank infers the
images ``rank, rank + world, ...`` (no padding duplicates, unlike ``DistributedSampler``), rank 0 gathers
the results with ``gather_object`` and evaluates; the other ranks get ``None``.

Validation losses come from the same forward pass when a ``val_loss`` callable is given: the model is
called as ``model(x, raw=True)`` and returns the decoded boxes together with the per-level logits.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from data.datasets import collate_fn
from data.letterbox import unletterbox_boxes
from models.postprocess import non_max_suppression

from .calibrators import apply_calibrator, calibrate_results
from .cocojson import detections_to_coco
from .evaluate import EvalResult, evaluate_results

__all__ = [
    "InferenceOutput",
    "evaluate_model",
    "forward_decoded",
    "ground_truth_from_dataset",
    "infer",
    "postprocess",
    "run_inference",
    "select_device",
]


def select_device(device: str | torch.device | None = "") -> torch.device:
    """yolov5-style device string: ``""`` (CUDA 0 if available, else CPU), ``"cpu"``, ``"0"``, ``"cuda:1"``.

    Raises ``ValueError`` when CUDA is asked for and not available.
    """
    if isinstance(device, torch.device):
        return device
    s = str(device or "").strip().lower().replace("cuda:", "")
    if s == "":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    if s in ("cpu", "mps"):
        return torch.device(s)
    first = s.split(",")[0]
    if not first.isdigit():
        raise ValueError(f"device must be '', 'cpu' or a CUDA index like '0', got {device!r}")
    if not torch.cuda.is_available() or int(first) >= torch.cuda.device_count():
        raise ValueError(f"CUDA device {first} requested but not available ({torch.cuda.device_count()} CUDA devices)")
    return torch.device(f"cuda:{first}")


def _meta(meta: Any, key: str) -> Any:
    value = meta[key] if isinstance(meta, dict) else getattr(meta, key)
    if value is None:
        raise ValueError(
            f"sample meta has {key}=None: an augmented sample cannot be mapped back to the original image; "
            "evaluate a dataset built with augment=False"
        )
    return value


def _base_dataset(dataset: Any) -> Any:
    """The dataset under ``torch.utils.data.Subset`` wrappers (it holds ``cat_ids``, ``labels``, ...)."""
    while isinstance(dataset, torch.utils.data.Subset):
        dataset = dataset.dataset
    return dataset


def ground_truth_from_dataset(dataset: Any) -> dict:
    """A COCO ground-truth dict from a ``data`` dataset's own labels, for splits without a COCO JSON.

    Uses ``labels`` (per image ``[n, 5]`` ``cls, cx, cy, w, h`` normalised to the original image), ``shapes``
    (``(h0, w0)``), ``image_ids``, ``cat_ids`` and ``names``. Areas are box ``w * h`` in pixels. An ignore region
    (class -1 row) becomes a crowd annotation of every category (COCO matching then ignores detections inside it);
    prefer the split's own COCO JSON when there is one. Rows sharing a box with several classes stay separate
    ground truths, one per class.
    """
    ds = _base_dataset(dataset)
    images: list[dict] = []
    anns: list[dict] = []
    for image_id, (h0, w0), lab in zip(ds.image_ids, ds.shapes, ds.labels):
        images.append({"id": image_id, "width": int(w0), "height": int(h0)})
        for cls, cx, cy, w, h in lab.tolist():
            box = [(cx - w / 2) * w0, (cy - h / 2) * h0, w * w0, h * h0]
            crowd = int(cls) < 0
            for cat in ds.cat_ids if crowd else [ds.cat_ids[int(cls)]]:
                anns.append(
                    {
                        "id": len(anns) + 1,
                        "image_id": image_id,
                        "category_id": cat,
                        "bbox": box,
                        "area": box[2] * box[3],
                        "iscrowd": int(crowd),
                    }
                )
    categories = [{"id": c, "name": str(n)} for c, n in zip(ds.cat_ids, ds.names)]
    return {"images": images, "annotations": anns, "categories": categories}


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


def forward_decoded(model: Any, x: torch.Tensor, amp: bool = False) -> torch.Tensor:
    """The decoded eval-mode output ``Tensor[bs, N, 5 + nc]`` of ``model(x)`` (element 0 of a tuple output).

    ``amp``: fp16 autocast on CUDA (ignored elsewhere). ``model`` is a ``Detector`` in eval mode or anything
    called the same way (``tools.detection.onnx_runtime.OnnxDetector``).
    """
    with torch.autocast(x.device.type, dtype=torch.float16, enabled=amp and x.device.type == "cuda"):
        pred = model(x)
    return pred[0] if isinstance(pred, (tuple, list)) else pred


def postprocess(
    pred: torch.Tensor,
    metas: Sequence[Any],
    conf_thres: float = 0.001,
    iou_thres: float = 0.6,
    max_det: int = 300,
    multi_label: bool = True,
    agnostic: bool = False,
) -> list[torch.Tensor]:
    """NMS of a decoded batch, then boxes back to each original image (``meta``: ``ratio``, ``pad``, ``orig_shape``).

    Returns per image ``Tensor[k, 6]`` ``[x1, y1, x2, y2, conf, cls]`` (float32, CPU, original-image pixels,
    clipped to the image). The path shared by eval, the trainer's validation and ``tools/detect.py``.
    """
    out = []
    dets = non_max_suppression(pred.float(), conf_thres, iou_thres, max_det, multi_label, agnostic)
    for det, meta in zip(dets, metas):
        det = det.float().cpu()
        if len(det):
            boxes = unletterbox_boxes(det[:, :4], _meta(meta, "ratio"), _meta(meta, "pad"), _meta(meta, "orig_shape"))
            det = torch.cat((boxes, det[:, 4:]), 1)
        out.append(det)
    return out


@torch.inference_mode()
def infer(
    model: nn.Module,
    loader: Iterable,
    device: torch.device | str,
    conf_thres: float = 0.001,
    iou_thres: float = 0.6,
    max_det: int = 300,
    amp: bool = False,
    cat_ids: Sequence[int] | None = None,
    multi_label: bool = True,
    calibrator: Any = None,
    val_loss: Callable[[list[torch.Tensor], torch.Tensor], torch.Tensor] | None = None,
) -> InferenceOutput:
    """Run ``model`` over ``loader`` (batches of ``data.datasets.collate_fn``) and collect COCO results.

    ``amp`` runs the forward pass under fp16 autocast on CUDA (ignored on CPU); box math after the model
    is float32. ``cat_ids[cls]`` is each class's category id (default: ``loader.dataset.cat_ids``).
    ``calibrator`` (a checkpoint's ``"calibrator"`` state or a ``calibrators.Calibrator``): applied to the
    final confidences after NMS (:func:`tools.evaluation.calibrators.apply_calibrator`).
    ``val_loss(logits, targets) -> items``: also run on the same forward pass (``model(x, raw=True)`` returns
    the decoded boxes and the per-level logits), summed into ``loss_sum`` (a trainer's validation losses).
    """
    if cat_ids is None:
        cat_ids = getattr(_base_dataset(getattr(loader, "dataset", None)), "cat_ids", None)
    if cat_ids is None:
        raise ValueError("cat_ids (class index -> COCO category id) not given and the dataset has no .cat_ids")
    device = select_device(device)
    was_training = model.training
    model.eval()
    out = InferenceOutput()
    use_amp = amp and device.type == "cuda"
    try:
        for imgs, labels, _paths, metas in loader:
            t0 = time.perf_counter()
            x = imgs.to(device, non_blocking=True).float() / 255.0
            _sync(device)
            t1 = time.perf_counter()
            if val_loss is None:
                pred = forward_decoded(model, x, use_amp)
            else:
                with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
                    pred, raw = model(x, raw=True)
                items = val_loss(raw, labels.to(device)).detach().float()
                out.loss_sum = items if out.loss_sum is None else out.loss_sum + items
                out.loss_batches += 1
            _sync(device)
            t2 = time.perf_counter()
            dets = postprocess(pred, metas, conf_thres, iou_thres, max_det, multi_label)
            for det, meta in zip(dets, metas):
                image_id = _meta(meta, "image_id")
                out.image_ids.append(image_id)
                if len(det):
                    score = apply_calibrator(calibrator, det[:, 4], det[:, 5])
                    out.results += detections_to_coco(det[:, :4], score, det[:, 5], image_id, cat_ids)
            t3 = time.perf_counter()
            out.times["pre"] += t1 - t0
            out.times["inference"] += t2 - t1
            out.times["nms"] += t3 - t2
    finally:
        model.train(was_training)
    return out


def run_inference(
    model: nn.Module,
    loader: Iterable,
    device: torch.device | str,
    conf_thres: float = 0.001,
    iou_thres: float = 0.6,
    max_det: int = 300,
    amp: bool = False,
    cat_ids: Sequence[int] | None = None,
) -> list[dict]:
    """COCO results (``image_id``, ``category_id``, ``bbox`` xywh in original pixels, ``score``) of ``model``."""
    return infer(model, loader, device, conf_thres, iou_thres, max_det, amp, cat_ids).results


def _dist() -> tuple[int, int]:
    """``(rank, world_size)``; ``(0, 1)`` unless torch.distributed is initialised with several processes."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def evaluate_model(
    model: nn.Module,
    dataset: Any,
    gt: str | os.PathLike | dict | None = None,
    batch_size: int = 32,
    device: torch.device | str = "",
    workers: int = 0,
    conf_thres: float = 0.001,
    iou_thres: float = 0.6,
    max_det: int = 300,
    amp: bool = False,
    backend: str = "faster",
    calib_bins: int = 10,
    calib_conf: float = 0.0,
    save_json: str | os.PathLike | None = None,
    calibrator: Any = None,
    val_loss: Callable[[list[torch.Tensor], torch.Tensor], torch.Tensor] | None = None,
) -> EvalResult | None:
    """Infer ``model`` on ``dataset`` and COCO-evaluate the results against ``gt`` (its COCO ground truth).

    Args:
        dataset: a ``data.datasets.build_dataset(...)`` dataset (items ``(img, labels, path, meta)``, ``.cat_ids``).
        gt: the split's COCO ground-truth JSON (``data.datasets.coco_gt_for``) or dict; only the images of
            ``dataset`` are evaluated. None: built from the dataset's labels (``ground_truth_from_dataset``).
        backend: ``"faster"`` by default (per-epoch validation), ``"pycocotools"`` for the reference.
        save_json: also write the COCO results there (rank 0, atomically).
        calibrator: a post-hoc calibrator (a checkpoint's ``"calibrator"`` state): the results are calibrated
            after NMS, and the returned result's ``.before`` is the evaluation of the same pass uncalibrated.
        val_loss: ``val_loss(logits, targets) -> loss items`` computed in the same forward pass (see :func:`infer`);
            their mean over batches (all ranks) is the result's ``.val_loss``.

    Returns:
        ``EvalResult`` on rank 0 (``.speed``: milliseconds per image for pre/inference/nms), ``None`` elsewhere.
    """
    from .cocojson import atomic_write_json

    dev = select_device(device)
    rank, world = _dist()
    shard = dataset if world == 1 else torch.utils.data.Subset(dataset, range(rank, len(dataset), world))
    loader = torch.utils.data.DataLoader(
        shard,
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=collate_fn,
        pin_memory=dev.type == "cuda",
    )
    part = infer(model, loader, dev, conf_thres, iou_thres, max_det, amp, _base_dataset(dataset).cat_ids,
                 val_loss=val_loss)  # fmt: skip
    all_parts = [part]
    if world > 1:
        parts: list[Any] | None = [None] * world if rank == 0 else None
        torch.distributed.gather_object(part, parts, dst=0)
        if rank != 0:
            return None
        assert parts is not None
        results = [r for p in parts for r in p.results]
        image_ids = [i for p in parts for i in p.image_ids]
        all_parts = list(parts)
    else:
        results, image_ids = part.results, part.image_ids
    if gt is None:
        gt = ground_truth_from_dataset(dataset)
    ids = list(dict.fromkeys(image_ids))
    before = None
    if calibrator is not None:
        before = evaluate_results(gt, results, backend=backend, img_ids=ids, calib_bins=calib_bins,
                                  calib_conf=calib_conf)  # fmt: skip
        results = calibrate_results(results, calibrator, _base_dataset(dataset).cat_ids)
    if save_json is not None:
        atomic_write_json(save_json, results)
    res = evaluate_results(gt, results, backend=backend, img_ids=ids, calib_bins=calib_bins, calib_conf=calib_conf)
    res.before = before
    if val_loss is not None:
        sums = [p.loss_sum.cpu() for p in all_parts if p.loss_sum is not None]
        batches = sum(p.loss_batches for p in all_parts)
        res.val_loss = (torch.stack(sums).sum(0) / max(batches, 1)).tolist() if sums else [0.0, 0.0, 0.0]
    n = max(len(ids), 1)
    res.speed = {k: 1000.0 * v / n for k, v in part.times.items()}  # rank 0's stages, ms per image of all ranks
    return res
