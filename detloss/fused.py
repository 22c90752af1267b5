"""Fused YOLO loss path: each level's gradient is written once, into reusable memory, without host syncs.

The reference formulation (:meth:`detloss.YoloLoss._level_terms`, yolov5's ``ComputeLoss``) indexes the
positives ``p[b, a, gj, gi]`` and slices the objectness channel ``p[..., 4]``; the backward of each
creates a zero-filled tensor the size of the predictions (fresh memory, faulted in page by page on a
CPU), and the two are summed: most of the time of the loss.

Here one :class:`torch.autograd.Function` per level (:class:`_LevelLoss`) owns the gradient of that level:

* forward: gathers the candidate rows (:mod:`detloss.fused_assign`), computes their IoU (no grad) for the
  objectness targets, builds ``tobj`` with the reference's winner per cell, and evaluates the objectness
  BCE over the whole grid and the class BCE of the positives in closed form (:mod:`detloss.fused_bce`),
  with one strided read of the objectness channel (kept, ``1/(5+nc)`` of the level, for the backward).
  It returns the positives' box logits ``Tensor[C, 4]``; decode and IoU loss run outside in ordinary
  autograd (every IoU kind and decode style), their gradient comes back into this backward.
* backward: takes one buffer (:class:`detloss.grad_buffer.GradBuffers`: reused on CPU when nothing refers
  to it any more), zero-fills it (one memset-speed pass), writes the objectness gradient ``d BCE / dx``
  into channel 4 (strided), then adds the rows of the positives (box gradient from the caller, class
  gradient in closed form) with ``index_add_`` / ``index_put_(accumulate=True)``: duplicates of a cell
  sum, as in the backward of the reference's indexing.

Objectness targets where positives share a cell: the last positive in assignment order wins (or the
highest IoU with ``sort_obj_iou``), as the reference's ``tobj[b, a, gj, gi] = iou``; the winner is chosen
explicitly (``scatter_reduce`` of the row rank), so the result does not depend on the order in which a
GPU performs the writes.

Syncs and graphs: with dense positives (``LossConfig.positives``, the default off the CPU) nothing in
forward or backward reads a device value on the host or has a data-dependent shape (tested under
``FakeTensorMode``); ``check_finite`` (one sync) and ``validate_targets`` (one sync on GPU) are opt-out.
With both off, ``torch.compile(loss, fullgraph=True)`` traces one graph (the gradient buffer is then
not reused: compiled code manages its own memory). CUDA graph capture additionally needs a fixed number
of target rows (the candidates are ``5 * na * nt`` rows) and one call before capture (it creates a small
per-device constant). The backward is not differentiable again (``once_differentiable``). Inputs may
have any strides, including the head's native layout (:func:`head_view`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from .decode import decode_wh, decode_xy
from .fused_assign import Candidates
from .fused_bce import bce_grad, bce_sum, bce_value, class_grad_, class_row_losses
from .grad_buffer import GradBuffers
from .iou import aligned_iou
from .multilabel import multi_hot_targets
from .smoothing import smooth_BCE, smooth_BCE_k

if TYPE_CHECKING:
    from .config import LossConfig


@dataclass(frozen=True)
class FusedSpec:
    """What the fused path needs of a :class:`detloss.LossConfig`, as Python values (no device reads)."""

    nc: int
    box_kind: str
    decode: str
    gr: float
    sort_obj_iou: bool
    obj_pw: float
    cls_pw: float
    gamma: float
    alpha: float
    cls_kind: str  # "scalar" (cls_pos, cls_neg) or "prior" (eps * prior + (1 - eps) * onehot)
    cls_pos: float
    cls_neg: float
    eps: float


def make_spec(cfg: LossConfig, nc: int) -> FusedSpec:
    """The fused path's view of ``cfg`` (which must pass :meth:`LossConfig.fused_unsupported`)."""
    eps, kind = cfg.label_smoothing, cfg.label_smoothing_kind
    cp, cn = smooth_BCE(eps) if kind == "yolo" else smooth_BCE_k(eps, max(nc, 2))
    return FusedSpec(
        nc=nc, box_kind=cfg.box_kind, decode=cfg.decode, gr=cfg.gr, sort_obj_iou=cfg.sort_obj_iou,
        obj_pw=cfg.obj_pw, cls_pw=cfg.cls_pw, gamma=cfg.fl_gamma, alpha=cfg.fl_alpha,
        cls_kind="prior" if kind == "prior" else "scalar", cls_pos=cp, cls_neg=cn, eps=eps,
    )  # fmt: skip


def head_view(x: Tensor, na: int) -> Tensor:
    """The head's native output ``Tensor[bs, na*(5+nc), ny, nx]`` as ``Tensor[bs, na, ny, nx, 5+nc]``, without a copy.

    A permuted view: the loss (fused path) reads it in place and writes its gradient in the native
    layout, so neither the forward nor the backward of the head pays a permute copy.
    """
    bs, ch, ny, nx = x.shape
    if ch % na:
        raise ValueError(f"head output has {ch} channels, not a multiple of na = {na}")
    return x.view(bs, na, ch // na, ny, nx).permute(0, 1, 3, 4, 2)


def candidate_iou(box: Tensor, cand: Candidates, spec: FusedSpec, scale: float) -> Tensor:
    """IoU-family value of the candidates' decoded boxes ``box`` (``Tensor[C, 4]`` logits) with their targets."""
    pxy = decode_xy(box[:, :2], spec.decode, scale)
    pwh = decode_wh(box[:, 2:4], cand.anchors.to(box.dtype), spec.decode)
    return aligned_iou(torch.cat((pxy, pwh), 1), cand.tbox.to(box.dtype), spec.box_kind)


def _masked_sum(v: Tensor, valid: Tensor | None) -> Tensor:
    return v.sum() if valid is None else torch.where(valid, v, 0.0).sum()


def _count(cand: Candidates) -> Tensor | int:
    return cand.count.clamp(min=1) if isinstance(cand.count, Tensor) else max(cand.count, 1)


def _class_targets(spec: FusedSpec, tcls: Tensor, prior: Tensor | None, dtype: torch.dtype) -> tuple:
    """``(t_other, t_true)``: the target of every class (float or ``Tensor[nc]``) and of the true class."""
    if spec.cls_kind != "prior":
        return spec.cls_neg, spec.cls_pos
    assert prior is not None  # YoloLoss requires it for this kind
    t_other = spec.eps * prior.to(device=tcls.device, dtype=dtype)
    return t_other, t_other[tcls] + (1.0 - spec.eps)


def _multi_targets(
    spec: FusedSpec, multi_hot: Tensor, tcls: Tensor, prior: Tensor | None, dtype: torch.dtype
) -> Tensor:
    """``Tensor[C, nc]`` class targets of multi-label candidates (``tcls`` indexes rows of ``multi_hot``)."""
    rows = multi_hot.index_select(0, tcls).to(dtype)
    if spec.cls_kind != "prior":
        return multi_hot_targets(rows, spec.cls_pos, spec.cls_neg)
    assert prior is not None
    neg = spec.eps * prior.to(device=tcls.device, dtype=dtype)
    return multi_hot_targets(rows, neg + (1.0 - spec.eps), neg)


def _kept_cells(grid: tuple[int, ...], cand: Candidates, cells: Tensor, ignored: Tensor) -> Tensor:
    """``BoolTensor[bs, na, ny, nx]``: cells whose objectness counts: not ignored, or a positive's cell."""
    ncell = ignored.numel()
    key = cells if cand.valid is None else torch.where(cand.valid, cells, ncell)
    pos = torch.zeros(ncell + 1, dtype=torch.bool, device=cells.device).index_fill_(0, key, True)
    return ~ignored | pos[:ncell].view(grid)


def _cells(cand: Candidates, grid: tuple[int, ...]) -> Tensor:
    """Flat cell index ``((b * na + a) * ny + gj) * nx + gi`` of each row."""
    _, na, ny, nx = grid
    return ((cand.b * na + cand.a) * ny + cand.gj) * nx + cand.gi


def _as_rows(p: Tensor) -> Tensor | None:
    """``p`` as ``Tensor[cells, 5 + nc]`` without a copy (the yolov5 layout), or None (e.g. the native layout)."""
    if p.stride(-1) != 1:
        return None
    try:
        return p.view(-1, p.shape[-1])
    except RuntimeError:
        return None


def _gather(p: Tensor, cand: Candidates, cells: Tensor) -> Tensor:
    """``p[b, a, gj, gi]`` (``Tensor[C, 5 + nc]``, a copy); whole rows with ``index_select`` where the layout allows."""
    rows = _as_rows(p)
    return rows.index_select(0, cells) if rows is not None else p[cand.b, cand.a, cand.gj, cand.gi]


def _scatter_add(buf: Tensor, cand: Candidates, cells: Tensor, rows: Tensor) -> None:
    """``buf[b, a, gj, gi] += rows``, duplicates summed (the backward of indexing)."""
    flat = _as_rows(buf)
    if flat is None:
        buf.index_put_((cand.b, cand.a, cand.gj, cand.gi), rows, accumulate=True)
    elif buf.device.type == "cpu":
        flat.index_add_(0, cells, rows)  # row-wise adds (index_put_ goes element by element on CPU)
    else:
        flat.index_put_((cells,), rows, accumulate=True)  # deterministic on CUDA (sorted), as the reference


def _objectness_targets(
    grid: tuple[int, ...], cand: Candidates, cells: Tensor, score: Tensor, spec: FusedSpec
) -> Tensor:
    """``tobj``: 0, or at a positive cell the winner's ``(1 - gr) + gr * iou``."""
    bs, na, ny, nx = grid
    ncell = bs * na * ny * nx
    key = cells if cand.valid is None else torch.where(cand.valid, cells, ncell)  # invalid rows: a scratch slot
    if spec.gr < 1:
        score = (1.0 - spec.gr) + spec.gr * score
    flat = score.new_zeros(ncell + 1)
    if spec.sort_obj_iou:  # highest wins; scores are >= 0, so the initial 0 never wins over a positive
        flat.scatter_reduce_(0, key, score, "amax")
    else:  # last row wins: every row of a cell writes its winner's value, so write order does not matter
        rank = torch.arange(key.shape[0], device=key.device)
        last = torch.full((ncell + 1,), -1, dtype=torch.long, device=key.device).scatter_reduce_(0, key, rank, "amax")
        flat.scatter_(0, key, score[last[key]])
    return flat[:ncell].view(bs, na, ny, nx)


class _LevelLoss(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        p: Tensor,
        cand: Candidates,
        spec: FusedSpec,
        scale: float,
        prior: Tensor | None,
        buffers: GradBuffers | None,
        key: int,
        ignored: Tensor | None = None,
        multi_hot: Tensor | None = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        dtype = torch.promote_types(p.dtype, torch.float32)
        grid = tuple(p.shape[:4])
        cells = _cells(cand, grid)
        rows = _gather(p, cand, cells).to(dtype)  # [C, 5 + nc]
        box = rows[:, :4].contiguous()
        score = candidate_iou(box, cand, spec, scale).clamp(min=0)
        tobj = _objectness_targets(grid, cand, cells, score, spec)
        xo = p[..., 4].to(dtype).contiguous()  # the one strided read of the objectness channel
        keep = None if ignored is None else _kept_cells(grid, cand, cells, ignored)
        if keep is None:
            lobj = bce_sum(xo, tobj, spec.obj_pw, spec.gamma, spec.alpha) / tobj.numel()
        else:  # ignored cells add 0; the mean still runs over every cell (as darknet's ignore_thresh)
            lobj = torch.where(keep, bce_value(xo, tobj, spec.obj_pw, spec.gamma, spec.alpha), 0.0).sum() / tobj.numel()
        lcls = p.new_zeros((), dtype=dtype)
        if spec.nc > 1 and len(cand):
            if multi_hot is None:
                t_other, t_true = _class_targets(spec, cand.tcls, prior, dtype)
                v = class_row_losses(rows[:, 5:], t_other, t_true, cand.tcls, spec.cls_pw, spec.gamma, spec.alpha)
            else:
                t = _multi_targets(spec, multi_hot, cand.tcls, prior, dtype)
                v = bce_value(rows[:, 5:], t, spec.cls_pw, spec.gamma, spec.alpha).sum(1)
            lcls = _masked_sum(v, cand.valid) / (_count(cand) * spec.nc)
        ctx.save_for_backward(p, xo, tobj, cells)
        ctx.cand, ctx.spec, ctx.prior, ctx.buffers, ctx.key = cand, spec, prior, buffers, key
        ctx.keep, ctx.multi_hot = keep, multi_hot
        return box, lobj, lcls

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, g_box: Tensor, g_obj: Tensor, g_cls: Tensor) -> tuple:
        p, xo, tobj, cells = ctx.saved_tensors
        cand: Candidates = ctx.cand
        spec: FusedSpec = ctx.spec
        buffers: GradBuffers | None = ctx.buffers
        dtype = tobj.dtype
        buf = buffers.get(ctx.key, p) if buffers is not None else torch.empty_like(p)
        go = bce_grad(xo, tobj, spec.obj_pw, spec.gamma, spec.alpha).mul_(g_obj / tobj.numel())
        if ctx.keep is not None:
            go.masked_fill_(~ctx.keep, 0.0)
        buf.zero_()  # the one full write (a memset), then the objectness channel, strided
        buf[..., 4].copy_(go)
        if len(cand):
            if spec.nc > 1:  # the positives' rows again, overwritten in place with their gradient
                rows = _gather(p, cand, cells).to(dtype)
                if ctx.multi_hot is None:
                    t_other, t_true = _class_targets(spec, cand.tcls, ctx.prior, dtype)
                    x = class_grad_(rows[:, 5:], t_other, t_true, cand.tcls, spec.cls_pw, spec.gamma, spec.alpha)
                else:
                    t = _multi_targets(spec, ctx.multi_hot, cand.tcls, ctx.prior, dtype)
                    x = rows[:, 5:]
                    x.copy_(bce_grad(x, t, spec.cls_pw, spec.gamma, spec.alpha))
                x.mul_(g_cls / (_count(cand) * spec.nc))
                if cand.valid is not None:
                    x.masked_fill_(~cand.valid[:, None], 0.0)
            else:
                rows = g_box.new_zeros(len(cand), p.shape[-1])
            rows[:, :4] = g_box
            rows[:, 4] = 0.0
            _scatter_add(buf, cand, cells, rows.to(buf.dtype))
        return buf, None, None, None, None, None, None, None, None


def fused_level_terms(
    p: Tensor,
    cand: Candidates,
    spec: FusedSpec,
    scale: float,
    prior: Tensor | None = None,
    buffers: GradBuffers | None = None,
    key: int = 0,
    ignored: Tensor | None = None,
    multi_hot: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """(box, objectness, class) losses of one level, before gains and balance; the reference's numbers.

    ``ignored``: ``BoolTensor[bs, na, ny, nx]`` cells without objectness loss unless a candidate is positive
    there (:func:`detloss.ignore.region_ignore_mask`). ``multi_hot``: ``Tensor[n, nc]`` of merged multi-label
    targets (:func:`detloss.multilabel.merge_rows`), indexed by the candidates' ``tcls``.
    """
    box, lobj, lcls = _LevelLoss.apply(p, cand, spec, scale, prior, buffers, key, ignored, multi_hot)
    lbox = p.new_zeros((), dtype=lobj.dtype)
    if len(cand):
        iou = candidate_iou(box, cand, spec, scale)
        lbox = _masked_sum(1.0 - iou, cand.valid) / _count(cand)
    return lbox, lobj, lcls
