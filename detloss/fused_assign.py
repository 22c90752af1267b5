"""Positives for the fused loss path: fixed-size candidates with a validity mask (no data-dependent shapes).

The reference assignment (:mod:`detloss.assign`) selects positives with ``nonzero``, whose output size
depends on the data: on a GPU that is a host sync per level, and a shape that changes every step
(no CUDA graph, a recompile or a graph break under ``torch.compile``). Here every possible positive is
a row, and ``valid`` says which rows are positives:

* :func:`dense_yolov5`: ``5 * na * nt`` rows per level (cell offsets centre/left/up/right/down x anchor x
  target), in the row order of :func:`detloss.assign_yolov5` (offset-major, then anchor, then target), so
  the valid rows, in order, are exactly its positives (that order decides the winner when positives
  share a cell).
* :func:`dense_darknet`: ``na * nt`` rows per level (anchor x target, centre cell only), the order of
  :func:`detloss.assign_darknet`.

Invalid rows carry in-range cell indices and finite box targets, so any arithmetic on them stays
finite; the loss masks them out. :func:`compact` wraps the reference's :class:`LevelTargets` (all rows
valid) for devices where a sync costs nothing (CPU).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from .assign import LevelTargets, cell_choices
from .boxes import wh_iou

_OFFSETS = ((0.0, 0.0), (1.0, 0.0), (0.0, 1.0), (-1.0, 0.0), (0.0, -1.0))  # as detloss.assign
_CONST: dict[tuple[str, torch.device], Tensor] = {}


@dataclass(frozen=True)
class Candidates:
    """Rows of one level: possible positives and which of them are positives.

    Attributes:
        b, a, gj, gi: ``LongTensor[C]`` image, anchor, row, column (always inside the grid).
        tbox: ``Tensor[C, 4]`` target ``(x, y, w, h)`` in grid units, ``x, y`` relative to the cell corner.
        anchors: ``Tensor[C, 2]`` anchor size in grid units.
        tcls: ``LongTensor[C]`` class index.
        valid: ``BoolTensor[C]``, or ``None`` when every row is a positive.
        count: number of positives: a 0-d tensor (dense) or an ``int`` (compact).
    """

    b: Tensor
    a: Tensor
    gj: Tensor
    gi: Tensor
    tbox: Tensor
    anchors: Tensor
    tcls: Tensor
    valid: Tensor | None
    count: Tensor | int

    def __len__(self) -> int:
        return int(self.b.shape[0])


def _offsets(device: torch.device) -> Tensor:
    """``Tensor[5, 2]`` cell offsets, created once per device (no host-to-device copy per call)."""
    key = ("offsets", device)
    if key not in _CONST:
        _CONST[key] = torch.tensor(_OFFSETS, device=device)
    return _CONST[key]


def compact(lt: LevelTargets) -> Candidates:
    """The reference's positives as candidates (all valid)."""
    return Candidates(lt.b, lt.a, lt.gj, lt.gi, lt.tbox, lt.anchors, lt.tcls, None, len(lt))


def _pack(gxy: Tensor, gwh: Tensor, off: Tensor, t: Tensor, anc: Tensor, valid: Tensor, ny: int, nx: int) -> Candidates:
    """Rows ``[K, na, nt]`` from per-target ``gxy, gwh`` (``[nt, 2]``), cell offsets ``off`` (``[K, 2]``)."""
    k, na, nt = valid.shape
    gij = (gxy[None] - off[:, None]).long()  # [K, nt, 2]; as assign._level: floor of a value >= 0 when valid
    tbox = torch.cat((gxy[None] - gij, gwh[None].expand(k, nt, 2)), 2)  # [K, nt, 4]
    shape = (k, na, nt)
    dev = t.device
    return Candidates(
        b=t[:, 0].long().expand(shape).reshape(-1),
        a=torch.arange(na, device=dev).view(1, na, 1).expand(shape).reshape(-1),
        gj=gij[..., 1].clamp(0, ny - 1)[:, None].expand(shape).reshape(-1),
        gi=gij[..., 0].clamp(0, nx - 1)[:, None].expand(shape).reshape(-1),
        tbox=tbox[:, None].expand(k, na, nt, 4).reshape(-1, 4),
        anchors=anc[None, :, None].expand(k, na, nt, 2).reshape(-1, 2),
        tcls=t[:, 1].long().expand(shape).reshape(-1),
        valid=valid.reshape(-1),
        count=valid.sum(),
    )


def _grid_units(targets: Tensor, ny: int, nx: int) -> tuple[Tensor, Tensor]:
    """``gxy, gwh`` (``[nt, 2]``) in grid units; the same products as ``targets * [1, 1, nx, ny, nx, ny]``."""
    t = targets.float()
    gxy = torch.stack((t[:, 2] * nx, t[:, 3] * ny), 1)
    gwh = torch.stack((t[:, 4] * nx, t[:, 5] * ny), 1)
    return gxy, gwh


@torch.no_grad()
def dense_yolov5(
    targets: Tensor, anchors: Tensor, grids: Sequence[tuple[int, int]], anchor_t: float = 4.0, g: float = 0.5
) -> list[Candidates]:
    """yolov5 assignment (see :func:`detloss.assign_yolov5`) as ``5 * na * nt`` candidates per level."""
    dev = targets.device
    off = _offsets(dev) * g
    out = []
    for i, (ny, nx) in enumerate(grids):
        gxy, gwh = _grid_units(targets, ny, nx)
        anc = anchors[i].float()
        ratio = gwh[None] / anc[:, None]  # [na, nt, 2]
        keep = torch.maximum(ratio, 1 / ratio).amax(2) < anchor_t  # [na, nt]: the ratio test
        sel = cell_choices(gxy, nx, ny, g)  # [5, nt]
        out.append(_pack(gxy, gwh, off, targets, anc, sel[:, None] & keep[None], ny, nx))
    return out


@torch.no_grad()
def dense_darknet(
    targets: Tensor, anchors: Tensor, strides: Sequence[float], grids: Sequence[tuple[int, int]], iou_thresh: float
) -> list[Candidates]:
    """darknet assignment (see :func:`detloss.assign_darknet`) as ``na * nt`` candidates per level.

    ``strides`` are Python floats (reading a device tensor would be a host sync).
    """
    nl, na = anchors.shape[:2]
    nt = targets.shape[0]
    dev = targets.device
    t = targets.float()
    anchors_px = torch.cat([anchors[i].float() * float(strides[i]) for i in range(nl)])  # [nl*na, 2]
    ny0, nx0 = grids[0]
    wh = torch.stack((t[:, 4] * (nx0 * float(strides[0])), t[:, 5] * (ny0 * float(strides[0]))), 1)
    ious = wh_iou(anchors_px, wh)  # [nl*na, nt]
    pos = ious > iou_thresh
    if nt:  # a device-side True: a Python True would be copied from the host
        pos.index_put_((ious.argmax(0), torch.arange(nt, device=dev)), torch.ones((), dtype=torch.bool, device=dev))
    pos = pos.view(nl, na, nt)
    zero = torch.zeros(1, 2, device=dev)
    out = []
    for i, (ny, nx) in enumerate(grids):
        gxy, gwh = _grid_units(targets, ny, nx)
        out.append(_pack(gxy, gwh, zero, targets, anchors[i].float(), pos[i][None], ny, nx))
    return out
