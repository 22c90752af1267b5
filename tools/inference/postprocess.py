"""A model's decoded output -> detections in original-image pixels: the one path of eval, validation and detect.

``forward_decoded`` runs the model (fp16 autocast on CUDA when asked); ``postprocess`` is yolov5 ``val.py``'s
``non_max_suppression`` followed by ``data.letterbox.unletterbox_boxes`` back to each original image;
``calibrate_detections`` applies a post-hoc calibrator (``tools.evaluation.calibrators``) to the scores NMS
kept. The calibrators are increasing maps, so calibrating after NMS keeps a class's ranking and the boxes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from data.letterbox import unletterbox_boxes
from models.postprocess import non_max_suppression
from tools.evaluation.calibrators import Calibrator, apply_calibrator

__all__ = ["calibrate_detections", "forward_decoded", "meta_value", "postprocess"]


def meta_value(meta: Any, key: str) -> Any:
    """``meta[key]`` of a sample (a dict or an object); ``ValueError`` when it is None (an augmented sample)."""
    value = meta[key] if isinstance(meta, dict) else getattr(meta, key)
    if value is None:
        raise ValueError(
            f"sample meta has {key}=None: an augmented sample cannot be mapped back to the original image; "
            "evaluate a dataset built with augment=False"
        )
    return value


def forward_decoded(model: Any, x: torch.Tensor, amp: bool = False) -> torch.Tensor:
    """The decoded eval-mode output ``Tensor[bs, N, 5 + nc]`` of ``model(x)`` (element 0 of a tuple output).

    ``amp``: fp16 autocast on CUDA (ignored elsewhere). ``model`` is a ``Detector`` in eval mode or anything
    called the same way (``tools.inference.onnx_runtime.OnnxDetector``).
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
    clipped to the image).
    """
    out = []
    dets = non_max_suppression(pred.float(), conf_thres, iou_thres, max_det, multi_label, agnostic)
    for det, meta in zip(dets, metas):
        det = det.float().cpu()
        if len(det):
            ratio, pad = meta_value(meta, "ratio"), meta_value(meta, "pad")
            det = torch.cat((unletterbox_boxes(det[:, :4], ratio, pad, meta_value(meta, "orig_shape")), det[:, 4:]), 1)
        out.append(det)
    return out


def calibrate_detections(det: torch.Tensor, calibrator: Calibrator | dict | None) -> torch.Tensor:
    """``det`` ``[k, 6]`` ``[x1, y1, x2, y2, conf, cls]`` with ``conf`` calibrated, in place (None: unchanged).

    ``calibrator``: a :class:`tools.evaluation.calibrators.Calibrator` or its checkpoint state.
    """
    if calibrator is not None and len(det):
        scores = det[:, 4].detach().cpu().double().numpy()
        new = apply_calibrator(calibrator, scores, det[:, 5].detach().cpu().numpy())
        det[:, 4] = torch.from_numpy(new).to(det)
    return det
