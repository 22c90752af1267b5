"""Cells whose objectness gets no loss: ignore regions ("don't care" / crowd boxes) and darknet's ``ignore_thresh``.

Ignore regions (``YoloLoss(..., ignore=...)``): ``Tensor[m, 5]`` rows ``[image, cx, cy, w, h]`` normalised
like the targets. An anchor prediction is ignored when its decoded box (detached) lies mostly inside a region
of its own image: intersection over the *prediction's* area ``>= LossConfig.ignore_iof``. A data pipeline
carries the regions inside the targets as rows of class ``-1``; :func:`split_ignore` separates them.

darknet's ``ignore_thresh`` (``LossConfig.ignore_thresh < 1``): a prediction whose decoded box has IoU above it
with a target of its image gets no objectness loss. Both are :func:`overlap_mask`, with ``measure="iof"`` and
``"iou"``: each box against the cells whose predictions can reach the threshold (``windowed``, on the CPU), or
against every cell of its image (no ``nonzero``, no ``.item()``, no host sync).
"""

from __future__ import annotations

import bisect

import torch
from torch import Tensor

from .decode import decode_wh, decode_xy
from .validate import check_ignore_shape, check_ignore_values, check_targets_values  # noqa: F401 (loss.py)

IGNORE_CLASS = -1  # class id of an ignore region inside a targets tensor
CHUNK_ELEMS = 1 << 16  # (box, cell, anchor) triples per chunk of an overlap mask (cache-sized temporaries)


def split_ignore(targets: Tensor) -> tuple[Tensor, Tensor]:
    """``(targets, ignore)`` from targets ``Tensor[n, 6]`` whose ignore regions are rows of class ``-1``.

    Returns the rows of class ``>= 0`` unchanged and the class ``-1`` rows as ``Tensor[m, 5]``
    ``[image, cx, cy, w, h]``. Boolean indexing (a host sync on a GPU): call it on the CPU batch.
    """
    if not isinstance(targets, Tensor) or targets.dim() != 2 or targets.shape[1] != 6:
        shape = tuple(targets.shape) if isinstance(targets, Tensor) else type(targets).__name__
        raise ValueError(f"split_ignore takes targets of shape (n, 6) [image, class, cx, cy, w, h], got {shape}")
    is_ig = targets[:, 1] == IGNORE_CLASS
    return targets[~is_ig], targets[is_ig][:, [0, 2, 3, 4, 5]]


def _as_target_rows(ignore: Tensor, dtype: torch.dtype) -> Tensor:
    """Regions as ``[image, 0, cx, cy, w, h]`` rows, so the target checks (class 0 always valid) apply."""
    return torch.cat((ignore[:, :1], torch.zeros_like(ignore[:, :1]), ignore[:, 1:]), 1).to(dtype)


def check_targets_and_ignore(targets: Tensor, ignore: Tensor, bs: int, nc: int) -> None:
    """Value checks of targets and ignore regions together: one host sync when all is well; else the error of
    whichever is bad (targets first)."""
    try:
        check_targets_values(torch.cat((targets, _as_target_rows(ignore, targets.dtype))), bs, nc)
    except ValueError:
        check_targets_values(targets, bs, nc)  # raises when the targets are the bad rows
        check_ignore_values(ignore, bs)
        raise


def _decoded(
    t: Tensor, anchors: Tensor, cx: Tensor, cy: Tensor, decode: str, scale: float, measure: str, thresh: float
) -> Tensor:
    """Boxes ``Tensor[5, ...]`` ``(x1, y1, x2, y2, a)`` in grid units from raw logits ``t`` ``[4, ...]``
    (component-major: every op runs on contiguous rows), ``anchors`` ``[2, ...]`` and the cells' corners ``cx``,
    ``cy`` (all broadcast against ``t[0]``): ``a = area * thresh`` for IoF, ``(area + eps / 2) * thresh`` for IoU
    (:func:`_hits`)."""
    x = decode_xy(t[0], decode, scale).add_(cx)
    y = decode_xy(t[1], decode, scale).add_(cy)
    hw = decode_wh(t[2], anchors[0], decode).mul_(0.5)
    hh = decode_wh(t[3], anchors[1], decode).mul_(0.5)
    area = hw * hh * 4.0
    area = area.clamp_(min=torch.finfo(area.dtype).tiny) if measure == "iof" else area.add_(0.5e-7)
    return torch.stack((x - hw, y - hh, x + hw, y + hh, area.mul_(thresh)))


def _box_logits(p: Tensor, b: Tensor, gy: Tensor, gx: Tensor) -> Tensor:
    """``p[b, :, gy, gx, :4]`` as ``Tensor[4, k, na]`` (component-major) for a ``p`` of any strides, as one 1-D
    ``index_select`` of its storage (advanced indexing of a strided view is several times slower on CPU)."""
    s = p.stride()
    base = b * s[0] + p.storage_offset() + gy * s[2] + gx * s[3]
    off = torch.arange(4, device=p.device)[:, None] * s[4] + torch.arange(p.shape[1], device=p.device) * s[1]
    flat = p.as_strided((p.untyped_storage().nbytes() // p.element_size(),), (1,), 0)
    return flat.index_select(0, (off[:, None] + base[None, :, None]).view(-1)).view(4, -1, p.shape[1])


def _grid_boxes(p: Tensor, anc: Tensor, decode: str, scale: float, measure: str, thresh: float) -> Tensor:
    """Every prediction of the level decoded (:func:`_decoded`): ``Tensor[5, bs * na * ny * nx]``, the cells in
    ``p``'s logical order. The box logits are copied one channel at a time (long strided rows, not rows of 4)."""
    bs, na, ny, nx, _ = p.shape
    dev = p.device
    raw = torch.empty(4, bs, na, ny, nx, device=dev).copy_(p.detach()[..., :4].permute(4, 0, 1, 2, 3))
    cx, cy = torch.arange(nx, device=dev, dtype=raw.dtype), torch.arange(ny, device=dev, dtype=raw.dtype)[:, None]
    return _decoded(raw, anc.T[:, :, None, None], cx, cy, decode, scale, measure, thresh).view(5, -1)


def _hits(pred: Tensor, box: Tensor, measure: str, thresh: float) -> Tensor:
    """``pred`` overlaps ``box`` (``[5, ...]`` of :func:`_decoded`, broadcasting): IoU ``> thresh``
    (``inter > t (area_p + area_b - inter + eps)``) or intersection over ``pred``'s area ``>= thresh``
    (``measure`` ``"iou"`` / ``"iof"``)."""
    inter = (torch.minimum(pred[2], box[2]) - torch.maximum(pred[0], box[0])).clamp_(min=0)
    inter *= (torch.minimum(pred[3], box[3]) - torch.maximum(pred[1], box[1])).clamp_(min=0)
    if measure == "iof":
        return inter >= pred[4]
    return inter.mul_(1.0 + thresh) > pred[4] + box[4]


def _reach(measure: str, thresh: float) -> float:
    """How far (in box widths) a prediction's centre can lie from a box's centre, along an axis, and still overlap it
    by ``thresh``; ``inf`` at 0.

    With widths ``wp`` (prediction), ``w`` (box) and centre distance ``d``, the overlap ``o <= min(wp, w,
    (wp + w) / 2 - d)``. IoF >= t needs ``o >= t wp``: ``wp <= w / t`` and ``d <= w max(1/2, (1 - t) / (2t))``.
    IoU > t needs ``o > t max(wp, w)`` too: ``d < w (1 - t) max(1, 1 / (2t))``.
    """
    if thresh <= 0:
        return float("inf")
    if measure == "iof":
        return max(0.5, (1.0 - thresh) / (2.0 * thresh))
    return (1.0 - thresh) * max(1.0, 1.0 / (2.0 * thresh))


def _windows(box: Tensor, n: int, reach: float, margin: float) -> tuple[Tensor, Tensor]:
    """First and last cell, along an axis of ``n`` cells, whose predictions can reach ``box`` (``[k, 2]`` centre,
    size); a cell's predicted centres lie within ``margin`` of the cell (the decode's range)."""
    if reach == float("inf"):
        return torch.zeros_like(box[:, 0], dtype=torch.long), torch.full_like(box[:, 0], n - 1, dtype=torch.long)
    half = box[:, 1] * reach
    lo = (box[:, 0] - half - margin - 1.0).floor().clamp(0, n - 1).long()
    hi = (box[:, 0] + half + margin).floor().clamp(0, n - 1).long()
    return lo, hi


def _chunks(counts: Tensor, per_box: int | None, limit: int) -> list[tuple[int, int, int]]:
    """``(first box, end box, pairs)`` of consecutive boxes with at most ``limit`` (box, cell) pairs each (a box
    with more alone), so that the temporaries of a chunk stay small (in cache, below the allocator's ``mmap``
    threshold). ``counts``: ``LongTensor[m]`` pairs per box, read on the host; ``per_box``: the count of every box
    when known (no host read)."""
    m = counts.shape[0]
    if per_box is not None:
        step = max(1, limit // max(per_box, 1))
        return [(s, min(s + step, m), (min(s + step, m) - s) * per_box) for s in range(0, m, step)]
    ends = counts.cumsum(0).tolist()  # the one host read
    out, s, base = [], 0, 0
    while s < m:
        e = max(bisect.bisect_right(ends, base + limit, lo=s), s + 1)
        out.append((s, e, ends[e - 1] - base))
        s, base = e, ends[e - 1]
    return out


@torch.no_grad()
def overlap_mask(
    p: Tensor,
    boxes: Tensor,
    anchors: Tensor,
    decode: str,
    scale: float,
    measure: str,
    thresh: float,
    windowed: bool = True,
) -> Tensor:
    """``BoolTensor[bs, na, ny, nx]``: predictions whose box overlaps a box of their image (:func:`_hits`).

    Args:
        p: the level's raw logits ``Tensor[bs, na, ny, nx, 5 + nc]`` (any strides; read detached).
        boxes: ``Tensor[m, 5]`` ``[image, cx, cy, w, h]`` normalised (regions, or targets without the class).
        anchors: ``Tensor[na, 2]`` in grid units (so boxes decode in grid units).
        windowed: compare each box only with the cells whose predictions can reach it (:func:`_reach`; far fewer
            pairs, their count read on the host); else with every cell of its image (fixed shapes, no host sync).
    """
    bs, na, ny, nx, _ = p.shape
    dev, ncell = p.device, bs * ny * nx
    anc = anchors.to(device=dev, dtype=torch.float32)
    b = boxes.detach().float()
    img = b[:, 0].long()
    cxw, cyh = torch.stack((b[:, 1] * nx, b[:, 3] * nx), 1), torch.stack((b[:, 2] * ny, b[:, 4] * ny), 1)
    wb, hb = cxw[:, 1] / 2, cyh[:, 1] / 2
    area = (cxw[:, 1] * cyh[:, 1] + 0.5e-7) * thresh if measure == "iou" else torch.zeros_like(wb)
    reg = torch.stack((cxw[:, 0] - wb, cyh[:, 0] - hb, cxw[:, 0] + wb, cyh[:, 0] + hb, area))  # [5, m]
    reach = _reach(measure, thresh) if windowed else float("inf")
    margin = 0.5 if decode == "yolov5" else (scale - 1.0) / 2  # decoded centres lie in (-margin, 1 + margin)
    x0, x1 = _windows(cxw, nx, reach, margin)
    y0, y1 = _windows(cyh, ny, reach, margin)
    wx, counts = x1 - x0 + 1, (x1 - x0 + 1) * (y1 - y0 + 1)
    first = img * (na * ny * nx) + y0 * nx + x0  # each box's first cell (flat over bs, na, ny, nx: anchor 0)
    chunks = _chunks(counts, None if reach < float("inf") else ny * nx, max(1, CHUNK_ELEMS // na))
    grid: Tensor | None = None
    if sum(c[2] for c in chunks) > ncell:  # more pairs than cells: decode every cell once
        grid = _grid_boxes(p, anc, decode, scale, measure, thresh)
    hits = torch.zeros(bs * na * ny * nx, device=dev)
    per_anchor = torch.arange(na, device=dev) * (ny * nx)
    for s, e, total in chunks:
        k = slice(s, e)
        n = counts[k]
        ri = torch.arange(n.shape[0], device=dev).repeat_interleave(n, output_size=total)
        r = torch.arange(total, device=dev) - (n.cumsum(0) - n).index_select(0, ri)
        w = wx[k].index_select(0, ri)
        dy, dx = torch.div(r, w, rounding_mode="floor"), r.remainder(w)
        cell = (first[k].index_select(0, ri) + dy * nx + dx)[:, None] + per_anchor  # [pairs, na]
        if grid is not None:
            pred = grid.index_select(1, cell.view(-1)).view(5, -1, na)
        else:  # few pairs: decode only theirs
            gx, gy = x0[k].index_select(0, ri) + dx, y0[k].index_select(0, ri) + dy
            t = _box_logits(p.detach(), img[k].index_select(0, ri), gy, gx).float()  # [4, pairs, na]
            pred = _decoded(t, anc.T[:, None], gx[:, None], gy[:, None], decode, scale, measure, thresh)
        hit = _hits(pred, reg[:, k].index_select(1, ri)[..., None], measure, thresh)  # [pairs, na]
        hits.index_add_(0, cell.view(-1), hit.view(-1).to(hits.dtype))
    return (hits > 0).view(bs, na, ny, nx)
