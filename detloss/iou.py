"""Aligned IoU family: IoU, GIoU, DIoU, CIoU, with the geometry written once.

``aligned_iou(b1, b2, kind)`` compares ``b1[i]`` with ``b2[i]`` (both ``Tensor[..., 4]``), returns
``Tensor[...]``. Formulas and epsilon placement follow yolov5 v7.0 ``utils/metrics.bbox_iou`` so
that the loss matches it to float rounding:

* IoU = inter / (union + eps)
* GIoU (Rezatofighi et al. 2019, arXiv 1902.09630): IoU - (C - union) / C, C = enclosing area + eps
* DIoU (Zheng et al. 2020, arXiv 1911.08287): IoU - rho^2 / (c^2 + eps), rho the centre distance,
  c the enclosing diagonal
* CIoU (same paper): DIoU - alpha * v, v = 4/pi^2 (atan(w2/h2) - atan(w1/h1))^2,
  alpha = v / (v - IoU + 1 + eps) taken without gradient. Unlike yolov5, the aspect ratios are w / (h + eps),
  so a collapsed predicted box (w = h = 0, from logits of -1e4) gives a finite loss.

Inputs of lower precision (fp16/bf16, autocast) are computed in fp32.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .boxes import BOX_FORMATS, _check_boxes
from .checks import check_choice

IOU_KINDS = ("iou", "giou", "diou", "ciou")


def _sides(b: Tensor, fmt: str) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """x1, y1, x2, y2, w, h of boxes in ``fmt``."""
    if fmt == "cxcywh":
        x, y, w, h = b.unbind(-1)
        return x - w / 2, y - h / 2, x + w / 2, y + h / 2, w, h
    x1, y1, x2, y2 = b.unbind(-1)
    return x1, y1, x2, y2, x2 - x1, y2 - y1


def aligned_iou(boxes1: Tensor, boxes2: Tensor, kind: str = "iou", fmt: str = "cxcywh", eps: float = 1e-7) -> Tensor:
    """Element-wise IoU-family value of two aligned box sets ``Tensor[..., 4]``."""
    check_choice(kind, "IoU kind", IOU_KINDS)
    check_choice(fmt, "box format", BOX_FORMATS)
    _check_boxes(boxes1, "boxes1")
    _check_boxes(boxes2, "boxes2")
    dtype = torch.promote_types(torch.promote_types(boxes1.dtype, boxes2.dtype), torch.float32)
    with torch.autocast(device_type=boxes1.device.type, enabled=False):
        return iou_terms(_sides(boxes1.to(dtype), fmt), _sides(boxes2.to(dtype), fmt), kind, eps)["value"]


Sides = tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]  # x1, y1, x2, y2, w, h


def iou_terms(a: Sides, b: Sides, kind: str, eps: float) -> dict[str, Tensor]:
    """The value of ``kind`` (``"value"``) for sides ``a`` (prediction) and ``b`` (target), with the intermediate terms
    that its closed-form gradient (:mod:`detloss.box_grad`) reuses: ``iw``, ``ih`` (intersection sides before the
    clamp), ``inter``, ``union``, ``iou``; ``cw``, ``ch`` (enclosing box); GIoU ``c_area``; DIoU/CIoU ``c2``, ``rho2``;
    CIoU ``v``, ``alpha``, ``delta`` (the difference of the aspect-ratio angles)."""
    a_x1, a_y1, a_x2, a_y2, w1, h1 = a
    b_x1, b_y1, b_x2, b_y2, w2, h2 = b
    iw = torch.minimum(a_x2, b_x2) - torch.maximum(a_x1, b_x1)
    ih = torch.minimum(a_y2, b_y2) - torch.maximum(a_y1, b_y1)
    inter = iw.clamp(min=0) * ih.clamp(min=0)
    union = w1 * h1 + w2 * h2 - inter + eps
    iou = inter / union
    out = {"iw": iw, "ih": ih, "inter": inter, "union": union, "iou": iou, "value": iou}
    if kind == "iou":
        return out
    cw = torch.maximum(a_x2, b_x2) - torch.minimum(a_x1, b_x1)  # enclosing box
    ch = torch.maximum(a_y2, b_y2) - torch.minimum(a_y1, b_y1)
    out.update(cw=cw, ch=ch)
    if kind == "giou":
        c_area = cw * ch + eps
        out.update(c_area=c_area, value=iou - (c_area - union) / c_area)
        return out
    c2 = cw**2 + ch**2 + eps
    rho2 = ((b_x1 + b_x2 - a_x1 - a_x2) ** 2 + (b_y1 + b_y2 - a_y1 - a_y2) ** 2) / 4
    out.update(c2=c2, rho2=rho2, value=iou - rho2 / c2)
    if kind == "diou":
        return out
    # eps under the aspect ratios keeps a collapsed (0 x 0) predicted box finite; yolov5 divides by h alone
    delta = torch.atan(w2 / (h2 + eps)) - torch.atan(w1 / (h1 + eps))
    v = (4 / math.pi**2) * delta**2
    with torch.no_grad():
        alpha = v / (v - iou + (1 + eps))
    out.update(delta=delta, v=v, alpha=alpha, value=iou - (rho2 / c2 + v * alpha))
    return out


def iou_loss(
    boxes1: Tensor, boxes2: Tensor, kind: str = "ciou", fmt: str = "cxcywh", reduction: str = "mean"
) -> Tensor:
    """``1 - aligned_iou`` reduced by ``"mean"``, ``"sum"`` or ``"none"``; an empty input gives 0 with a graph."""
    check_choice(reduction, "reduction", ("mean", "sum", "none"))
    loss = 1.0 - aligned_iou(boxes1, boxes2, kind, fmt)
    if reduction == "none":
        return loss
    if loss.numel() == 0:
        return loss.sum() * 0.0
    return loss.mean() if reduction == "mean" else loss.sum()
