"""Images in, detections in original-image pixels out: the evaluation's exact pre- and post-processing.

Pre-processing is the non-augmented sample of ``data.base.DetectionDataset``: ``data.letterbox.letterbox``
to ``imgsz x imgsz`` (``auto=False``, ``scaleup=True``, grey 114 padding), BGR -> RGB, ``uint8 [3, H, W]``,
divided by 255 on the device. Post-processing is :func:`tools.inference.postprocess.postprocess` (NMS, then
``unletterbox_boxes``). So ``tools/detect.py`` and ``tools/eval.py`` give the same boxes for the same
images and thresholds (``multi_label=False`` is yolov5 detect's choice, ``True`` val's).

A post-hoc calibrator (``tools/calibrate.py``) is applied as in eval, after NMS: NMS keeps the boxes it would
keep at the lowest threshold, the scores are calibrated, and ``conf_thres`` then applies to the *calibrated*
score (what the user sees and thresholds). The calibrators are increasing maps, so a class's ranking and the
boxes NMS keeps are unchanged; only which of them pass the threshold moves with the calibrated scale.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from data.letterbox import letterbox
from tools.evaluation.config import EvalConfig

from .postprocess import calibrate_detections, forward_decoded, postprocess

__all__ = ["CALIBRATED_NMS_THRES", "keep_classes", "predict", "preprocess"]

# raw-score threshold of NMS when a calibrator decides the final threshold (eval's --conf-thres default)
CALIBRATED_NMS_THRES = 0.001


def preprocess(img0: np.ndarray, imgsz: int) -> tuple[torch.Tensor, dict[str, Any]]:
    """BGR ``uint8 [h0, w0, 3]`` -> (RGB ``uint8 Tensor[3, imgsz, imgsz]``, meta ``ratio``, ``pad``, ``orig_shape``)."""
    img, ratio, pad = letterbox(img0, imgsz, auto=False, scaleup=True)
    x = torch.from_numpy(np.ascontiguousarray(img[:, :, ::-1].transpose(2, 0, 1)))
    return x, {"ratio": ratio, "pad": pad, "orig_shape": (img0.shape[0], img0.shape[1])}


def keep_classes(pred: torch.Tensor, classes: Sequence[int] | None) -> torch.Tensor:
    """Zero the objectness of candidates whose best class is not in ``classes`` (None: keep all).

    yolov5's ``--classes`` rule for single-label NMS: a box takes its best class first and is dropped when
    that class is not asked for, before NMS (so a dropped box never suppresses a kept one).
    """
    if not classes:
        return pred
    best = pred[..., 5:].argmax(-1)
    wanted = torch.zeros(pred.shape[-1] - 5, dtype=torch.bool, device=pred.device)
    wanted[[c for c in classes if 0 <= c < wanted.numel()]] = True
    out = pred.clone()
    out[..., 4] = torch.where(wanted[best], out[..., 4], torch.zeros_like(out[..., 4]))
    return out


@torch.inference_mode()
def predict(
    model: Any,
    batch: torch.Tensor,
    metas: Sequence[dict[str, Any]],
    device: torch.device,
    config: EvalConfig,
    classes: Sequence[int] | None = None,
    agnostic: bool = False,
    calibrator: Any = None,
) -> list[torch.Tensor]:
    """Detections of a ``uint8 [bs, 3, H, W]`` batch: per image ``Tensor[k, 6]`` ``[x1, y1, x2, y2, conf, cls]``.

    Boxes are in original-image pixels (from ``metas``), on the CPU. ``config`` gives the NMS thresholds
    (``conf_thres``, ``iou_thres``), ``max_det`` and ``half`` (fp16 autocast on CUDA, as ``tools/eval.py
    --half``); its other fields are not read. Note ``EvalConfig``'s defaults are val's (conf 0.001, IoU 0.6,
    300 boxes); ``tools/detect.py`` passes its own (0.25, 0.45, 1000). ``agnostic``: NMS across classes (then
    single-label, as yolov5). ``calibrator``: a calibrator or its checkpoint state; ``conf`` is then the
    calibrated score and ``conf_thres`` applies to it (module docstring).
    """
    conf, iou, max_det = config.conf_thres, config.iou_thres, config.max_det
    x = batch.to(device).float() / 255.0
    pred = keep_classes(forward_decoded(model, x, config.half).float(), classes)
    if calibrator is None:
        return postprocess(pred, metas, conf, iou, max_det, multi_label=False, agnostic=agnostic)
    out = []
    nms_thres = min(conf, CALIBRATED_NMS_THRES)
    for det in postprocess(pred, metas, nms_thres, iou, max_det, multi_label=False, agnostic=agnostic):
        det = calibrate_detections(det, calibrator)
        det = det[det[:, 4] >= conf]
        out.append(det[det[:, 4].argsort(descending=True, stable=True)])
    return out
