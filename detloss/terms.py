"""What the loss trains towards, written once for both BCE kernels: the focal factor, class and objectness targets.

* :func:`focal_factors` / :func:`bce_terms`: (focal) BCE with logits, element-wise (the autograd kernel's term;
  the closed-form kernel, :mod:`detloss.fused_bce`, writes its value and derivative with the same factors).
* :func:`class_targets`: the class targets of positives for every smoothing kind, single- or multi-label, as a
  :class:`ClassTargets` (a value for every class plus the true class's, so the common kinds need no ``[P, nc]``
  tensor).
* :func:`objectness_targets`: ``tobj``, 0 except at positive cells, where the winner's ``(1 - gr) + gr * IoU``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from .smoothing import smooth_BCE, smooth_BCE_k

if TYPE_CHECKING:
    from .online_smoothing_bce import OnlineLabelSmoothingBCE

Target = Tensor | float


def focal_factors(x: Tensor, t: Target, alpha: float) -> tuple[Tensor, Target, Tensor]:
    """``s = sigmoid(x)``, ``a_t = t alpha + (1 - t)(1 - alpha)`` and ``m = 1 - p_t``, ``p_t = t s + (1 - t)(1 - s)``.

    Focal loss (Lin et al. 2017, arXiv 1708.02002, as yolov5 ``FocalLoss``): ``bce * a_t * m**gamma``.
    """
    s = x.sigmoid()
    p_t = t * s + (1 - t) * (1 - s)
    return s, t * alpha + (1 - t) * (1 - alpha), 1.0 - p_t


def bce_terms(
    logits: Tensor, target: Tensor, pos_weight: Tensor | float = 1.0, gamma: float = 0.0, alpha: float = 0.25
) -> Tensor:
    """Element-wise BCE with logits (torch's) and ``pos_weight``; with ``gamma > 0`` the focal form."""
    if not isinstance(pos_weight, Tensor):
        pos_weight = logits.new_full((1,), pos_weight)  # a fill, not a host-to-device copy
    loss = F.binary_cross_entropy_with_logits(logits, target, pos_weight=pos_weight, reduction="none")
    if gamma > 0:
        _, a_t, m = focal_factors(logits, target, alpha)
        loss = loss * a_t * m**gamma
    return loss


@dataclass(frozen=True)
class ClassTargets:
    """Class targets of ``P`` positives (rows of ``nc`` classes).

    Attributes:
        other: the target of every class: a float, ``Tensor[nc]`` or ``Tensor[P, nc]``.
        true: the target of class ``cls[i]`` in row ``i`` (a float or ``Tensor[P]``), or ``None`` when ``other``
            already holds every target (multi-label rows, online smoothing).
        cls: ``LongTensor[P]`` the column of ``true``.
    """

    other: Target
    true: Target | None
    cls: Tensor

    def at_cls(self) -> Target:
        """``other`` at column ``cls`` of each row (a float or ``Tensor[P]``)."""
        if not isinstance(self.other, Tensor):
            return self.other
        if self.other.dim() == 1:
            return self.other[self.cls]
        return self.other[torch.arange(self.cls.shape[0], device=self.cls.device), self.cls]

    def full(self, nc: int, dtype: torch.dtype) -> Tensor:
        """The targets as ``Tensor[P, nc]``."""
        n = self.cls.shape[0]
        t = torch.as_tensor(self.other, dtype=dtype, device=self.cls.device).expand(n, nc)
        if self.true is None:
            return t
        t = t.clone()
        t[torch.arange(n, device=self.cls.device), self.cls] = torch.as_tensor(self.true, dtype=dtype).to(t.device)
        return t


def smoothed_pair(kind: str, eps: float, nc: int, prior: Tensor | None = None) -> tuple[Target, Target]:
    """``(t_pos, t_neg)``: the target of a listed class and of any other, per label-smoothing kind.

    ``"yolo"``: :func:`smooth_BCE` ``(1 - eps/2, eps/2)``; ``"uniform"``: :func:`smooth_BCE_k` ``(1 - eps + eps/K,
    eps/K)``; ``"prior"``: ``(1 - eps + eps * prior, eps * prior)`` (``Tensor[nc]`` each). ``"online"`` starts
    from the ``"yolo"`` pair (:class:`detloss.OnlineLabelSmoothingBCE` keeps its own).
    """
    if kind == "prior":
        if prior is None:
            raise ValueError("label_smoothing_kind='prior' needs a class prior")
        neg = eps * prior
        return neg + (1.0 - eps), neg
    return smooth_BCE(eps) if kind in ("yolo", "online") else smooth_BCE_k(eps, max(nc, 2))


def class_targets(
    tcls: Tensor,
    nc: int,
    eps: float,
    kind: str = "yolo",
    prior: Tensor | None = None,
    multi_hot: Tensor | None = None,
    ols: OnlineLabelSmoothingBCE | None = None,
    dtype: torch.dtype = torch.float32,
) -> ClassTargets:
    """Class targets of positives of classes ``tcls`` (or, with ``multi_hot`` ``Tensor[n, nc]``, of its rows ``tcls``).

    Single-label: ``t_pos`` at the true class, ``t_neg`` elsewhere (:func:`smoothed_pair`). Multi-label: ``t_pos``
    at every listed class. ``ols`` (the ``"online"`` kind): its learned rows
    (:meth:`OnlineLabelSmoothingBCE.soft_targets`, :meth:`~OnlineLabelSmoothingBCE.multi_hot_targets`).
    """
    rows = None if multi_hot is None else multi_hot.index_select(0, tcls)
    if ols is not None:
        t = ols._soft_targets(tcls) if rows is None else ols.multi_hot_targets(rows)
        return ClassTargets(t.to(dtype), None, tcls)
    pos, neg = smoothed_pair(kind, eps, nc, None if prior is None else prior.to(device=tcls.device, dtype=dtype))
    if rows is not None:
        return ClassTargets(torch.where(rows > 0, pos, neg).to(dtype), None, tcls)
    return ClassTargets(neg, pos[tcls] if isinstance(pos, Tensor) else pos, tcls)


def objectness_targets(
    grid: tuple[int, ...], cells: Tensor, valid: Tensor | None, iou: Tensor, gr: float, sort_obj_iou: bool
) -> Tensor:
    """``tobj`` ``Tensor[bs, na, ny, nx]``: 0, or at a positive cell ``(1 - gr) + gr * iou`` of the cell's winner.

    ``cells``: flat cell index of each row; ``iou``: its detached IoU-family value, clamped at 0. Where positives
    share a cell the last row wins (yolov5's ``tobj[b, a, gj, gi] = iou``), or the highest value with
    ``sort_obj_iou``; the winner is chosen explicitly, so the result does not depend on the order of the writes.
    """
    bs, na, ny, nx = grid
    ncell = bs * na * ny * nx
    key = cells if valid is None else torch.where(valid, cells, ncell)  # invalid rows: a scratch slot
    score = (1.0 - gr) + gr * iou if gr < 1 else iou
    flat = score.new_zeros(ncell + 1)
    if sort_obj_iou:  # highest wins; scores are >= 0, so the initial 0 never wins over a positive
        flat.scatter_reduce_(0, key, score, "amax")
    else:  # last row wins: every row of a cell writes its winner's value, so write order does not matter
        rank = torch.arange(key.shape[0], device=key.device)
        last = torch.full((ncell + 1,), -1, dtype=torch.long, device=key.device).scatter_reduce_(0, key, rank, "amax")
        flat.scatter_(0, key, score[last[key]])
    return flat[:ncell].view(bs, na, ny, nx)
