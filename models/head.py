"""Detect: the per-level 1x1 detection convolutions and the box decode of eval mode.

Training mode returns raw logits per level, ``Tensor[bs, na, ny, nx, 5 + nc]`` with channels
``[tx, ty, tw, th, obj, cls_0 .. cls_{nc-1}]`` (the layout :class:`detloss.YoloLoss` reads).

Eval mode returns ``Tensor[bs, N, 5 + nc]``, ``N = sum(na * ny * nx)`` in level, anchor, row, column
order: ``[x1, y1, x2, y2]`` in input-image pixels, then ``sigmoid(obj)`` and ``sigmoid(cls)``. The box
decode is :func:`detloss.decode.decode_xy` / :func:`detloss.decode.decode_wh`, the functions the loss
calls, with the same style and ``scale_x_y``; only the cell grid is cached here (per level and shape).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import cast

import torch
from torch import Tensor, nn

from detloss.decode import decode_wh, decode_xy

# yolov5 models/yolo.py Detect._initialize_biases: prior of 8 objects per 640x640 image, 0.6 class prior
OBJ_PRIOR_PER_640 = 8.0
CLS_PRIOR = 0.6
_GRID_CACHE_MAX = 32


def obj_bias(stride: float) -> float:
    """Objectness bias ``log(8 / (640 / s) ** 2)``: about 8 objects expected in a 640x640 image."""
    return math.log(OBJ_PRIOR_PER_640 / (640.0 / stride) ** 2)


def cls_bias(nc: int) -> float:
    """Class bias ``log(0.6 / (nc - 0.99999))`` (yolov5)."""
    return math.log(CLS_PRIOR / (nc - 0.99999))


class Detect(nn.Module):
    """Detection head over ``nl`` feature levels.

    Args:
        channels: input channels of each level's feature map.
        nc: number of classes (>= 1).
        anchors_px: ``Tensor[nl, na, 2]`` anchor ``(w, h)`` in input pixels.
        strides: stride in pixels of each level.
        decode: ``"yolov5"`` or ``"darknet"`` (see :mod:`detloss.decode`).
        scale_x_y: darknet xy scale (>= 1; only the darknet style reads it).
    """

    anchors_px: Tensor

    def __init__(
        self,
        channels: Sequence[int],
        nc: int,
        anchors_px: Tensor,
        strides: Sequence[float],
        decode: str = "yolov5",
        scale_x_y: float = 1.0,
    ) -> None:
        super().__init__()
        nl, na = anchors_px.shape[:2]
        if len(channels) != nl or len(strides) != nl:
            raise ValueError(f"Detect: {len(channels)} feature levels, {len(strides)} strides, {nl} anchor levels")
        self.nc, self.nl, self.na, self.no = nc, nl, na, 5 + nc
        self.strides = [float(s) for s in strides]
        self.decode, self.scale_x_y = decode, float(scale_x_y)
        self.register_buffer("anchors_px", anchors_px.detach().clone().float())
        self.m = nn.ModuleList(nn.Conv2d(c, na * self.no, 1) for c in channels)
        self._grids: dict[tuple[int, int, int, torch.device], Tensor] = {}
        self.reset_biases()

    @torch.no_grad()
    def reset_biases(self) -> None:
        """yolov5 bias init: xywh biases 0, objectness ``log(8/(640/s)^2)``, classes ``log(0.6/(nc-0.99999))``.

        yolov5 adds these to PyTorch's small random bias init; here they are set exactly.
        """
        for conv, s in zip(self.m, self.strides):
            b = cast(Tensor, conv.bias).view(self.na, self.no)
            b[:, :4] = 0.0
            b[:, 4] = obj_bias(s)
            b[:, 5:] = cls_bias(self.nc)

    def _grid(self, i: int, ny: int, nx: int, device: torch.device) -> Tensor:
        """Cell corners ``Tensor[1, 1, ny, nx, 2]`` as ``(x, y)``, fp32, cached per level/shape/device."""
        key = (i, ny, nx, device)
        g = self._grids.get(key)
        if g is None:
            if len(self._grids) >= _GRID_CACHE_MAX:
                self._grids.clear()
            yv, xv = torch.meshgrid(
                torch.arange(ny, device=device, dtype=torch.float32),
                torch.arange(nx, device=device, dtype=torch.float32),
                indexing="ij",
            )
            g = torch.stack((xv, yv), -1).view(1, 1, ny, nx, 2)
            self._grids[key] = g
        return g

    def decode_level(self, i: int, p: Tensor) -> Tensor:
        """Level ``i`` logits ``Tensor[bs, na, ny, nx, 5 + nc]`` -> ``Tensor[bs, na*ny*nx, 5 + nc]`` (fp32).

        Columns ``[x1, y1, x2, y2]`` (input pixels), ``sigmoid(obj)``, ``sigmoid(cls...)``.
        """
        bs, na, ny, nx, _ = p.shape
        p = p.float()
        grid = self._grid(i, ny, nx, p.device)
        xy = (decode_xy(p[..., :2], self.decode, self.scale_x_y) + grid) * self.strides[i]
        wh = decode_wh(p[..., 2:4], self.anchors_px[i].view(1, na, 1, 1, 2), self.decode)
        half = wh * 0.5
        out = torch.cat((xy - half, xy + half, p[..., 4:].sigmoid()), -1)
        return out.view(bs, na * ny * nx, self.no)

    def forward(
        self, feats: Sequence[Tensor], raw: bool = False
    ) -> list[Tensor] | Tensor | tuple[Tensor, list[Tensor]]:
        """``feats``: per level ``Tensor[bs, C_i, ny_i, nx_i]``. Training: list of logits; eval: decoded boxes,
        or ``(decoded, logits)`` with ``raw=True`` (one pass feeds both NMS and a validation loss)."""
        logits = []
        for conv, f in zip(self.m, feats):
            y = conv(f)
            bs, _, ny, nx = y.shape
            # a permuted view, no copy: detloss's fused loss reads it in place and writes its gradient in the
            # conv's own layout, so neither forward nor backward pays a permute copy (detloss.fused.head_view)
            logits.append(y.view(bs, self.na, self.no, ny, nx).permute(0, 1, 3, 4, 2))
        if self.training:
            return logits
        decoded = torch.cat([self.decode_level(i, p) for i, p in enumerate(logits)], 1)
        return (decoded, logits) if raw else decoded

    def extra_repr(self) -> str:
        return f"nc={self.nc}, na={self.na}, strides={self.strides}, decode={self.decode!r}, scale_x_y={self.scale_x_y}"
