"""Detection confusion matrix with a background row and column (the layout of yolov5 ``ConfusionMatrix``).

``matrix[p, t]`` counts predictions of class ``p`` matched to ground truths of class ``t``; index ``nc`` is
background: ``matrix[nc, t]`` a ground truth of class ``t`` that no prediction matched (missed), ``matrix[p, nc]``
a prediction of class ``p`` that matched no ground truth (a false positive on background).

Rule, per image:

1. keep predictions with ``conf >= conf_thres`` (default 0.25; yolov5 keeps ``conf > 0.25``);
2. pairs (ground truth, prediction) with ``IoU >= iou_thres`` (default 0.45; yolov5 ``IoU > 0.45``) are
   candidates, whatever the two classes (a box found with the wrong class is a confusion, not a miss);
3. matching is one-to-one and greedy by IoU: the candidate pair of highest IoU is matched, its ground truth
   and prediction leave the pool, repeat (ties: lower ground-truth index, then lower prediction index).
   yolov5 instead keeps each prediction's best ground truth and then each ground truth's best of those,
   which can leave a matchable pair unmatched; greedy matching never does;
4. matched pairs add to ``matrix[p, t]``, unmatched ground truths to ``matrix[nc, t]``, unmatched kept
   predictions to ``matrix[p, nc]``. Crowd ground truths are left out.

``normalised()`` divides each column (true class) by its sum, as yolov5 plots it: column ``t`` then reads
"of the objects of class ``t``, the fraction predicted as each class or missed".
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .boxes import box_overlap
from .cocojson import class_index

__all__ = ["ConfusionMatrix", "confusion_from_coco", "confusion_matrix", "match_greedy"]


@dataclass
class ConfusionMatrix:
    """``matrix``: ``int64 [nc + 1, nc + 1]`` indexed ``[predicted, true]``; the last index is background."""

    matrix: np.ndarray
    names: list[str]
    conf_thres: float
    iou_thres: float

    @property
    def nc(self) -> int:
        return self.matrix.shape[0] - 1

    def normalised(self) -> np.ndarray:
        """Column-normalised ``float [nc + 1, nc + 1]`` (each true class sums to 1; all-zero columns stay 0)."""
        col = self.matrix.sum(0, keepdims=True).astype(np.float64)
        return np.divide(self.matrix, col, out=np.zeros(self.matrix.shape), where=col > 0)

    def tp_fp_fn(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per class ``[nc]``: correct matches, predictions that are not (wrong class or background), misses."""
        m = self.matrix
        tp = np.diag(m)[:-1]
        return tp, m[:-1].sum(1) - tp, m[:, :-1].sum(0) - tp


def match_greedy(iou: np.ndarray, iou_thres: float) -> list[tuple[int, int]]:
    """One-to-one ``(row, col)`` pairs of an IoU matrix, greedy by IoU, only pairs with ``IoU >= iou_thres``."""
    rows, cols = np.nonzero(iou >= iou_thres)
    order = np.lexsort((cols, rows, -iou[rows, cols]))  # IoU descending, then row, then column
    used_r: set[int] = set()
    used_c: set[int] = set()
    pairs = []
    for k in order:
        r, c = int(rows[k]), int(cols[k])
        if r not in used_r and c not in used_c:
            pairs.append((r, c))
            used_r.add(r)
            used_c.add(c)
    return pairs


def _check(a: Any, width: int, what: str) -> np.ndarray:
    arr = np.asarray(a, dtype=np.float64)
    if arr.size == 0:
        return np.zeros((0, width))
    if arr.ndim != 2 or arr.shape[1] != width:
        raise ValueError(f"{what} must be [n, {width}], got shape {arr.shape}")
    return arr


def confusion_matrix(
    preds: Sequence[Any],
    gts: Sequence[Any],
    nc: int,
    names: Sequence[str] | None = None,
    conf_thres: float = 0.25,
    iou_thres: float = 0.45,
) -> ConfusionMatrix:
    """Confusion matrix over images (see the module docstring for the rule).

    Args:
        preds: per image ``[k, 6]`` ``x1, y1, x2, y2, conf, cls`` (any array-like; pixels).
        gts: per image ``[n, 5]`` ``cls, x1, y1, x2, y2`` in the same pixels.
        nc: number of classes; class indices must be in ``0 .. nc-1``.
    """
    if len(preds) != len(gts):
        raise ValueError(f"preds has {len(preds)} images, gts {len(gts)}")
    m = np.zeros((nc + 1, nc + 1), dtype=np.int64)
    for i, (p, g) in enumerate(zip(preds, gts)):
        p = _check(p, 6, f"preds[{i}]")
        g = _check(g, 5, f"gts[{i}]")
        p = p[p[:, 4] >= conf_thres]
        pc, gc = p[:, 5].astype(np.int64), g[:, 0].astype(np.int64)
        for what, idx in (("predicted", pc), ("ground-truth", gc)):
            if idx.size and (idx.min() < 0 or idx.max() >= nc):
                raise ValueError(f"image {i}: {what} class outside 0..{nc - 1}: {sorted(set(idx.tolist()))}")
        pairs = match_greedy(box_overlap(g[:, 1:], p[:, :4]), iou_thres)
        seen_g, seen_p = {r for r, _ in pairs}, {c for _, c in pairs}
        for r, c in pairs:
            m[pc[c], gc[r]] += 1
        for r in set(range(len(g))) - seen_g:
            m[nc, gc[r]] += 1
        for c in set(range(len(p))) - seen_p:
            m[pc[c], nc] += 1
    labels = list(names) if names is not None else [str(k) for k in range(nc)]
    return ConfusionMatrix(m, labels, conf_thres, iou_thres)


def confusion_from_coco(
    gt: dict,
    dt: list[dict],
    cat_ids: Sequence[Any],
    conf_thres: float = 0.25,
    iou_thres: float = 0.45,
    img_ids: Sequence[Any] | None = None,
) -> ConfusionMatrix:
    """:func:`confusion_matrix` of checked COCO ground truth and results; class ``k`` is ``cat_ids[k]``.

    Every image of ``gt`` (or of ``img_ids``) counts, those without detections with their misses. Names
    from ``gt``.
    """
    col = class_index(cat_ids)
    preds: dict[Any, list] = defaultdict(list)
    gts: dict[Any, list] = defaultdict(list)
    for d in dt:
        x, y, w, h = d["bbox"]
        preds[d["image_id"]].append([x, y, x + w, y + h, d["score"], col[d["category_id"]]])
    for a in gt["annotations"]:
        if not a.get("iscrowd", 0):
            x, y, w, h = a["bbox"]
            gts[a["image_id"]].append([col[a["category_id"]], x, y, x + w, y + h])
    ids = [im["id"] for im in gt["images"]] if img_ids is None else list(img_ids)
    names = {c["id"]: str(c.get("name", c["id"])) for c in gt["categories"]}
    return confusion_matrix([preds[i] for i in ids], [gts[i] for i in ids], len(cat_ids),
                            [names.get(c, str(c)) for c in cat_ids], conf_thres, iou_thres)  # fmt: skip
