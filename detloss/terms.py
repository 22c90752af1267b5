"""Per-element loss terms shared by the loss paths: (focal) BCE with logits and class targets."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .smoothing import smooth_BCE, smooth_BCE_k


def bce_terms(logits: Tensor, target: Tensor, pos_weight: Tensor, gamma: float = 0.0, alpha: float = 0.25) -> Tensor:
    """Element-wise BCE with logits and ``pos_weight``; with ``gamma > 0`` the focal form.

    Focal (Lin et al. 2017, arXiv 1708.02002, as yolov5 ``FocalLoss``):
    ``bce * (t*alpha + (1-t)*(1-alpha)) * (1 - p_t)**gamma``, ``p_t = t*p + (1-t)*(1-p)``.
    """
    loss = F.binary_cross_entropy_with_logits(logits, target, pos_weight=pos_weight, reduction="none")
    if gamma > 0:
        p = logits.sigmoid()
        p_t = target * p + (1 - target) * (1 - p)
        loss = loss * (target * alpha + (1 - target) * (1 - alpha)) * (1.0 - p_t) ** gamma
    return loss


def class_targets(
    tcls: Tensor, nc: int, eps: float, kind: str = "yolo", prior: Tensor | None = None, dtype=torch.float32
) -> Tensor:
    """``Tensor[P, nc]`` BCE targets for positives of classes ``tcls``.

    * ``"yolo"``: true class ``1 - eps/2``, others ``eps/2`` (:func:`smooth_BCE`).
    * ``"uniform"``: ``(1 - eps) * onehot + eps / nc`` (softmax convention).
    * ``"prior"``: ``(1 - eps) * onehot + eps * prior`` (class prior instead of ``1/nc``).
    """
    n = tcls.shape[0]
    if kind == "prior":
        if prior is None:
            raise ValueError("label_smoothing_kind='prior' needs a class prior")
        t = (eps * prior.to(device=tcls.device, dtype=dtype)).expand(n, nc).clone()
        t[torch.arange(n, device=tcls.device), tcls] += 1.0 - eps
        return t
    cp, cn = smooth_BCE(eps) if kind == "yolo" else smooth_BCE_k(eps, max(nc, 2))
    t = torch.full((n, nc), cn, device=tcls.device, dtype=dtype)
    t[torch.arange(n, device=tcls.device), tcls] = cp
    return t
