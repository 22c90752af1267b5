"""A slow, plain oracle of the yolov5-preset loss, written from the rules in ``docs/loss.md``.

It shares no code with ``detloss`` and is shaped nothing like it: target assignment is explicit Python loops
over images, target rows, anchors and candidate cells, in float32 arithmetic (``numpy.float32`` scalars, so
every boundary test rounds as the float32 loss does); the loss terms are then computed on one gather of the
chosen prediction rows, so gradients flow to the predictions. Use it for parity tests only (CPU).

    oracle = OracleLoss(hyp, anchors_px, strides, nc, autobalance=False, sort_obj_iou=False)
    total, items = oracle(preds, targets)  # total: Tensor[1]; items: detached Tensor[3] (box, obj, cls)

``hyp`` is a yolov5 hyp dict as its training script hands it to the loss (already scaled); the keys read are
box, obj, cls, cls_pw, obj_pw, anchor_t, fl_gamma and (optionally) label_smoothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

f32 = np.float32
HALF = f32(0.5)
GR = 1.0  # yolov5 fixes the IoU weight of the objectness target at 1
FOCAL_ALPHA = 0.25
# per-level objectness weights: this list for 3 levels, else the first nl of the longer list
BALANCE_3 = [4.0, 1.0, 0.4]
BALANCE_N = [4.0, 1.0, 0.25, 0.06, 0.02]
EPS = 1e-7


@dataclass
class Positive:
    """One (target, anchor, cell) triple the loss trains: where it is and what it must predict."""

    image: int
    anchor: int
    row: int  # cell y (clamped to the grid)
    col: int  # cell x (clamped to the grid)
    box: tuple[float, float, float, float]  # x, y offset from the (unclamped) cell corner; w, h; grid units
    anchor_wh: tuple[float, float]  # grid units
    cls: int


def shape_match(w: np.float32, h: np.float32, aw: np.float32, ah: np.float32, anchor_t: float) -> bool:
    """Ratio test: the target's width and height are each within a factor ``anchor_t`` of the anchor's."""
    worst = f32(1.0)
    for ratio in (w / aw, h / ah):
        worst = max(worst, ratio, f32(1.0) / ratio)
    return bool(worst < f32(anchor_t))


def candidate_cells(x: np.float32, y: np.float32, nx: int, ny: int) -> list[tuple[int, np.float32, np.float32]]:
    """Neighbour-cell rule: the cells a centre ``(x, y)`` (grid units) trains, as ``(kind, px, py)``.

    ``floor(px), floor(py)`` is the cell; kind 0 centre, 1 left, 2 up, 3 right, 4 down. Besides the centre
    cell: the left cell when the centre sits in the left half of its cell and more than one cell from the left
    edge; the upper cell likewise for y; the right cell when it sits in the right half and more than one cell
    from the right edge (measured as the fraction of ``nx - x``); the lower cell likewise. A neighbour's point
    is the centre moved half a cell towards it.
    """
    from_right, from_bottom = f32(nx) - x, f32(ny) - y
    cells = [(0, x, y)]
    if x - np.floor(x) < HALF and x > 1:
        cells.append((1, x - HALF, y))
    if y - np.floor(y) < HALF and y > 1:
        cells.append((2, x, y - HALF))
    if from_right - np.floor(from_right) < HALF and from_right > 1:
        cells.append((3, x + HALF, y))
    if from_bottom - np.floor(from_bottom) < HALF and from_bottom > 1:
        cells.append((4, x, y + HALF))
    return cells


def level_positives(targets: Tensor, bs: int, ny: int, nx: int, anchors: list, anchor_t: float) -> list[Positive]:
    """All positives of one level, in the order their objectness targets are written.

    Order: image by image; within an image, candidate kind (centre, left, up, right, down), then anchor, then
    target row. Objectness cells hit twice keep the later write (see ``objectness_targets``).
    """
    rows = targets.tolist()
    out: list[Positive] = []
    for image in range(bs):
        mine = [r for r in rows if int(r[0]) == image]
        # (anchor, row) pairs that pass the ratio test, each with its candidate points
        per_kind: dict[int, list[Positive]] = {k: [] for k in range(5)}
        for a, (aw, ah) in enumerate(anchors):
            for r in mine:
                x, y = f32(r[2]) * f32(nx), f32(r[3]) * f32(ny)  # scale to grid units
                w, h = f32(r[4]) * f32(nx), f32(r[5]) * f32(ny)
                if not shape_match(w, h, aw, ah, anchor_t):
                    continue
                for kind, px, py in candidate_cells(x, y, nx, ny):
                    cx, cy = int(np.floor(px)), int(np.floor(py))
                    box = (float(x - f32(cx)), float(y - f32(cy)), float(w), float(h))
                    col, row = min(max(cx, 0), nx - 1), min(max(cy, 0), ny - 1)
                    per_kind[kind].append(Positive(image, a, row, col, box, (float(aw), float(ah)), int(r[1])))
        for kind in range(5):
            out.extend(per_kind[kind])
    return out


def ciou(pred: Tensor, target: Tensor) -> Tensor:
    """Complete IoU (Zheng et al. 2020, arXiv 1911.08287) of aligned ``[x, y, w, h]`` rows.

    IoU minus the squared centre distance over the squared enclosing diagonal minus ``alpha * v``, where ``v``
    measures the aspect-ratio mismatch and ``alpha = v / (1 - IoU + v)`` is treated as a constant.
    ``EPS`` is added to the union, to the squared diagonal and to alpha's denominator.
    """
    px, py, pw, ph = pred.unbind(1)
    tx, ty, tw, th = target.unbind(1)
    pl, pr, pt, pb = px - pw / 2, px + pw / 2, py - ph / 2, py + ph / 2  # left, right, top, bottom
    tl, tr, tt, tb = tx - tw / 2, tx + tw / 2, ty - th / 2, ty + th / 2
    inter = (torch.minimum(pr, tr) - torch.maximum(pl, tl)).clamp(min=0)
    inter = inter * (torch.minimum(pb, tb) - torch.maximum(pt, tt)).clamp(min=0)
    iou = inter / (pw * ph + tw * th - inter + EPS)
    diag2 = (torch.maximum(pr, tr) - torch.minimum(pl, tl)) ** 2 + (torch.maximum(pb, tb) - torch.minimum(pt, tt)) ** 2
    dist2 = (tx - px) ** 2 + (ty - py) ** 2
    v = 4 / math.pi**2 * (torch.atan(tw / th) - torch.atan(pw / ph)) ** 2
    alpha = (v / (1 + EPS - iou + v)).detach()
    return iou - dist2 / (diag2 + EPS) - alpha * v


def bce(logit: Tensor, target: Tensor, pos_weight: float, gamma: float) -> Tensor:
    """Mean binary cross-entropy with logits; positive part weighted by ``pos_weight``; focal when gamma > 0.

    Focal (Lin et al. 2017): each element times ``alpha_t * (1 - p_t) ** gamma`` with alpha = 0.25, where
    ``p_t`` is the probability given to the target and ``alpha_t`` blends alpha and 1 - alpha by the target.
    """
    per = pos_weight * target * torch.nn.functional.softplus(-logit)
    per = per + (1 - target) * torch.nn.functional.softplus(logit)
    if gamma > 0:
        prob = logit.sigmoid()
        p_t = target * prob + (1 - target) * (1 - prob)
        alpha_t = target * FOCAL_ALPHA + (1 - target) * (1 - FOCAL_ALPHA)
        per = per * alpha_t * (1 - p_t) ** gamma
    return per.mean()


def objectness_targets(shape: tuple, positives: list[Positive], iou: Tensor, sort_obj_iou: bool) -> Tensor:
    """The objectness target of every cell: 0, or at a positive ``(1 - GR) + GR * max(IoU, 0)`` (detached).

    Last write wins: where several positives share (image, anchor, cell), the last in ``positives`` order
    sets the value. With ``sort_obj_iou`` the positive with the highest IoU wins instead.
    """
    written: dict[tuple[int, int, int, int], float] = {}
    for k, pos in enumerate(positives):
        value = (1.0 - GR) + GR * max(float(iou[k]), 0.0)
        key = (pos.image, pos.anchor, pos.row, pos.col)
        if sort_obj_iou and key in written:
            value = max(value, written[key])
        written[key] = value
    tobj = torch.zeros(shape)
    for (b, a, j, i), value in written.items():
        tobj[b, a, j, i] = value
    return tobj


class OracleLoss:
    """The yolov5-preset loss from the rules; ``anchors_px`` in pixels per level, ``strides`` per level."""

    def __init__(self, hyp, anchors_px, strides, nc, autobalance=False, sort_obj_iou=False):
        self.hyp, self.nc, self.nl = hyp, nc, len(strides)
        self.eps = float(hyp.get("label_smoothing", 0.0))
        self.autobalance, self.sort_obj_iou = autobalance, sort_obj_iou
        # balance: per-level objectness weights (python floats, updated in place by autobalance)
        self.balance = list(BALANCE_3 if self.nl == 3 else BALANCE_N[: self.nl])
        self.norm_level = list(strides).index(16) if autobalance else 0
        self.anchors = []  # per level: [(w, h), ...] in grid units (float32)
        for level, stride in zip(anchors_px, strides):
            flat = [f32(v) for v in np.asarray(level, dtype=np.float32).reshape(-1)]
            self.anchors.append([(flat[k] / f32(stride), flat[k + 1] / f32(stride)) for k in range(0, len(flat), 2)])

    def __call__(self, preds: list[Tensor], targets: Tensor) -> tuple[Tensor, Tensor]:
        hyp, bs = self.hyp, preds[0].shape[0]
        # smoothing targets (YOLO convention): true class 1 - eps/2, every other class eps/2
        pos_t, neg_t = 1.0 - 0.5 * self.eps, 0.5 * self.eps
        lbox, lobj, lcls = torch.zeros(1), torch.zeros(1), torch.zeros(1)
        for i, p in enumerate(preds):
            _, _, ny, nx, _ = p.shape
            positives = level_positives(targets, bs, ny, nx, self.anchors[i], hyp["anchor_t"])
            iou = torch.zeros(0)
            if positives:
                picked = p[
                    [q.image for q in positives], [q.anchor for q in positives],
                    [q.row for q in positives], [q.col for q in positives],
                ]  # fmt: skip
                # decode: centre offset 2*sigmoid - 0.5 in (-0.5, 1.5); size (2*sigmoid)^2 times the anchor
                xy = picked[:, 0:2].sigmoid() * 2 - 0.5
                wh = (picked[:, 2:4].sigmoid() * 2) ** 2 * torch.tensor([q.anchor_wh for q in positives])
                iou = ciou(torch.cat((xy, wh), 1), torch.tensor([q.box for q in positives]))
                lbox = lbox + (1.0 - iou).mean()
                if self.nc > 1:  # a single class has no class term
                    tcls = torch.full((len(positives), self.nc), neg_t)
                    for k, q in enumerate(positives):
                        tcls[k, q.cls] = pos_t
                    lcls = lcls + bce(picked[:, 5:], tcls, hyp["cls_pw"], hyp["fl_gamma"])
            tobj = objectness_targets(tuple(p.shape[:4]), positives, iou.detach(), self.sort_obj_iou)
            level_obj = bce(p[..., 4], tobj, hyp["obj_pw"], hyp["fl_gamma"])  # mean over every cell
            lobj = lobj + level_obj * self.balance[i]
            if self.autobalance:  # running re-weighting: levels with a small objectness loss get more weight
                self.balance[i] = self.balance[i] * 0.9999 + 0.0001 / level_obj.item()
        if self.autobalance:  # normalised to the stride-16 level
            ref = self.balance[self.norm_level]
            self.balance = [b / ref for b in self.balance]
        lbox, lobj, lcls = lbox * hyp["box"], lobj * hyp["obj"], lcls * hyp["cls"]
        # the batch mean times the batch size, as yolov5 returns it
        return (lbox + lobj + lcls) * bs, torch.cat((lbox, lobj, lcls)).detach()
