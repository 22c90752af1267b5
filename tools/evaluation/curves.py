"""Precision, recall and F1 as functions of the confidence threshold, per class (yolov5's P/R/F1 curves).

For a threshold ``t`` and a class with ``n`` non-crowd ground truths, over the detections of that class with
``score >= t``: ``recall(t) = TP(t) / n``, ``precision(t) = TP(t) / D(t)`` (1 when ``D(t) = 0``, as yolov5's
``np.interp(..., left=1)``), ``F1 = 2 P R / (P + R)`` (0 when both are 0). A detection is a true positive when
``matching.match_detections`` matches it at IoU >= ``iou_thres`` (0.5, yolov5's curves use IoU 0.5): COCO's
greedy matching per image and class in descending score; detections that only overlap crowd regions are
left out. The values are exact counts at each threshold of the grid (no interpolation and, unlike
yolov5's plots, no smoothing). Classes without ground truth are NaN.

Every detection counts (no per-image cap like COCO's maxDets 100): the curves describe the boxes a user
would get at each ``--conf-thres``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .matching import match_detections

__all__ = ["ConfidenceCurves", "confidence_curves"]


@dataclass
class ConfidenceCurves:
    """``conf``: ``[T]`` thresholds; ``precision``, ``recall``, ``f1``: ``[K, T]`` (NaN rows: no ground truth)."""

    conf: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    names: list[str]
    iou_thres: float

    @property
    def valid(self) -> np.ndarray:
        """Indices of the classes with ground truth."""
        return np.flatnonzero(~np.isnan(self.recall[:, 0])) if self.recall.size else np.zeros(0, dtype=np.int64)

    def mean(self, which: str) -> np.ndarray:
        """``[T]`` mean over classes with ground truth of ``"precision"``, ``"recall"`` or ``"f1"``."""
        if which not in ("precision", "recall", "f1"):
            raise ValueError(f"which must be 'precision', 'recall' or 'f1', got {which!r}")
        arr = getattr(self, which)[self.valid]
        return arr.mean(0) if len(arr) else np.zeros_like(self.conf)

    def best_f1(self) -> tuple[float, float]:
        """``(F1, threshold)`` at the maximum of the mean F1 curve."""
        m = self.mean("f1")
        k = int(np.argmax(m))
        return float(m[k]), float(self.conf[k])


def confidence_curves(
    gt: dict,
    dt: list[dict],
    cat_ids: Sequence[Any],
    iou_thres: float = 0.5,
    points: int = 1001,
    img_ids: Any = None,
) -> ConfidenceCurves:
    """P, R and F1 against ``points`` thresholds evenly spaced over [0, 1], class ``k`` = ``cat_ids[k]``.

    ``gt`` / ``dt``: checked COCO ground truth and results (``cocojson``). ``img_ids``: only these images.
    """
    if points < 2:
        raise ValueError(f"points must be >= 2, got {points}")
    conf = np.linspace(0.0, 1.0, points)
    ids = None if img_ids is None else set(img_ids)
    correct = match_detections(gt, dt, iou_thres, img_ids)
    scores = np.array([d["score"] for d in dt], dtype=np.float64)
    cats = np.array([d["category_id"] for d in dt], dtype=object)
    k_n = len(cat_ids)
    p, r, f = (np.full((k_n, points), np.nan) for _ in range(3))
    n_gts = Counter(
        a["category_id"] for a in gt["annotations"] if not a.get("iscrowd", 0) and (ids is None or a["image_id"] in ids)
    )
    for k, c in enumerate(cat_ids):
        n_gt = n_gts[c]
        if n_gt == 0:
            continue
        mine = (cats == c) & (correct >= 0) if len(dt) else np.zeros(0, dtype=bool)
        s = np.sort(scores[mine])
        s_tp = np.sort(scores[mine & (correct == 1)])
        d_at = len(s) - np.searchsorted(s, conf, side="left")  # detections with score >= t
        tp_at = len(s_tp) - np.searchsorted(s_tp, conf, side="left")
        r[k] = tp_at / n_gt
        p[k] = np.divide(tp_at, d_at, out=np.ones(points), where=d_at > 0)
        denom = p[k] + r[k]
        f[k] = np.divide(2 * p[k] * r[k], denom, out=np.zeros(points), where=denom > 0)
    names_by_id = {c["id"]: str(c.get("name", c["id"])) for c in gt["categories"]}
    return ConfidenceCurves(conf, p, r, f, [names_by_id.get(c, str(c)) for c in cat_ids], iou_thres)
