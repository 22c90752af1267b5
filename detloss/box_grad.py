"""The box loss and its gradient by the box logits in closed form (the fused kernel's box term).

Autograd over the decode and the IoU family (:func:`detloss.level.box_terms`) runs ~100 small ops forward and as many
backward on the ``[P]`` columns of the positives; written out, the gradient reuses the forward's terms
(:func:`detloss.iou.iou_terms`), and every op runs on a contiguous column (the ``[P, 4]`` boxes made column-major):
1.6x faster than autograd here. Values are the same expressions as :func:`detloss.level.box_terms` (equal to the
last bit: vectorised and scalar ``atan``/``exp`` differ there); gradients match autograd's to rounding, with its rules
at ties: ``minimum``/``maximum`` split the gradient in half where both sides are equal, ``clamp`` passes none at
its bound (tests against autograd in float64).

Chain rule, prediction ``(x, y, w, h)`` with corners ``x1 = x - w/2``, ``x2 = x + w/2``:
``dV/dx = dV/dx1 + dV/dx2``, ``dV/dw = (dV/dx2 - dV/dx1) / 2 + dV/dw (direct: union, aspect ratio)``; for the IoU
``V = inter / union``: ``dV = (d inter - V d union) / union`` with ``union = w h + w2 h2 - inter + eps``; GIoU
``V = IoU - 1 + union / C``; DIoU ``V = IoU - rho2 / c2``; CIoU ``- alpha v`` with ``alpha`` held constant (Zheng et
al. 2020, arXiv 1911.08287, as yolov5 ``bbox_iou``). Decode: yolov5 ``xy = 2 s - 0.5`` (``2 s (1 - s)``), ``wh = (2
s)^2 a`` (``2 wh (1 - s)``); darknet ``xy = s k - (k - 1) / 2`` (``k s (1 - s)``), ``wh = exp(min(t, M)) a``
(``wh``, 0 from ``M`` on).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from .assign import LevelTargets
from .decode import WH_LOGIT_MAX, decode_wh, decode_xy
from .iou import _sides, aligned_iou, iou_terms

if TYPE_CHECKING:
    from .config import LossConfig

MSE_WH_MIN = 1e-9  # darknet MSE: the predicted size's floor under the log


def _below(a: Tensor, b: Tensor) -> Tensor:
    """``d min(a, b) / da`` as autograd takes it: 1 where ``a < b``, 1/2 where equal, 0 above (``(1 + sign(b - a)) /
    2``: float ops only, no bool tensors to convert)."""
    return (b - a).sign_().add_(1.0).mul_(0.5)


def iou_value_grad(pred: Tensor, target: Tensor, kind: str, eps: float = 1e-7) -> tuple[Tensor, Tensor, Tensor]:
    """``(value, IoU, d value / d pred Tensor[P, 4])`` of :func:`detloss.iou.aligned_iou` (``cxcywh``, one dtype)."""
    a, b = _sides(pred, "cxcywh"), _sides(target, "cxcywh")
    t = iou_terms(a, b, kind, eps)
    (ax1, ay1, ax2, ay2, w1, h1), (bx1, by1, bx2, by2, _, _) = a, b
    iou, union = t["iou"], t["union"]
    iwc, ihc = t["iw"].clamp(min=0), t["ih"].clamp(min=0)
    on_w, on_h = iwc.sign(), ihc.sign()  # 1 where the side is > 0: clamp passes the gradient there only
    # d inter by each corner (x1, x2, y1, y2) and d value / d inter, d value / d (w1 h1)
    d_inter = (-ihc * on_w * _below(bx1, ax1), ihc * on_w * _below(ax2, bx2),
               -iwc * on_h * _below(by1, ay1), iwc * on_h * _below(ay2, by2))  # fmt: skip
    g_inter, g_area = (1.0 + iou) / union, -iou / union
    if kind == "giou":  # V = IoU - 1 + union / C: union by inter and area (here), C by the enclosing sides (below)
        g_inter, g_area = g_inter - 1.0 / t["c_area"], g_area + 1.0 / t["c_area"]
    g_corner = [g_inter * d for d in d_inter]
    if kind != "iou":
        cw, ch = t["cw"], t["ch"]
        d_cw = (-_below(ax1, bx1), _below(bx2, ax2))  # enclosing width by x1, x2 (and height by y1, y2)
        d_ch = (-_below(ay1, by1), _below(by2, ay2))
        if kind == "giou":
            g_c = -union / t["c_area"] ** 2
            g_corner = [g_corner[0] + g_c * ch * d_cw[0], g_corner[1] + g_c * ch * d_cw[1],
                        g_corner[2] + g_c * cw * d_ch[0], g_corner[3] + g_c * cw * d_ch[1]]  # fmt: skip
        else:  # - rho2 / c2
            c2, rho2 = t["c2"], t["rho2"]
            g_rho, g_c2 = -1.0 / c2, rho2 / c2**2
            dx, dy = (bx1 + bx2 - ax1 - ax2) * -0.5, (by1 + by2 - ay1 - ay2) * -0.5  # d rho2 by each x (y) corner
            g_corner = [g_corner[0] + g_rho * dx + g_c2 * 2 * cw * d_cw[0],
                        g_corner[1] + g_rho * dx + g_c2 * 2 * cw * d_cw[1],
                        g_corner[2] + g_rho * dy + g_c2 * 2 * ch * d_ch[0],
                        g_corner[3] + g_rho * dy + g_c2 * 2 * ch * d_ch[1]]  # fmt: skip
    g_w, g_h = g_area * h1, g_area * w1
    if kind == "ciou":  # - alpha v, v = 4/pi^2 delta^2, delta = atan(w2 / (h2 + eps)) - atan(w1 / (h1 + eps))
        hp = h1 + eps
        r = w1 / hp
        g_delta = -t["alpha"] * (8 / math.pi**2) * t["delta"] * (-1.0 / (1.0 + r * r))  # d(-alpha v) / d atan(r)
        g_w, g_h = g_w + g_delta / hp, g_h - g_delta * r / hp
    gx, gy = g_corner[0] + g_corner[1], g_corner[2] + g_corner[3]
    gw, gh = (g_corner[1] - g_corner[0]) * 0.5 + g_w, (g_corner[3] - g_corner[2]) * 0.5 + g_h
    return t["value"], iou, torch.stack((gx, gy, gw, gh), 1)


def decode_grad(box: Tensor, anchors: Tensor, style: str, scale: float) -> tuple[Tensor, Tensor]:
    """``(pbox Tensor[P, 4], d pbox / d box Tensor[P, 4])``: the decode of :func:`detloss.level.box_terms`, element-wise
    with its derivative."""
    pxy, pwh = decode_xy(box[:, :2], style, scale), decode_wh(box[:, 2:4], anchors, style)
    s_xy = box[:, :2].sigmoid()
    if style == "yolov5":
        d_xy, d_wh = 2.0 * s_xy * (1.0 - s_xy), 2.0 * pwh * (1.0 - box[:, 2:4].sigmoid())
    else:
        d_xy, d_wh = scale * s_xy * (1.0 - s_xy), torch.where(box[:, 2:4] < WH_LOGIT_MAX, pwh, 0.0)
    # [P, 4] column-major, like a column-major ``box`` (each component a contiguous row for the ops that follow)
    return torch.cat((pxy.T, pwh.T)).T, torch.cat((d_xy.T, d_wh.T)).T


def _mse_parts(pbox: Tensor, tbox: Tensor, grid_area: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    scale = 2.0 - tbox[:, 2] * tbox[:, 3] / grid_area
    wh = pbox[:, 2:].clamp(min=MSE_WH_MIN)
    return scale, pbox[:, :2] - tbox[:, :2], wh, wh.log() - tbox[:, 2:].log()


def mse_rows(pbox: Tensor, tbox: Tensor, grid_area: int) -> Tensor:
    """darknet MSE box loss per row: squared error of xy and of log-wh, weighted by ``2 - w*h`` (normalised area)."""
    scale, d_xy, _, log_wh = _mse_parts(pbox, tbox, grid_area)
    return scale * (d_xy.pow(2).sum(1) + log_wh.pow(2).sum(1))


def _mse_value_grad(pbox: Tensor, tbox: Tensor, grid_area: int) -> tuple[Tensor, Tensor]:
    """:func:`mse_rows` and its gradient by ``pbox``."""
    scale, d_xy, wh, log_wh = _mse_parts(pbox, tbox, grid_area)
    value = scale * (d_xy.pow(2).sum(1) + log_wh.pow(2).sum(1))
    g_wh = torch.where(pbox[:, 2:] > MSE_WH_MIN, 2.0 * log_wh / wh, 0.0)
    return value, scale[:, None] * torch.cat((2.0 * d_xy, g_wh), 1)


def box_loss_grad(
    box: Tensor, lt: LevelTargets, cfg: LossConfig, scale: float, grid_area: int
) -> tuple[Tensor, Tensor, Tensor]:
    """``(box loss, IoU Tensor[P], d loss / d box Tensor[P, 4])`` of box logits ``box`` (detached): the values of
    :func:`detloss.level.box_terms` (the IoU of ``cfg.box_kind``, plain with ``"mse"``), the gradient in closed form
    (module docstring)."""
    col = box.T.contiguous().T  # [P, 4] column-major: every column a contiguous row, so every op below is vectorised
    pbox, d_decode = decode_grad(col, lt.anchors.to(box.dtype).T.contiguous().T, cfg.decode, scale)
    tbox = lt.tbox.to(box.dtype).T.contiguous().T
    if cfg.box_kind == "mse":
        per_row, g = _mse_value_grad(pbox, tbox, grid_area)
        iou = aligned_iou(pbox, tbox, "iou")
    else:  # the IoU of the kind sets the objectness targets (as box_terms, yolov5)
        iou, _, g = iou_value_grad(pbox, tbox, cfg.box_kind)
        per_row, g = 1.0 - iou, -g
    g = g * (d_decode / lt.divisor)
    return lt.mean(per_row), iou, g if lt.valid is None else g * lt.valid[:, None]
