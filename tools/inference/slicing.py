"""Sliced inference on large images: run the model on overlapping tiles, shift the boxes back, merge once.

The idea is sahi's (Akyon et al. 2022, "Slicing Aided Hyper Inference and Fine-tuning for Small Object
Detection"; ``sahi.predict.get_sliced_prediction``), reimplemented: tiles come from
:func:`data.tiling.tile_windows` (last row/column shifted back to the edge), each tile goes through the usual
letterbox pre-processing and the caller's detection function (batched), and the detections, shifted by their
tile's origin, are merged:

1. **Cut boxes.** A detection touching an inner tile edge (within ``edge_px`` of a side of its tile that is not
   the image border) may show only the part of an object inside its tile. It is dropped when a detection of
   the same class that touches no inner edge covers at least ``cover`` of its area (intersection over the cut
   box's area): a neighbouring tile saw the object whole. NMS alone does not remove it: half an object against
   the whole has IoU 0.5, under eval's NMS IoU 0.6. An object larger than the tile overlap is whole in no
   tile; its cut pieces are kept (choose an overlap at least the object size).
2. **Class-wise NMS** at ``iou_thres`` across all tiles (the same object seen whole by two overlapping tiles),
   then the ``max_det`` highest scores.

An image no larger than a tile is one tile, returned unmerged: the result equals plain (unsliced) inference.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torchvision.ops import batched_nms

from data.sources import read_image
from data.tiling import tile_windows
from detloss.checks import check_int

from .loop import InferenceOutput
from .predict import preprocess

__all__ = ["SliceConfig", "cut_by_inner_edge", "merge_detections", "shift_to_image", "sliced_detections"]

# per tile batch: (uint8 [n, 3, S, S], metas) -> per tile Tensor[k, 6] [x1, y1, x2, y2, conf, cls] in tile pixels
DetectFn = Callable[[torch.Tensor, list[dict[str, Any]]], list[torch.Tensor]]


@dataclass(frozen=True)
class SliceConfig:
    """Tile ``size`` and ``overlap`` (pixels of the original image) and the cut-box rule (module docstring)."""

    size: int
    overlap: int = 64
    edge_px: float = 2.0
    cover: float = 0.5

    def __post_init__(self) -> None:
        check_int(self.size, "slice size", lo=1)
        check_int(self.overlap, "slice overlap", lo=0)
        if self.overlap >= self.size:
            raise ValueError(f"slice overlap ({self.overlap}) must be smaller than the slice size ({self.size})")
        if not self.edge_px >= 0 or not 0.0 < self.cover <= 1.0:
            raise ValueError(f"SliceConfig needs edge_px >= 0 and cover in (0, 1], got {self.edge_px}, {self.cover}")


def shift_to_image(dets: Sequence[torch.Tensor], windows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Per tile detections ``[k, 6]`` in tile pixels -> ``(dets [m, 6] in image pixels, tile index [m])``."""
    if len(dets) != len(windows):
        raise ValueError(f"{len(dets)} detection tensors for {len(windows)} tiles")
    rows = [torch.zeros((0, 6))]
    tiles = [torch.zeros(0, dtype=torch.long)]
    for k, (det, (x0, y0, _, _)) in enumerate(zip(dets, windows.tolist())):
        det = det.detach().float().cpu().reshape(-1, 6)
        shift = torch.tensor([x0, y0, x0, y0, 0.0, 0.0])
        rows.append(det + shift)
        tiles.append(torch.full((len(det),), k, dtype=torch.long))
    return torch.cat(rows), torch.cat(tiles)


def cut_by_inner_edge(boxes: torch.Tensor, windows: torch.Tensor, shape: tuple[int, int],
                      edge_px: float = 2.0) -> torch.Tensor:  # fmt: skip
    """``bool [m]``: box ``[m, 4]`` (image pixels) within ``edge_px`` of a side of its tile ``windows [m, 4]``
    (``x0, y0, x1, y1``) that is not on the image border (``shape = (h, w)``)."""
    h, w = shape
    win = windows.to(boxes)
    inner = torch.stack([win[:, 0] > 0, win[:, 1] > 0, win[:, 2] < w, win[:, 3] < h], 1)
    near = torch.stack([boxes[:, 0] <= win[:, 0] + edge_px, boxes[:, 1] <= win[:, 1] + edge_px,
                        boxes[:, 2] >= win[:, 2] - edge_px, boxes[:, 3] >= win[:, 3] - edge_px], 1)  # fmt: skip
    return (inner & near).any(1)


def _covered(dets: torch.Tensor, cut: torch.Tensor, cover: float, agnostic: bool) -> torch.Tensor:
    """``bool [m]``: cut rows covered (intersection / own area >= ``cover``) by a same-class row that is not cut."""
    out = torch.zeros(len(dets), dtype=torch.bool)
    ci, wi = torch.nonzero(cut).flatten(), torch.nonzero(~cut).flatten()
    if not len(ci) or not len(wi):
        return out
    a, b = dets[ci, :4], dets[wi, :4]
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(2)
    area = ((a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])).clamp(min=1e-9)
    hit = inter / area[:, None] >= cover
    if not agnostic:
        hit &= dets[ci, 5][:, None] == dets[wi, 5][None, :]
    out[ci] = hit.any(1)
    return out


def merge_detections(dets: torch.Tensor, windows: torch.Tensor, shape: tuple[int, int], iou_thres: float,
                     max_det: int, cfg: SliceConfig, agnostic: bool = False) -> torch.Tensor:  # fmt: skip
    """Merge shifted detections ``[m, 6]`` (each with its tile ``windows [m, 4]``) of one image of ``shape``:
    cut boxes covered by a whole one dropped, then class-wise (``agnostic``: all-class) NMS, then ``max_det``.
    Returns ``[k, 6]`` ``[x1, y1, x2, y2, conf, cls]`` by descending ``conf``."""
    cut = cut_by_inner_edge(dets[:, :4], windows, shape, cfg.edge_px)
    dets = dets[~_covered(dets, cut, cfg.cover, agnostic)]
    group = torch.zeros(len(dets), dtype=torch.long) if agnostic else dets[:, 5].long()
    keep = batched_nms(dets[:, :4].double(), dets[:, 4].double(), group, iou_thres)
    return dets[keep[:max_det]]


def sliced_detections(img0: np.ndarray, detect: DetectFn, imgsz: int, cfg: SliceConfig, iou_thres: float,
                      max_det: int, batch_size: int = 8, agnostic: bool = False) -> torch.Tensor:  # fmt: skip
    """Detections ``[k, 6]`` (image pixels) of a BGR ``uint8 [h, w, 3]`` image by sliced inference.

    Each tile is pre-processed as the evaluation does (:func:`tools.inference.predict.preprocess`: letterbox to
    ``imgsz``) and ``detect`` runs on batches of up to ``batch_size`` tiles; see the module docstring for the merge.
    """
    h, w = img0.shape[:2]
    windows = tile_windows(h, w, cfg.size, cfg.overlap)
    parts: list[torch.Tensor] = []
    for start in range(0, len(windows), check_int(batch_size, "batch_size", lo=1)):
        samples = [preprocess(img0[y0:y1, x0:x1], imgsz) for x0, y0, x1, y1 in windows[start : start + batch_size]]
        got = detect(torch.stack([x for x, _ in samples]), [m for _, m in samples])
        parts.extend(got)
    if len(windows) == 1:  # the whole image: nothing to merge, exactly plain inference
        return parts[0].detach().float().cpu().reshape(-1, 6)
    dets, tile = shift_to_image(parts, windows)
    return merge_detections(dets, torch.from_numpy(windows)[tile], (h, w), iou_thres, max_det, cfg, agnostic)


def infer_sliced(dataset: Any, detect: DetectFn, imgsz: int, cfg: SliceConfig, config: Any,
                 cat_ids: Sequence[int]) -> InferenceOutput:  # fmt: skip
    """Sliced inference on every (original, full-size) image of a ``data`` dataset -> COCO results.

    ``config``: an :class:`tools.evaluation.config.EvalConfig` (``iou_thres``, ``max_det``, ``batch_size`` read).
    Its time goes to ``times["inference"]``.
    """
    from tools.evaluation.cocojson import detections_to_coco

    out = InferenceOutput()
    t0 = time.perf_counter()
    for path, image_id in zip(dataset.im_files, dataset.image_ids):
        img0, why = read_image(path)
        if img0 is None:
            raise ValueError(f"{path}: {why}")
        det = sliced_detections(img0, detect, imgsz, cfg, config.iou_thres, config.max_det, config.batch_size)
        out.image_ids.append(image_id)
        out.results += detections_to_coco(det[:, :4], det[:, 4], det[:, 5], image_id, cat_ids)
    out.times["inference"] = time.perf_counter() - t0
    return out


def evaluate_sliced(model: Any, dataset: Any, config: Any, cfg: SliceConfig, imgsz: int, gt: Any = None,
                    device: torch.device | str = "", save_json: Any = None) -> Any:  # fmt: skip
    """Sliced inference of ``model`` on ``dataset``'s full images, COCO-evaluated on those images.

    Like :func:`tools.inference.evaluate.evaluate_model` (``config``: an ``EvalConfig``; ``gt``: the split's
    COCO JSON or dict, ``None``: from the dataset's labels; ``save_json``: also write the results) but one
    process, no calibrator, no validation loss. Tiles go through NMS with ``multi_label=True`` as in eval.
    Returns the ``EvalResult`` (``.speed``: ms per image, all in ``inference``).
    """
    from tools.evaluation.cocojson import atomic_write_json
    from tools.evaluation.evaluate import evaluate_results

    from .datasets import base_dataset, ground_truth_from_dataset
    from .device import select_device
    from .postprocess import forward_decoded, postprocess

    ds, dev = base_dataset(dataset), select_device(device)
    amp = bool(config.half) and dev.type == "cuda"

    def detect(batch: torch.Tensor, metas: list[dict[str, Any]]) -> list[torch.Tensor]:
        pred = forward_decoded(model, batch.to(dev).float() / 255.0, amp)
        return postprocess(pred, metas, config.conf_thres, config.iou_thres, config.max_det, multi_label=True)

    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            out = infer_sliced(ds, detect, imgsz, cfg, config, ds.cat_ids)
    finally:
        model.train(was_training)
    gt = ground_truth_from_dataset(ds) if gt is None else gt
    _note_crowded(ds, config.coco_max_dets)
    if save_json is not None:
        atomic_write_json(save_json, out.results)
    res = evaluate_results(gt, out.results, config, img_ids=out.image_ids)
    res.speed = {k: 1000.0 * v / max(len(out.image_ids), 1) for k, v in out.times.items()}
    return res


def _note_crowded(ds: Any, max_dets: int) -> None:
    """Say so when an image has more objects than COCO's AP ranks detections (full images of dense scenes)."""
    counts = [int((lab[:, 0] >= 0).sum()) for lab in ds.labels]
    crowded = [n for n in counts if n > max_dets]
    if crowded:
        print(
            f"note: {len(crowded)} image(s) have more than {max_dets} objects (most: {max(crowded)}); COCO AP ranks "
            f"{max_dets} detections an image, so their recall is capped (raise --coco-max-dets above {max(crowded)})"
        )
