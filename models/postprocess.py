"""Non-maximum suppression of decoded detections, whole batch at once.

Semantics follow ultralytics yolov5 ``utils/general.non_max_suppression``: score = ``obj * cls``, keep
scores above ``conf_thres``, at most ``max_nms`` candidates per image (highest scores), NMS per image
and class (or per image when ``agnostic``), at most ``max_det`` detections per image.

Filtering, ranking and the ``max_nms`` / ``max_det`` limits run on the whole batch without Python
loops. Suppression is one ``torchvision.ops.nms`` call for the batch on CUDA (one per image on CPU, see
``SPLIT_BY_IMAGE_ON``): boxes are shifted apart by group (``image * nc + class``, or ``image`` when
agnostic) so that boxes of different groups never overlap, the trick ``torchvision.ops.batched_nms``
uses. The shift is done in float64, because group offsets of a large batch (e.g. 64 images x 80
classes x 640 px ~ 3e6) would cost float32 sub-pixel precision.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchvision.ops import nms

from detloss.checks import check_int, check_number

# Device types where NMS runs one call per image instead of one for the batch. torchvision's CPU kernel
# costs O(candidates x kept) per call, so one call over a batch of B images costs ~B times the per-image
# calls (timing: docs/notes.md); the CUDA kernel is parallel and a single call is fastest. Both give the same
# detections.
SPLIT_BY_IMAGE_ON = ("cpu",)


def _check(pred: object, conf_thres: float, iou_thres: float, max_det: int, max_nms: int) -> None:
    if not isinstance(pred, Tensor):
        raise ValueError(f"pred must be a torch.Tensor [bs, N, 5 + nc], got {type(pred).__name__}")
    if pred.dim() != 3 or pred.shape[2] < 6:
        raise ValueError(f"pred must have shape (bs, N, 5 + nc) with nc >= 1, got {tuple(pred.shape)}")
    if not pred.is_floating_point():
        raise ValueError(f"pred must be a float tensor, got {pred.dtype}")
    for name, v in (("conf_thres", conf_thres), ("iou_thres", iou_thres)):
        check_number(v, name, 0.0, 1.0)
    for name, n in (("max_det", max_det), ("max_nms", max_nms)):
        check_int(n, name, lo=1)


def _rank_in_image(img: Tensor, score: Tensor, bs: int) -> tuple[Tensor, Tensor]:
    """Order rows by (image ascending, score descending); return that order and each row's rank in its image."""
    order = score.argsort(descending=True)
    order = order[img[order].argsort(stable=True)]
    counts = torch.bincount(img, minlength=bs)
    starts = counts.cumsum(0) - counts
    rank = torch.arange(order.numel(), device=img.device) - starts[img[order]]
    return order, rank


def _nms_offset(boxes: Tensor, scores: Tensor, group: Tensor, iou_thres: float) -> Tensor:
    """One ``nms`` call over all groups: each group shifted by ``group * (extent + 1)`` in float64."""
    b64 = boxes.double()
    lo, hi = b64.min(), b64.max()
    shifted = b64 - lo + (group.double() * (hi - lo + 1.0))[:, None]
    return nms(shifted, scores.double(), iou_thres)


def _nms_per_image(boxes: Tensor, scores: Tensor, group: Tensor, img: Tensor, bs: int, iou_thres: float) -> Tensor:
    """:func:`_nms_offset` on each image's rows (rows must be grouped by image, as ``_rank_in_image`` orders them)."""
    keeps, start = [], 0
    for n in torch.bincount(img, minlength=bs).tolist():
        if n:
            sl = slice(start, start + n)
            keeps.append(_nms_offset(boxes[sl], scores[sl], group[sl], iou_thres) + start)
        start += n
    return torch.cat(keeps)


def non_max_suppression(
    pred: Tensor,
    conf_thres: float = 0.001,
    iou_thres: float = 0.6,
    max_det: int = 300,
    multi_label: bool = False,
    agnostic: bool = False,
    max_nms: int = 30000,
) -> list[Tensor]:
    """Filter and suppress the eval-mode output of a detector.

    Args:
        pred: ``Tensor[bs, N, 5 + nc]`` rows ``[x1, y1, x2, y2, obj, cls_0 .. cls_{nc-1}]``, boxes in pixels,
            obj and cls as probabilities (after sigmoid).
        conf_thres: keep candidates with ``obj * cls > conf_thres``.
        iou_thres: suppress a box whose IoU with a higher-scored box of its group is above this.
        max_det: at most this many detections per image (highest scores).
        multi_label: one candidate per (box, class) above ``conf_thres`` instead of the best class only.
        agnostic: suppress across classes (groups are images only).
        max_nms: at most this many candidates per image go into NMS (highest scores).

    Returns:
        ``bs`` tensors ``Tensor[k_i, 6]`` ``[x1, y1, x2, y2, conf, cls]`` (float32, on ``pred``'s device),
        sorted by descending ``conf``. Candidates with a non-finite box or score are dropped.
    """
    _check(pred, conf_thres, iou_thres, max_det, max_nms)
    bs, _, no = pred.shape
    nc = no - 5
    boxes, conf, cls, img = _candidates(pred.detach().float(), conf_thres, multi_label)

    order, rank = _rank_in_image(img, conf, bs)
    keep = order[rank < max_nms]
    boxes, conf, cls, img = boxes[keep], conf[keep], cls[keep], img[keep]

    if conf.numel():
        group = img if agnostic else img * nc + cls
        keep = _suppress(boxes, conf, group, img, bs, iou_thres)
        boxes, conf, cls, img = boxes[keep], conf[keep], cls[keep], img[keep]

    order, rank = _rank_in_image(img, conf, bs)
    keep = order[rank < max_det]
    out = torch.cat((boxes[keep], conf[keep, None], cls[keep, None].float()), 1)
    counts = torch.bincount(img[keep], minlength=bs).tolist()
    return list(out.split(counts))


def _candidates(p: Tensor, conf_thres: float, multi_label: bool) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(boxes [m, 4], conf [m], cls [m] int64, image index [m])`` of the rows of ``p [bs, N, 5 + nc]`` (float32)
    scoring ``obj * cls > conf_thres``: the best class of each row, or every class above it (``multi_label``).
    Rows with a non-finite box or score are dropped."""
    # obj * cls <= obj, so obj > conf_thres pre-filters without forming the bs x N x nc product
    img, row = (p[..., 4] > conf_thres).nonzero(as_tuple=True)
    cand = p[img, row]  # [m, 5 + nc]
    scores = cand[:, 5:] * cand[:, 4:5]
    if multi_label:
        r, cls = (scores > conf_thres).nonzero(as_tuple=True)
        conf = scores[r, cls]
    else:
        conf, cls = scores.max(1)
        r = (conf > conf_thres).nonzero().flatten()
        conf, cls = conf[r], cls[r]
    boxes, img = cand[r, :4], img[r]
    ok = torch.isfinite(boxes).all(1) & torch.isfinite(conf)
    return boxes[ok], conf[ok], cls[ok], img[ok]


def _suppress(boxes: Tensor, conf: Tensor, group: Tensor, img: Tensor, bs: int, iou_thres: float) -> Tensor:
    """Indices NMS keeps within each ``group``: one batched call, or one per image on the devices in
    :data:`SPLIT_BY_IMAGE_ON` (rows grouped by image)."""
    if boxes.device.type in SPLIT_BY_IMAGE_ON:
        return _nms_per_image(boxes, conf, group, img, bs, iou_thres)
    return _nms_offset(boxes, conf, group, iou_thres)
