"""Box decoding shared by the loss and the detection head.

Two styles, both in grid units relative to the cell's top-left corner:

* ``"yolov5"`` (ultralytics yolov5 ``Detect``/``ComputeLoss``): ``xy = 2*sigmoid(t) - 0.5``,
  ``wh = (2*sigmoid(t))**2 * anchor``. Bounded, so large logits stay finite.
* ``"darknet"`` (AlexeyAB darknet ``yolo_layer.c``): ``xy = sigmoid(t)*s - 0.5*(s - 1)`` with
  ``s = scale_x_y``, ``wh = exp(t) * anchor``. The exponent is clamped at ``WH_LOGIT_MAX`` so that
  a runaway logit gives a huge but finite box instead of ``inf``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

DECODE_STYLES = ("yolov5", "darknet")
WH_LOGIT_MAX = math.log(1e4)  # exp() input cap for the darknet wh decode


def decode_xy(t: Tensor, style: str = "yolov5", scale_x_y: float = 1.0) -> Tensor:
    """Centre offsets (grid units, relative to the cell corner) from raw logits ``t[..., 2]``."""
    if style == "yolov5":
        return t.sigmoid() * 2.0 - 0.5
    if style == "darknet":
        return t.sigmoid() * scale_x_y - 0.5 * (scale_x_y - 1.0)
    raise ValueError(f"unknown decode style {style!r}; expected one of {DECODE_STYLES}")


def decode_wh(t: Tensor, anchor: Tensor, style: str = "yolov5") -> Tensor:
    """Width/height in the anchor's units from raw logits ``t[..., 2]``."""
    if style == "yolov5":
        return (t.sigmoid() * 2.0) ** 2 * anchor
    if style == "darknet":
        return t.clamp(max=WH_LOGIT_MAX).exp() * anchor
    raise ValueError(f"unknown decode style {style!r}; expected one of {DECODE_STYLES}")


def decode_grid(p: Tensor, anchors_px: Tensor, stride: float, style: str = "yolov5", scale_x_y: float = 1.0) -> Tensor:
    """Decode a whole level into pixel boxes.

    Args:
        p: raw head output ``Tensor[bs, na, ny, nx, 5 + nc]``.
        anchors_px: ``Tensor[na, 2]`` anchor sizes in pixels.
        stride: the level's stride in pixels.

    Returns:
        ``Tensor[bs, na, ny, nx, 4]`` boxes as ``(cx, cy, w, h)`` in input-image pixels.
    """
    _, na, ny, nx, _ = p.shape
    yv, xv = torch.meshgrid(
        torch.arange(ny, device=p.device, dtype=torch.float32),
        torch.arange(nx, device=p.device, dtype=torch.float32),
        indexing="ij",
    )
    grid = torch.stack((xv, yv), -1).view(1, 1, ny, nx, 2)
    t = p[..., :4].float()
    xy = (decode_xy(t[..., :2], style, scale_x_y) + grid) * stride
    wh = decode_wh(t[..., 2:4], anchors_px.float().view(1, na, 1, 1, 2), style)
    return torch.cat((xy, wh), -1)
