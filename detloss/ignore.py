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
    """``p[b, :, gy, gx, :4]`` as ``Tensor[4, na, k]`` (component-major) for a ``p`` of any strides, as one 1-D
    ``index_select`` of its storage (advanced indexing of a strided view is several times slower on CPU), read in
    ``[k, na, 4]`` order (a prediction's four logits share a cache line: one pass over them, not four)."""
    s = p.stride()
    base = b * s[0] + p.storage_offset() + gy * s[2] + gx * s[3]
    off = torch.arange(p.shape[1], device=p.device)[:, None] * s[1] + torch.arange(4, device=p.device) * s[4]
    flat = p.as_strided((p.untyped_storage().nbytes() // p.element_size(),), (1,), 0)
    got = flat.index_select(0, (base[:, None, None] + off).view(-1)).view(-1, p.shape[1], 4)
    return got.permute(2, 1, 0).contiguous()


def _grid_boxes(p: Tensor, anc: Tensor, decode: str, scale: float, measure: str, thresh: float) -> Tensor:
    """Every prediction of the level decoded (:func:`_decoded`): ``Tensor[5 * na, bs * ny * nx]``, a row per
    (component, anchor), a column per cell (image, row, column), so that a window's gather (``index_select`` of
    columns) comes out anchor-major, ``[5, na, cells]``: the ops of :func:`_hits` then run along the cells. The box
    logits are copied one channel at a time (long strided rows, not rows of 4)."""
    bs, na, ny, nx, _ = p.shape
    dev = p.device
    raw = torch.empty(4, na, bs, ny, nx, device=dev).copy_(p.detach()[..., :4].permute(4, 1, 0, 2, 3))
    cx, cy = torch.arange(nx, device=dev, dtype=raw.dtype), torch.arange(ny, device=dev, dtype=raw.dtype)[:, None]
    return _decoded(raw, anc.T[:, :, None, None, None], cx, cy, decode, scale, measure, thresh).view(5 * na, -1)


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


def _chunks(rows: Tensor, per_box: int | None, limit: int) -> list[tuple[int, int, int]]:
    """``(first box, end box, rows)`` of consecutive boxes with at most ``limit`` window rows each (a box with more
    alone), so that the temporaries of a chunk stay small (in cache, below the allocator's ``mmap`` threshold).
    ``rows``: ``LongTensor[m]`` window rows per box, read on the host; ``per_box``: the count of every box when known
    (no host read)."""
    m = rows.shape[0]
    if per_box is not None:
        step = max(1, limit // max(per_box, 1))
        return [(s, min(s + step, m), (min(s + step, m) - s) * per_box) for s in range(0, m, step)]
    ends = rows.cumsum(0).tolist()  # the one host read
    out, s, base = [], 0, 0
    while s < m:
        e = max(bisect.bisect_right(ends, base + limit, lo=s), s + 1)
        out.append((s, e, ends[e - 1] - base))
        s, base = e, ends[e - 1]
    return out


def _width_groups(wx: Tensor, nx: int, windowed: bool) -> list[tuple[int, Tensor]]:
    """``(W, boxes)``: the boxes (``LongTensor``) whose windows are padded to ``W`` cells (the next of 1, 2, 3, 4, 6,
    8, 12, ...; at most ``nx``), so that a window row is ``start + arange(W)`` (no per-cell division) and there are
    few groups. A wider window only tests more cells (never a false hit). Not windowed: one group, whole rows."""
    if not windowed:
        return [(nx, torch.arange(wx.shape[0], device=wx.device))] if wx.shape[0] else []
    sizes, w = [1], 2
    while sizes[-1] < nx:
        sizes += [w, w * 3 // 2]
        w *= 2
    padded = torch.tensor(sizes, device=wx.device).clamp(max=nx)
    padded = padded.index_select(0, torch.bucketize(wx, padded))  # the smallest size >= wx
    order = torch.argsort(padded, stable=True)
    widths, counts = torch.unique_consecutive(padded.index_select(0, order), return_counts=True)
    return list(zip(widths.tolist(), order.split(counts.tolist())))


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
    wx, wy = x1 - x0 + 1, y1 - y0 + 1
    row0 = img * ny + y0  # each box's first row (flat over bs, ny)
    windowed = reach < float("inf")
    pairs = int((wx * wy).sum()) if windowed else boxes.shape[0] * ny * nx
    grid = _grid_boxes(p, anc, decode, scale, measure, thresh) if pairs > ncell else None  # else decode the pairs'
    hits = torch.zeros(ncell, na, device=dev)
    if grid is None:  # few pairs: each (box, cell) pair a row of one cell (exact, no padding)
        groups, n_box, per_box = [(1, torch.arange(wx.shape[0], device=dev))], wx * wy, None if windowed else ny * nx
    else:  # window rows of a group's width
        groups, n_box, per_box = _width_groups(wx, nx, windowed), wy, None if windowed else ny
    for width, group in groups:
        n_all = n_box.index_select(0, group)
        for s, e, total in _chunks(n_all, per_box, max(1, CHUNK_ELEMS // (width * na))):
            box, n = group[s:e], n_all[s:e]
            seg = torch.arange(n.shape[0], device=dev).repeat_interleave(n, output_size=total)  # row -> box
            r = torch.arange(total, device=dev) - (n.cumsum(0) - n).index_select(0, seg)  # the row's index in its box
            x_first = x0.index_select(0, box).clamp_(max=nx - width)  # a padded window stays in its row
            start = (row0.index_select(0, box) * nx + x_first).index_select(0, seg)
            if grid is None:  # decode only these pairs' predictions
                w = wx.index_select(0, box).index_select(0, seg)
                cell = start + torch.div(r, w, rounding_mode="floor") * nx + r.remainder(w)
                gx, rest = cell.remainder(nx), torch.div(cell, nx, rounding_mode="floor")
                gy, im = rest.remainder(ny), torch.div(rest, ny, rounding_mode="floor")
                t = _box_logits(p.detach(), im, gy, gx).float()  # [4, na, cells]
                pred = _decoded(t, anc.T[:, :, None], gx, gy, decode, scale, measure, thresh)
            else:  # [5, na, cells], anchor-major: every op below runs along the cells
                cell = ((start + r * nx)[:, None] + torch.arange(width, device=dev)).view(-1)  # [rows * width]
                pred = grid.index_select(1, cell).view(5, na, -1)
            reg_rows = reg.index_select(1, box.index_select(0, seg))[:, None, :, None]  # [5, 1, rows, 1]
            hit = _hits(pred.view(5, na, total, width), reg_rows, measure, thresh).view(na, -1).T  # [cells, na]
            if windowed:  # few hits: add only the rows that have one (a host read; the mask is built on the CPU)
                some = hit.any(1).nonzero().squeeze(1)
                cell, hit = cell.index_select(0, some), hit.index_select(0, some)
            hits.index_add_(0, cell, hit.to(hits.dtype))
    return (hits > 0).view(bs, ny, nx, na).permute(0, 3, 1, 2).contiguous()
