"""The closed-form BCE kernel (``impl="fused"``, the default): each level's gradient written once, into reusable memory.

Plain autograd (``impl="reference"``, yolov5 ``ComputeLoss``'s shape) indexes the positives
``p[b, a, gj, gi]`` and slices the objectness channel ``p[..., 4]``; the backward of each creates a zero-filled
tensor the size of the predictions (fresh memory, faulted in page by page on a CPU), and the two are summed:
most of the time of the loss.

Here one :class:`torch.autograd.Function` per level (:class:`LevelBCE`) owns the gradient of that level. Its
inputs are what :mod:`detloss.level` computed once for both kernels (the gathered rows, ``tobj``, the kept cells,
the class targets):

* forward: the objectness BCE over the whole grid and the class BCE of the positives in closed form
  (:mod:`detloss.fused_bce`), with one strided read of the objectness channel (kept, ``1/(5+nc)`` of the level, for
  the backward). The box loss (decode and IoU, ordinary autograd: every IoU kind, MSE, every decode style) runs once,
  in :mod:`detloss.level` before this forward, its gradient by the positives' box logits ``Tensor[P, 4]`` taken
  right away (its IoU sets ``tobj``); it comes in as ``lbox, g_box``, is returned as the level's box loss and its
  gradient scaled here. Under ``torch.compile`` (no ``autograd.grad`` inside a graph) the positives' box logits
  are returned instead, the box loss runs on them outside and its gradient comes back into this backward.
* backward: takes one buffer (:class:`detloss.grad_buffer.GradBuffers`: reused on CPU when nothing refers to it
  any more), zeroes it (a memset, or only the last step's rows of the positives when the buffer is unchanged since:
  :meth:`detloss.grad_buffer.GradBuffers.dirty`), writes the objectness gradient ``d BCE / dx`` into channel 4
  (strided), then adds the rows of the positives (box gradient from the caller, class gradient in closed form)
  with ``index_add_`` / ``index_put_(accumulate=True)``: duplicates of a cell sum, as in the backward of indexing.

The backward is not differentiable again (``once_differentiable``); ``impl="reference"`` is. Inputs may have any
strides, including the head's native layout (:func:`head_view`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from .assign import LevelTargets
from .fused_bce import bce_grad, bce_sum, bce_value, class_grad, class_row_losses
from .grad_buffer import GradBuffers
from .terms import ClassTargets

if TYPE_CHECKING:
    from .config import LossConfig

IGNORED_LOGIT = -1e4  # objectness logit put at ignored cells: softplus and sigmoid are exactly 0 there (fp32, fp64)
ROWS_KEY, GRAD_ROWS_KEY = 1000, 2000  # GradBuffers keys of a level's gathered rows and of their gradient rows


def head_view(x: Tensor, na: int) -> Tensor:
    """The head's native output ``Tensor[bs, na*(5+nc), ny, nx]`` as ``Tensor[bs, na, ny, nx, 5+nc]``, without a copy.

    A permuted view: the loss (fused kernel) reads it in place and writes its gradient in the native
    layout, so neither the forward nor the backward of the head pays a permute copy.
    """
    bs, ch, ny, nx = x.shape
    if ch % na:
        raise ValueError(f"head output has {ch} channels, not a multiple of na = {na}")
    return x.view(bs, na, ch // na, ny, nx).permute(0, 1, 3, 4, 2)


def _as_rows(p: Tensor) -> Tensor | None:
    """``p`` as ``Tensor[cells, 5 + nc]`` without a copy (the yolov5 layout), or None (e.g. the native layout)."""
    if p.stride(-1) != 1:
        return None
    try:
        return p.view(-1, p.shape[-1])
    except RuntimeError:
        return None


def gather_rows(p: Tensor, lt: LevelTargets, cells: Tensor, buffers: GradBuffers | None = None, key: int = 0) -> Tensor:
    """``p[b, a, gj, gi]`` (``Tensor[P, 5 + nc]``); whole rows with ``index_select`` where the layout allows, into
    reusable memory (``buffers``, slot ``ROWS_KEY + key``) when given: fresh memory of that size is page-faulted in
    on every call on a CPU (a 10 MB gather took 5x as long as the copy itself)."""
    rows = _as_rows(p)
    if rows is None:
        return p[lt.b, lt.a, lt.gj, lt.gi]
    if buffers is None:
        return rows.index_select(0, cells)
    out = buffers.rows(ROWS_KEY + key, cells.shape[0], rows.shape[1], rows.dtype, rows.device)
    return torch.index_select(rows, 0, cells, out=out)


def _scatter_add(buf: Tensor, lt: LevelTargets, cells: Tensor, rows: Tensor) -> None:
    """``buf[b, a, gj, gi] += rows``, duplicates summed (the backward of indexing)."""
    flat = _as_rows(buf)
    if flat is None:
        buf.index_put_((lt.b, lt.a, lt.gj, lt.gi), rows, accumulate=True)
    elif buf.device.type == "cpu":
        flat.index_add_(0, cells, rows)  # row-wise adds (index_put_ goes element by element on CPU)
    else:
        flat.index_put_((cells,), rows, accumulate=True)  # deterministic on CUDA (sorted)


def _zero_but_objectness(buf: Tensor, buffers: GradBuffers | None, key: int) -> None:
    """Zero ``buf`` but its objectness channel (rewritten whole next): only the positives' rows of the last step
    when the buffer is the one written then and untouched since (:meth:`GradBuffers.dirty`), else a memset."""
    dirty = None if buffers is None else buffers.dirty(key, buf)
    flat = _as_rows(buf)
    if dirty is None or flat is None:
        buf.zero_()
    else:
        flat.index_fill_(0, dirty, 0.0)


def _class_scale(lt: LevelTargets, nc: int) -> Tensor | int:
    return lt.divisor * nc


def _reusable_rows(buffers: GradBuffers | None, key: int, like: Tensor) -> Tensor:
    if buffers is None or not like.is_contiguous():
        return torch.empty_like(like)
    return buffers.rows(key, like.shape[0], like.shape[1], like.dtype, like.device)


class LevelBCE(torch.autograd.Function):
    """``LevelBCE.apply(p, rows, lt, cells, tobj, keep, ct, cfg, buffers, key, lbox, g_box)``: ``(box logits
    Tensor[P, 4], box loss, objectness loss, class loss)`` of one level, the BCE in closed form.

    ``rows``: ``p``'s gathered rows (:func:`gather_rows`, detached); ``keep``: ``BoolTensor[bs, na, ny, nx]`` cells
    whose objectness counts (``None``: all); ``ct``: the positives' class targets (``None``: no class term);
    ``buffers``, ``key``: the reusable gradient memory (``None``: fresh) and this level's slot in it; ``lbox``,
    ``g_box``: the box loss (detached) and its gradient by the box logits ``Tensor[P, 4]`` when it was taken early
    (then the box logits output is unused), else a 0 and ``None`` (the box loss is computed on the box logits output).
    """

    @staticmethod
    def forward(
        ctx: Any,
        p: Tensor,
        rows: Tensor,
        lt: LevelTargets,
        cells: Tensor,
        tobj: Tensor,
        keep: Tensor | None,
        ct: ClassTargets | None,
        cfg: LossConfig,
        buffers: GradBuffers | None,
        key: int,
        lbox: Tensor,
        g_box: Tensor | None,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        pw, gamma, alpha = cfg.obj_pw, cfg.fl_gamma, cfg.fl_alpha
        xo = p[..., 4].to(tobj.dtype).contiguous()  # the one strided read of the objectness channel
        if keep is not None and pw == 1.0 and gamma <= 0:
            # an ignored cell's target is 0 (a positive's cell is always kept), so a logit of IGNORED_LOGIT there
            # gives it exactly 0 loss (softplus underflows) and 0 gradient (sigmoid - 0): the unmasked sums apply
            xo.masked_fill_(~keep, IGNORED_LOGIT)
            keep = None
        if keep is None:
            lobj = bce_sum(xo, tobj, pw, gamma, alpha) / tobj.numel()
        else:  # ignored cells add 0; the mean still runs over every cell (as darknet's ignore_thresh)
            lobj = torch.where(keep, bce_value(xo, tobj, pw, gamma, alpha), 0.0).sum() / tobj.numel()
        lcls = p.new_zeros((), dtype=tobj.dtype)
        if ct is not None:
            v = class_row_losses(rows[:, 5:], ct.other, ct.true, ct.cls, cfg.cls_pw, gamma, alpha)
            v = v if lt.valid is None else torch.where(lt.valid, v, 0.0)
            lcls = v.sum() / _class_scale(lt, rows.shape[1] - 5)
        ctx.save_for_backward(p, xo, tobj, cells, rows)
        ctx.lt, ctx.keep, ctx.ct, ctx.cfg, ctx.buffers, ctx.key, ctx.g_box = lt, keep, ct, cfg, buffers, key, g_box
        return rows[:, :4].contiguous(), lbox.clone(), lobj, lcls

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, g_rows: Tensor, g_lbox: Tensor, g_obj: Tensor, g_cls: Tensor) -> tuple:
        p, xo, tobj, cells, saved_rows = ctx.saved_tensors
        lt: LevelTargets = ctx.lt
        cfg: LossConfig = ctx.cfg
        ct: ClassTargets | None = ctx.ct
        buf = ctx.buffers.get(ctx.key, p) if ctx.buffers is not None else torch.empty_like(p)
        go = bce_grad(xo, tobj, cfg.obj_pw, cfg.fl_gamma, cfg.fl_alpha).mul_(g_obj / tobj.numel())
        if ctx.keep is not None:
            go.masked_fill_(~ctx.keep, 0.0)
        _zero_but_objectness(buf, ctx.buffers, ctx.key)
        buf[..., 4].copy_(go)  # the objectness channel, strided
        if len(lt):
            if ct is not None:  # the positives' gradient rows, from the saved rows into reusable memory
                rows = _reusable_rows(ctx.buffers, GRAD_ROWS_KEY + ctx.key, saved_rows)
                args = (ct.other, ct.true, ct.cls, cfg.cls_pw, cfg.fl_gamma, cfg.fl_alpha)
                x = class_grad(saved_rows[:, 5:], rows[:, 5:], *args)
                x.mul_(g_cls / _class_scale(lt, x.shape[1]))
                if lt.valid is not None:
                    x.masked_fill_(~lt.valid[:, None], 0.0)
            else:
                rows = tobj.new_zeros(len(lt), p.shape[-1])
            rows[:, :4] = g_rows if ctx.g_box is None else ctx.g_box * g_lbox  # box loss outside, or taken early
            rows[:, 4] = 0.0
            _scatter_add(buf, lt, cells, rows.to(buf.dtype))
        if ctx.buffers is not None:
            ctx.buffers.mark(ctx.key, buf, cells)
        return buf, None, None, None, None, None, None, None, None, None, None, None
