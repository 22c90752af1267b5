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
  ``iou_thresh``; centre cell only. Order: anchor, then target.

Each rule gives a mask ``[K, na, nt]`` (cell offset, anchor, target) and one packing turns it into rows:
``dense=False`` keeps the positives only (selected with ``nonzero``: a data-dependent size, a host sync
on a GPU); ``dense=True`` keeps every possible row (``K * na * nt``) with ``valid`` saying which are
positives, so nothing reads a device value on the host and shapes stay fixed (CUDA graphs,
``torch.compile``). The valid dense rows, in order, are exactly the compact rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from .boxes import wh_iou

# centre, left, up, right, down (yolov5's g = 0.5 neighbour offsets, subtracted from the centre)
_OFFSETS = ((0.0, 0.0), (1.0, 0.0), (0.0, 1.0), (-1.0, 0.0), (0.0, -1.0))
_CONST: dict[torch.device, Tensor] = {}


@dataclass(frozen=True)
class LevelTargets:
    """Rows of one level, ``P`` of them: the positives, or (dense) every possible positive and a mask.

    Attributes:
        b, a, gj, gi: ``LongTensor[P]`` image, anchor, row and column of each cell (always inside the grid).
        tbox: ``Tensor[P, 4]`` target ``(x, y, w, h)`` in grid units, ``x, y`` relative to the cell corner.
        anchors: ``Tensor[P, 2]`` the matched anchor's size in grid units.
        tcls: ``LongTensor[P]`` class index.
        tidx: ``LongTensor[P]`` row of the target in the input ``targets``.
        valid: ``BoolTensor[P]`` which rows are positives, or ``None`` when all are. Invalid rows carry
            in-range cells and finite boxes, so arithmetic on them stays finite; the loss masks them out.
    """

    b: Tensor
    a: Tensor
    gj: Tensor
    gi: Tensor
    tbox: Tensor
    anchors: Tensor
    tcls: Tensor
    tidx: Tensor
    valid: Tensor | None = None

    def __len__(self) -> int:
        return int(self.b.shape[0])

    @property
    def count(self) -> Tensor | int:
        """Number of positives: an ``int``, or a 0-d tensor with dense rows (no host read)."""
        return len(self) if self.valid is None else self.valid.sum()

    @property
    def divisor(self) -> Tensor | int:
        """What a mean over the positives divides by: their count, at least 1 (no positives: a mean of 0)."""
        count = self.count
        return count.clamp(min=1) if isinstance(count, Tensor) else max(count, 1)

    def mean(self, v: Tensor) -> Tensor:
        """Mean of ``v`` (``Tensor[P]``) over the positive rows; 0 when there are none."""
        return (v if self.valid is None else torch.where(self.valid, v, 0.0)).sum() / self.divisor


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


def _offsets(device: torch.device) -> Tensor:
    """``Tensor[5, 2]`` cell offsets, created once per device (no host-to-device copy per call)."""
    if device not in _CONST:
        _CONST[device] = torch.tensor(_OFFSETS, device=device)
    return _CONST[device]


def _grid_units(targets: Tensor, ny: int, nx: int) -> tuple[Tensor, Tensor]:
    """``gxy, gwh`` (``[nt, 2]``) of the targets in grid units."""
    t = targets.float()
    return torch.stack((t[:, 2] * nx, t[:, 3] * ny), 1), torch.stack((t[:, 4] * nx, t[:, 5] * ny), 1)


def _pack(targets: Tensor, mask: Tensor, off: Tensor, anc: Tensor, grid: tuple[int, int], dense: bool) -> LevelTargets:
    """Rows of ``mask`` (``BoolTensor[K, na, nt]``: cell offset ``off[K, 2]``, anchor, target), in that order."""
    ny, nx = grid
    k, na, nt = mask.shape
    if dense:
        ki, ai, ti = (torch.arange(n, device=mask.device) for n in (k, na, nt))
        ki, ai, ti = (v.expand(k, na, nt).reshape(-1) for v in (ki[:, None, None], ai[None, :, None], ti[None, None]))
    else:
        ki, ai, ti = mask.nonzero(as_tuple=True)
    gxy, gwh = _grid_units(targets, ny, nx)
    gxy = gxy[ti]
    gij = (gxy - off[ki]).long()  # truncation == floor: gxy - offset >= 0 wherever the row is a positive
    t = targets[ti]
    return LevelTargets(
        b=t[:, 0].long(),
        a=ai,
        gj=gij[:, 1].clamp(0, ny - 1),
        gi=gij[:, 0].clamp(0, nx - 1),
        tbox=torch.cat((gxy - gij, gwh[ti]), 1),
        anchors=anc[ai],
        tcls=t[:, 1].long(),
        tidx=ti,
        valid=mask.reshape(-1) if dense else None,
    )


@torch.no_grad()
def assign_yolov5(
    targets: Tensor,
    anchors: Tensor,
    grids: Sequence[tuple[int, int]],
    anchor_t: float = 4.0,
    g: float = 0.5,
    dense: bool = False,
) -> list[LevelTargets]:
    """yolov5 assignment; see the module docstring. ``anchors``: ``Tensor[nl, na, 2]`` grid units."""
    off = _offsets(targets.device) * g
    out = []
    for i, (ny, nx) in enumerate(grids):
        gxy, gwh = _grid_units(targets, ny, nx)
        anc = anchors[i].float()
        ratio = gwh[None] / anc[:, None]  # [na, nt, 2]
        keep = torch.maximum(ratio, 1 / ratio).amax(2) < anchor_t  # [na, nt]: the ratio test
        mask = cell_choices(gxy, nx, ny, g)[:, None] & keep[None]  # [5, na, nt]
        out.append(_pack(targets, mask, off, anc, (ny, nx), dense))
    return out


@torch.no_grad()
def assign_darknet(
    targets: Tensor,
    anchors: Tensor,
    strides: Tensor | Sequence[float],
    grids: Sequence[tuple[int, int]],
    iou_thresh: float = 1.0,
    dense: bool = False,
) -> list[LevelTargets]:
    """darknet assignment; see the module docstring. ``strides``: pixels per level (Python floats: no host read)."""
    nl, na = anchors.shape[:2]
    nt = targets.shape[0]
    dev = targets.device
    st = [float(s) for s in (strides.tolist() if isinstance(strides, Tensor) else strides)]
    anchors_px = torch.cat([anchors[i].float() * st[i] for i in range(nl)])  # [nl*na, 2]
    ny0, nx0 = grids[0]
    t = targets.float()
    ious = wh_iou(anchors_px, torch.stack((t[:, 4] * (nx0 * st[0]), t[:, 5] * (ny0 * st[0])), 1))  # [nl*na, nt]
    pos = ious > iou_thresh
    if nt:  # the best anchor of each target; a device-side True (a Python True would be copied from the host)
        pos.index_put_((ious.argmax(0), torch.arange(nt, device=dev)), torch.ones((), dtype=torch.bool, device=dev))
    pos = pos.view(nl, na, nt)
    zero = _offsets(dev)[:1]
    return [_pack(targets, pos[i][None], zero, anchors[i].float(), grid, dense) for i, grid in enumerate(grids)]
