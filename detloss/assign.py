"""Target assignment: which (image, anchor, cell) predicts which target. ``no_grad``, tensors in and out.

Both strategies take ``targets`` as ``Tensor[n, 6]`` ``[image, class, cx, cy, w, h]`` (normalised),
anchors per level in grid units ``Tensor[nl, na, 2]`` and each level's grid ``(ny, nx)``; both return
one :class:`LevelTargets` per level. Nothing loops over targets in Python.

* :func:`assign_yolov5` (ultralytics yolov5 v7.0 ``ComputeLoss.build_targets``): a (target, anchor)
  pair on a level is positive when ``max(r, 1/r) < anchor_t`` for ``r = wh_target / wh_anchor`` on
  both sides; each pair gives its centre cell plus the nearer horizontal and vertical neighbour
  (offset 0.5, not across the image border). Output order is that of yolov5 (offset-major, then
  anchor, then target), which decides the winner when positives share a cell.
* :func:`assign_darknet` (AlexeyAB darknet ``yolo_layer.c``): each target goes to its best anchor
  over all levels by centre-aligned shape IoU (in pixels), plus every anchor whose IoU exceeds
  ``iou_thresh``; centre cell only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from .boxes import wh_iou

# centre, left, up, right, down (yolov5's g = 0.5 neighbour offsets, subtracted from the centre)
_OFFSETS = ((0.0, 0.0), (1.0, 0.0), (0.0, 1.0), (-1.0, 0.0), (0.0, -1.0))


@dataclass(frozen=True)
class LevelTargets:
    """Positives of one level, ``P`` rows each.

    Attributes:
        b, a, gj, gi: ``LongTensor[P]`` image, anchor, row and column of each positive cell.
        tbox: ``Tensor[P, 4]`` target ``(x, y, w, h)`` in grid units, ``x, y`` relative to the cell corner.
        anchors: ``Tensor[P, 2]`` the matched anchor's size in grid units.
        tcls: ``LongTensor[P]`` class index.
        tidx: ``LongTensor[P]`` row of the target in the input ``targets``.
    """

    b: Tensor
    a: Tensor
    gj: Tensor
    gi: Tensor
    tbox: Tensor
    anchors: Tensor
    tcls: Tensor
    tidx: Tensor

    def __len__(self) -> int:
        return int(self.b.shape[0])


def cell_choices(gxy: Tensor, nx: int, ny: int, half: float = 0.5) -> Tensor:
    """``BoolTensor[5, P]``: which of (centre, left, up, right, down) cells each centre ``gxy[P, 2]`` trains.

    The neighbour-cell rule (docs/loss.md): the left (upper) cell when the centre lies in the left (upper)
    ``half`` of its cell and more than one cell from that border; the right (lower) one when its distance to
    the far border has a fractional part below ``half`` and exceeds one cell.
    """
    far = torch.stack((nx - gxy[:, 0], ny - gxy[:, 1]), 1)  # distance to the right / bottom border
    low = (gxy - gxy.floor() < half) & (gxy > 1)  # [P, 2]: left, up
    high = (far - far.floor() < half) & (far > 1)  # [P, 2]: right, down
    centre = torch.ones_like(low[:, 0])
    return torch.stack((centre, low[:, 0], low[:, 1], high[:, 0], high[:, 1]))


def _level(t: Tensor, ai: Tensor, ti: Tensor, offsets: Tensor, anchors: Tensor, ny: int, nx: int) -> LevelTargets:
    """Pack positives ``t`` (``[P, 6]`` in grid units) with anchor ids ``ai`` and cell offsets."""
    gxy, gwh = t[:, 2:4], t[:, 4:6]
    gij = (gxy - offsets).long()  # truncation == floor here: gxy - offset >= 0 by construction
    gi, gj = gij.unbind(1)
    return LevelTargets(
        b=t[:, 0].long(),
        a=ai,
        gj=gj.clamp(0, ny - 1),
        gi=gi.clamp(0, nx - 1),
        tbox=torch.cat((gxy - gij, gwh), 1),
        anchors=anchors[ai],
        tcls=t[:, 1].long(),
        tidx=ti,
    )


@torch.no_grad()
def assign_yolov5(
    targets: Tensor, anchors: Tensor, grids: Sequence[tuple[int, int]], anchor_t: float = 4.0, g: float = 0.5
) -> list[LevelTargets]:
    """yolov5 assignment; see the module docstring. ``anchors``: ``Tensor[nl, na, 2]`` grid units."""
    nt, na = targets.shape[0], anchors.shape[1]
    dev = targets.device
    targets = targets.float()
    off = torch.tensor(_OFFSETS, device=dev) * g
    out = []
    for i, (ny, nx) in enumerate(grids):
        to_grid = torch.tensor([1.0, 1.0, nx, ny, nx, ny], device=dev)
        t = targets * to_grid  # [nt, 6], boxes in grid units
        anc = anchors[i].float()
        ratio = t[None, :, 4:6] / anc[:, None]  # [na, nt, 2]
        keep = torch.maximum(ratio, 1 / ratio).amax(2) < anchor_t  # [na, nt]: the ratio test
        ai, ti = keep.nonzero(as_tuple=True)  # anchor-major
        tk = t[ti]
        chosen = cell_choices(tk[:, 2:4], nx, ny, g)  # [5, P]
        oi, pi = chosen.nonzero(as_tuple=True)  # cell-kind-major: the write order of docs/loss.md
        out.append(_level(tk[pi], ai[pi], ti[pi], off[oi], anc, ny, nx))
    del nt, na
    return out


@torch.no_grad()
def assign_darknet(
    targets: Tensor,
    anchors: Tensor,
    strides: Tensor,
    grids: Sequence[tuple[int, int]],
    iou_thresh: float = 1.0,
) -> list[LevelTargets]:
    """darknet assignment; see the module docstring. ``strides``: ``Tensor[nl]`` pixels."""
    nl, na = anchors.shape[:2]
    dev = targets.device
    targets = targets.float()
    anchors_px = (anchors.float() * strides.float().view(nl, 1, 1).to(dev)).view(nl * na, 2)
    ny0, nx0 = grids[0]
    img_wh = torch.tensor([nx0, ny0], device=dev, dtype=torch.float32) * strides[0].float().to(dev)
    ious = wh_iou(anchors_px, targets[:, 4:6] * img_wh)  # [nl*na, nt]
    pos = ious > iou_thresh
    if targets.shape[0]:
        best = ious.argmax(0)  # [nt]
        pos[best, torch.arange(targets.shape[0], device=dev)] = True
    pos = pos.view(nl, na, -1)
    out = []
    for i, (ny, nx) in enumerate(grids):
        to_grid = torch.tensor([1.0, 1.0, nx, ny, nx, ny], device=dev)
        ai, ti = pos[i].nonzero(as_tuple=True)
        t = targets[ti] * to_grid
        out.append(_level(t, ai, ti, torch.zeros_like(t[:, 2:4]), anchors[i].float(), ny, nx))
    return out
