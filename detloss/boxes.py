"""Box formats and pairwise IoU.

Formats: ``"xyxy"`` (corners) and ``"cxcywh"`` (centre and size, yolov5's ``xywh``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .checks import check_choice

BOX_FORMATS = ("xyxy", "cxcywh")


def _check_boxes(boxes: Tensor, name: str) -> None:
    if not isinstance(boxes, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(boxes).__name__}")
    if boxes.shape[-1:] != (4,):
        raise ValueError(f"{name} must have shape [..., 4], got {tuple(boxes.shape)}")


def box_convert(boxes: Tensor, in_fmt: str, out_fmt: str) -> Tensor:
    """Convert ``Tensor[..., 4]`` boxes between ``"xyxy"`` and ``"cxcywh"``."""
    check_choice(in_fmt, "box format", BOX_FORMATS)
    check_choice(out_fmt, "box format", BOX_FORMATS)
    _check_boxes(boxes, "boxes")
    if in_fmt == out_fmt:
        return boxes.clone()
    a, b = boxes[..., :2], boxes[..., 2:]
    if in_fmt == "xyxy":
        return torch.cat(((a + b) / 2, b - a), -1)
    return torch.cat((a - b / 2, a + b / 2), -1)


def to_xyxy(boxes: Tensor, fmt: str) -> Tensor:
    """Boxes in ``fmt`` as corners (no copy when already ``xyxy``)."""
    check_choice(fmt, "box format", BOX_FORMATS)
    return boxes if fmt == "xyxy" else box_convert(boxes, fmt, "xyxy")


def box_area(boxes: Tensor, fmt: str = "xyxy") -> Tensor:
    """Areas ``Tensor[...]`` of boxes ``Tensor[..., 4]`` in format ``fmt``; inverted boxes have area 0."""
    b = to_xyxy(boxes, fmt)
    return (b[..., 2] - b[..., 0]).clamp(min=0) * (b[..., 3] - b[..., 1]).clamp(min=0)


def box_iou(boxes1: Tensor, boxes2: Tensor, fmt: str = "xyxy", eps: float = 1e-7) -> Tensor:
    """Pairwise IoU ``Tensor[N, M]`` of ``Tensor[N, 4]`` and ``Tensor[M, 4]`` (computed in fp32 or fp64)."""
    _check_boxes(boxes1, "boxes1")
    _check_boxes(boxes2, "boxes2")
    if boxes1.dim() != 2 or boxes2.dim() != 2:
        raise ValueError(f"box_iou takes 2-D inputs, got {tuple(boxes1.shape)} and {tuple(boxes2.shape)}")
    dtype = torch.promote_types(torch.promote_types(boxes1.dtype, boxes2.dtype), torch.float32)
    b1 = to_xyxy(boxes1.to(dtype), fmt)
    b2 = to_xyxy(boxes2.to(dtype), fmt)
    lt = torch.maximum(b1[:, None, :2], b2[None, :, :2])
    rb = torch.minimum(b1[:, None, 2:], b2[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    union = box_area(b1)[:, None] + box_area(b2)[None, :] - inter
    return inter / (union + eps)


def wh_iou(wh1: Tensor, wh2: Tensor, eps: float = 1e-7) -> Tensor:
    """Pairwise IoU ``Tensor[N, M]`` of centre-aligned sizes ``Tensor[N, 2]`` and ``Tensor[M, 2]``."""
    inter = torch.minimum(wh1[:, None], wh2[None]).prod(-1)
    return inter / (wh1.prod(-1)[:, None] + wh2.prod(-1)[None] - inter + eps)
