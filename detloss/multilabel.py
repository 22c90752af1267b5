"""Multi-label boxes (``LossConfig(multi_label=True)``): rows with one box and several classes become one positive.

yolov5 and darknet take each ``[image, class, cx, cy, w, h]`` row as its own positive, so a box listed
with classes 1 and 3 gives two positives on the same cells: each row's class target says ``cn`` for the
other's class, and the later row overwrites the objectness target (yolov5 issues #308, #2143, #3041).

:func:`merge_rows` groups rows of the same image whose four box coordinates agree within
:data:`MULTI_LABEL_TOL` (normalised; a group is the rows matching its first row) and returns one row per
group plus a multi-hot class matrix. The loss assigns, decodes and scores the first row of each group once
(box and objectness counted once) and takes its class target from the matrix: ``cp`` on every listed class,
``cn`` elsewhere (:func:`multi_hot_targets`). Dense, with no host sync: an ``[n, n]`` comparison.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import Tensor

from .fused_assign import Candidates
from .smoothing import smooth_BCE, smooth_BCE_k

MULTI_LABEL_TOL = 1e-5  # normalised box coordinates closer than this are the same box (~0.006 px at 640)


@dataclass(frozen=True)
class MergedTargets:
    """Targets with one representative row per box.

    Attributes:
        targets: ``Tensor[n, 6]``: the input rows, with column 1 replaced by the row's own index ``0..n-1``
            (so an assignment's ``tcls`` indexes ``multi_hot``).
        multi_hot: ``Tensor[n, nc]``: row ``i`` (for a group's first row ``i``) is 1 on each class listed
            for that box; the rows of the other group members are not used.
        first: ``BoolTensor[n]``: whether the row is its group's first row (the one that becomes a positive).
    """

    targets: Tensor
    multi_hot: Tensor
    first: Tensor


@torch.no_grad()
def merge_rows(targets: Tensor, nc: int, tol: float = MULTI_LABEL_TOL) -> MergedTargets:
    """Group the rows of ``targets`` (validated ``[image, class, cx, cy, w, h]``) by image and box."""
    n = targets.shape[0]
    t = targets.detach()
    same = t[:, None, 0] == t[None, :, 0]
    for c in range(2, 6):  # one coordinate at a time: [n, n] temporaries, not [n, n, 4]
        same &= (t[:, None, c] - t[None, :, c]).abs() <= tol
    idx = torch.arange(n, device=t.device)
    lead = torch.where(same, idx[None, :], n).amin(1) if n else idx  # first matching row (itself at the latest)
    multi_hot = torch.zeros(n, nc, device=t.device, dtype=torch.float32)
    multi_hot.index_put_((lead, t[:, 1].long()), torch.ones(n, device=t.device), accumulate=False)
    out = targets.clone()
    out[:, 1] = idx.to(out.dtype)
    return MergedTargets(out, multi_hot, lead == idx)


def multi_hot_targets(multi_hot: Tensor, t_pos: Tensor | float, t_neg: Tensor | float) -> Tensor:
    """Class-target rows: ``t_pos`` where ``multi_hot`` is 1, ``t_neg`` elsewhere (floats or ``Tensor[nc]``).

    The smoothing kinds give ``(t_pos, t_neg)``: ``"yolo"`` ``smooth_BCE(eps)``, ``"uniform"``
    ``smooth_BCE_k(eps, nc)``, ``"prior"`` ``(1 - eps + eps * prior, eps * prior)``.
    """
    return torch.where(multi_hot > 0, t_pos, t_neg).to(multi_hot.dtype)


def smoothed_multi_hot(multi_hot: Tensor, kind: str, eps: float, prior: Tensor | None = None) -> Tensor:
    """:func:`multi_hot_targets` with ``(t_pos, t_neg)`` of a label-smoothing kind (``"yolo"``, ``"uniform"``,
    ``"prior"``), the multi-hot form of :func:`detloss.terms.class_targets`."""
    if kind == "prior":
        if prior is None:
            raise ValueError("label_smoothing_kind='prior' needs a class prior")
        neg = eps * prior.to(device=multi_hot.device, dtype=multi_hot.dtype)
        return multi_hot_targets(multi_hot, neg + (1.0 - eps), neg)
    cp, cn = smooth_BCE(eps) if kind == "yolo" else smooth_BCE_k(eps, max(multi_hot.shape[1], 2))
    return multi_hot_targets(multi_hot, cp, cn)


def first_rows_only(cands: list[Candidates], first: Tensor) -> list[Candidates]:
    """Dense candidates (rows ``[K, na, nt]``, target-minor) with the rows of non-first group members made invalid."""
    out = []
    for c in cands:
        valid = c.valid if c.valid is not None else torch.ones_like(c.b, dtype=torch.bool)
        valid = valid & first.repeat(len(c) // max(first.shape[0], 1))
        out.append(dataclasses.replace(c, valid=valid, count=valid.sum()))
    return out
