"""Multi-label boxes (``LossConfig(multi_label=True)``): rows with one box and several classes become one positive.

yolov5 and darknet take each ``[image, class, cx, cy, w, h]`` row as its own positive, so a box listed
with classes 1 and 3 gives two positives on the same cells: each row's class target says ``cn`` for the
other's class, and the later row overwrites the objectness target (yolov5 issues #308, #2143, #3041).

:func:`merge_rows` groups rows of the same image whose four box coordinates agree within
:data:`MULTI_LABEL_TOL` (normalised; a group is the rows matching its first row) and returns one row per
group plus a multi-hot class matrix. The loss assigns, decodes and scores the first row of each group once
(box and objectness counted once) and takes its class target from the matrix: ``cp`` on every listed class,
``cn`` elsewhere (:func:`detloss.terms.class_targets`). Dense, with no host sync: an ``[n, n]`` comparison.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import Tensor

from .assign import LevelTargets

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


def first_rows_only(levels: list[LevelTargets], first: Tensor) -> list[LevelTargets]:
    """Dense rows (``[K, na, nt]``, target-minor) with the rows of non-first group members made invalid."""
    out = []
    for lt in levels:
        valid = lt.valid if lt.valid is not None else torch.ones_like(lt.b, dtype=torch.bool)
        out.append(dataclasses.replace(lt, valid=valid & first.repeat(len(lt) // max(first.shape[0], 1))))
    return out
