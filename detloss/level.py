"""One level's (box, objectness, class) losses, every rule written once; only the BCE kernel is a choice.

:func:`level_terms` gathers the rows of the assigned cells (:class:`detloss.assign.LevelTargets`, compact or
dense), decodes them and computes, once for both kernels:

* the box loss (:func:`box_terms`): ``1 - IoU`` of the configured kind, or darknet's MSE, averaged over positives;
* the objectness targets (:func:`detloss.terms.objectness_targets`) from the detached IoU;
* the cells whose objectness counts (``keep``): not ignored by darknet's ``ignore_thresh`` or an ignore region
  (:mod:`detloss.ignore`), or a positive's cell;
* the class targets of the positives (``classes``, see :func:`detloss.terms.class_targets`).

Then the BCE terms: ``kernel="fused"`` computes them in closed form and writes the level's gradient once
(:mod:`detloss.fused`); ``kernel="reference"`` uses plain autograd over torch's BCE (:func:`detloss.terms.bce_terms`,
yolov5 ``ComputeLoss``'s shape: indexed positives, a sliced objectness channel; differentiable twice).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from .assign import LevelTargets
from .box_grad import box_loss_grad, mse_rows
from .decode import decode_wh, decode_xy
from .fused import LevelBCE, gather_rows
from .grad_buffer import GradBuffers
from .iou import aligned_iou
from .terms import ClassTargets, bce_terms, objectness_targets

if TYPE_CHECKING:
    from .config import LossConfig

ClassRule = Callable[[Tensor, LevelTargets, torch.dtype], ClassTargets]  # (class logits, rows, dtype) -> targets


def box_terms(box: Tensor, lt: LevelTargets, cfg: LossConfig, scale: float, grid_area: int) -> tuple[Tensor, Tensor]:
    """``(box loss, IoU Tensor[P])`` of the box logits ``box`` (``Tensor[P, 4]``) against their targets.

    The IoU is of ``cfg.box_kind`` (plain IoU with ``"mse"``); it sets the objectness targets.
    """
    pxy = decode_xy(box[:, :2], cfg.decode, scale)
    pwh = decode_wh(box[:, 2:4], lt.anchors.to(box.dtype), cfg.decode)
    pbox, tbox = torch.cat((pxy, pwh), 1), lt.tbox.to(box.dtype)
    if cfg.box_kind == "mse":
        return lt.mean(mse_rows(pbox, tbox, grid_area)), aligned_iou(pbox, tbox, "iou")
    iou = aligned_iou(pbox, tbox, cfg.box_kind)
    return lt.mean(1.0 - iou), iou


def flat_cells(lt: LevelTargets, grid: tuple[int, ...]) -> Tensor:
    """Flat cell index ``((b * na + a) * ny + gj) * nx + gi`` of each row."""
    _, na, ny, nx = grid
    return ((lt.b * na + lt.a) * ny + lt.gj) * nx + lt.gi


def kept_cells(grid: tuple[int, ...], lt: LevelTargets, cells: Tensor, ignored: Tensor) -> Tensor:
    """``BoolTensor[bs, na, ny, nx]``: cells whose objectness counts: not ignored, or a positive's cell."""
    ncell = ignored.numel()
    key = cells if lt.valid is None else torch.where(lt.valid, cells, ncell)
    pos = torch.zeros(ncell + 1, dtype=torch.bool, device=cells.device).index_fill_(0, key, True)
    return ~ignored | pos[:ncell].view(grid)


def level_terms(
    p: Tensor,
    lt: LevelTargets,
    cfg: LossConfig,
    scale: float,
    classes: ClassRule | None,
    ignored: Tensor | None = None,
    kernel: str = "fused",
    buffers: GradBuffers | None = None,
    key: int = 0,
) -> tuple[Tensor, Tensor, Tensor]:
    """(box, objectness, class) losses of one level, before gains and balance.

    Args:
        p: raw logits ``Tensor[bs, na, ny, nx, 5 + nc]`` (any strides).
        lt: the level's assigned rows.
        classes: the class-target rule (``None``: no class term, ``nc == 1``).
        ignored: ``BoolTensor[bs, na, ny, nx]`` cells without objectness loss unless a positive's, or ``None``.
        kernel: ``"fused"`` (closed form, gradient written once) or ``"reference"`` (plain autograd).
        buffers, key: the fused kernel's reusable gradient memory and this level's slot in it.
    """
    dtype = torch.promote_types(p.dtype, torch.float32)  # fp16/bf16 upcast; fp64 stays fp64
    grid = tuple(p.shape[:4])
    cells = flat_cells(lt, grid)
    fused = kernel == "fused"
    reuse = buffers if fused and p.dtype == dtype else None  # rows kept as gathered: reusable memory
    rows = gather_rows(p.detach() if fused else p, lt, cells, reuse, key).to(dtype)  # [P, 5 + nc]
    area = grid[2] * grid[3]
    early = fused and len(lt) > 0 and not torch.compiler.is_compiling()  # box loss + gradient now, once
    if early:
        lbox, iou, g_box = _box_and_grad(rows[:, :4], lt, cfg, scale, area, torch.is_grad_enabled() and p.requires_grad)
    else:
        lbox, g_box = p.new_zeros((), dtype=dtype), None
        with torch.no_grad():
            _, iou = box_terms(rows[:, :4].detach(), lt, cfg, scale, area)
    tobj = objectness_targets(grid, cells, lt.valid, iou.clamp(min=0), cfg.gr, cfg.sort_obj_iou)
    keep = None if ignored is None else kept_cells(grid, lt, cells, ignored)
    ct = None if classes is None or not len(lt) else classes(rows[:, 5:].detach(), lt, dtype)
    if fused:
        box, lbox, lobj, lcls = LevelBCE.apply(p, rows, lt, cells, tobj, keep, ct, cfg, buffers, key, lbox, g_box)
    else:
        box = rows[:, :4]
        obj = bce_terms(p[..., 4].to(dtype), tobj, cfg.obj_pw, cfg.fl_gamma, cfg.fl_alpha)
        lobj = obj.mean() if keep is None else torch.where(keep, obj, 0.0).sum() / obj.numel()
        lcls = p.new_zeros((), dtype=dtype)
        if ct is not None:
            x = rows[:, 5:]
            v = bce_terms(x, ct.full(x.shape[1], dtype), cfg.cls_pw, cfg.fl_gamma, cfg.fl_alpha).mean(1)
            lcls = lt.mean(v)
    if len(lt) and not early:
        lbox, _ = box_terms(box, lt, cfg, scale, area)
    return lbox, lobj, lcls


def _box_and_grad(
    box: Tensor, lt: LevelTargets, cfg: LossConfig, scale: float, area: int, grad: bool
) -> tuple[Tensor, Tensor, Tensor | None]:
    """``(box loss, IoU Tensor[P], d loss / d box Tensor[P, 4] or None)`` of detached box logits: the box loss run
    once, its gradient in closed form (:mod:`detloss.box_grad`) for the fused kernel's backward to scale."""
    if not grad:
        with torch.no_grad():
            lbox, iou = box_terms(box, lt, cfg, scale, area)
        return lbox, iou, None
    return box_loss_grad(box.detach(), lt, cfg, scale, area)
