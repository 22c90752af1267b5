"""Cells whose objectness gets no loss: ignore regions ("don't care" / crowd boxes) and darknet's ``ignore_thresh``.

Ignore regions (``YoloLoss(..., ignore=...)``): ``Tensor[m, 5]`` rows ``[image, cx, cy, w, h]`` normalised
like the targets. An anchor prediction is ignored when its decoded box (detached) lies mostly inside a region
of its own image: intersection over the *prediction's* area ``>= LossConfig.ignore_iof``. A data pipeline
carries the regions inside the targets as rows of class ``-1``; :func:`split_ignore` separates them.

The mask is dense (every prediction against every region of its image, regions taken in chunks so the
temporary stays near :data:`CHUNK_ELEMS` elements): no ``nonzero``, no ``.item()``, no host sync.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .boxes import box_iou
from .decode import decode_grid
from .validate import check_targets_values

IGNORE_CLASS = -1  # class id of an ignore region inside a targets tensor
CHUNK_ELEMS = 1 << 22  # predictions x regions per chunk of the region mask


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


def check_ignore_shape(ignore: Tensor, device: torch.device) -> None:
    if not isinstance(ignore, Tensor):
        raise ValueError(f"ignore must be a torch.Tensor [m, 5] or None, got {type(ignore).__name__}")
    if ignore.dim() != 2 or ignore.shape[1] != 5:
        raise ValueError(f"ignore must have shape (m, 5) [image, cx, cy, w, h], got {tuple(ignore.shape)}")
    if not ignore.is_floating_point():
        raise ValueError(f"ignore must be a floating-point tensor, got {ignore.dtype}")
    if ignore.device != device:
        raise ValueError(f"ignore is on {ignore.device} but preds on {device}; move it to the same device")


def _as_target_rows(ignore: Tensor, dtype: torch.dtype) -> Tensor:
    """Regions as ``[image, 0, cx, cy, w, h]`` rows, so the target checks (class 0 always valid) apply."""
    return torch.cat((ignore[:, :1], torch.zeros_like(ignore[:, :1]), ignore[:, 1:]), 1).to(dtype)


def check_targets_and_ignore(targets: Tensor, ignore: Tensor, bs: int, nc: int) -> None:
    """Value checks of targets and ignore regions together: one host sync when all is well."""
    try:
        check_targets_values(torch.cat((targets, _as_target_rows(ignore, targets.dtype))), bs, nc)
    except ValueError:
        check_targets_values(targets, bs, nc)  # raises when the targets are the bad rows
        try:
            check_targets_values(_as_target_rows(ignore, targets.dtype), bs, 1)
        except ValueError as e:
            msg = str(e).replace("invalid targets", "invalid ignore regions").replace(", num_classes 1", "")
            msg = msg.replace("[image, class, cx, cy, w, h]", "[image, 0, cx, cy, w, h]: ignore rows with class 0")
            raise ValueError(msg) from None
        raise


def _xyxy(b: Tensor) -> Tensor:
    return torch.cat((b[..., :2] - b[..., 2:] / 2, b[..., :2] + b[..., 2:] / 2), -1)


@torch.no_grad()
def region_ignore_mask(
    p: Tensor, ignore: Tensor, anchors: Tensor, decode: str, scale: float, iof_thresh: float
) -> Tensor:
    """``BoolTensor[bs, na, ny, nx]``: predictions whose box is covered ``>= iof_thresh`` by a region of their image.

    Args:
        p: the level's raw logits ``Tensor[bs, na, ny, nx, 5 + nc]`` (any strides; read detached).
        ignore: ``Tensor[m, 5]`` ``[image, cx, cy, w, h]`` normalised (``m >= 1``).
        anchors: ``Tensor[na, 2]`` in grid units (so boxes decode in grid units).
    """
    bs, na, ny, nx, _ = p.shape
    pred = _xyxy(decode_grid(p.detach(), anchors.to(p.device), 1.0, decode, scale).view(bs, -1, 4))
    area = (pred[..., 2] - pred[..., 0]).clamp(min=0) * (pred[..., 3] - pred[..., 1]).clamp(min=0)
    area = area.clamp(min=torch.finfo(area.dtype).tiny)
    ig = ignore.detach().float()
    img = ig[:, 0].long()
    reg = _xyxy(torch.stack((ig[:, 1] * nx, ig[:, 2] * ny, ig[:, 3] * nx, ig[:, 4] * ny), 1))  # no host copy
    hits = torch.zeros(bs, pred.shape[1], device=p.device)
    step = max(1, CHUNK_ELEMS // max(pred.shape[1], 1))
    for s in range(0, ig.shape[0], step):  # the count is a shape: no device read
        b, r = img[s : s + step], reg[s : s + step, None]  # r: [k, 1, 4]
        pb = pred[b]  # [k, A, 4], the predictions of each region's image
        iw = (torch.minimum(pb[..., 2], r[..., 2]) - torch.maximum(pb[..., 0], r[..., 0])).clamp(min=0)
        ih = (torch.minimum(pb[..., 3], r[..., 3]) - torch.maximum(pb[..., 1], r[..., 1])).clamp(min=0)
        hits.index_add_(0, b, (iw * ih / area[b] >= iof_thresh).float())
    return (hits > 0).view(bs, na, ny, nx)


@torch.no_grad()
def darknet_ignore_mask(
    p: Tensor, targets: Tensor, anchors: Tensor, decode: str, scale: float, thresh: float
) -> Tensor:
    """darknet ``ignore_thresh``: cells whose predicted box has IoU above ``thresh`` with a target of its image."""
    bs, na, ny, nx, _ = p.shape
    boxes = decode_grid(p.detach(), anchors.to(p.device), 1.0, decode, scale)  # grid units: stride 1
    tb = targets[:, 2:6].float() * torch.tensor([nx, ny, nx, ny], device=p.device, dtype=torch.float32)
    img = targets[:, 0].long()
    ignore = torch.zeros((bs, na * ny * nx), dtype=torch.bool, device=p.device)
    flat = boxes.view(bs, -1, 4)
    for bi in img.unique().tolist():  # one pass per image that has targets
        ious = box_iou(flat[bi], tb[img == bi], fmt="cxcywh")
        ignore[bi] = ious.amax(1) > thresh
    return ignore.view(bs, na, ny, nx)
