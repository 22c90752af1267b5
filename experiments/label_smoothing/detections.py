"""Where a smoothing setting's detections go wrong: COCO results and ground truth in, numbers out (numpy only).

Multi-label NMS (``eval.py``'s default, as yolov5 ``val.py``) keeps one candidate per (box, class) whose
``obj * cls`` passes the threshold. YOLO smoothing trains every other class towards ``eps/2`` instead of 0, so
each located object can also leave low-score detections of the wrong classes. These figures separate that from
localisation and ranking:

- ``top_class_only``: the detections with, for every (image, box), only the highest-scoring class kept (what a
  single-label NMS would leave); its mAP against the same ground truth says how much mAP the extra classes cost.
- ``class_agnostic``: those detections and the ground truth with one category: the mAP of finding objects,
  whatever their class (objectness x class as a ranking of "is there an object here").
- :func:`wrong_class_fraction`: among detections with ``score >= t``, the fraction that cover an object of
  another class (IoU >= 0.5) and are not correct for their own.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tools.evaluation import match_detections
from tools.evaluation.boxes import box_overlap, xywh_to_xyxy

__all__ = ["class_agnostic", "mean_tp_score", "top_class_only", "wrong_class_fraction"]


def top_class_only(dt: list[dict]) -> list[dict]:
    """For each (image, bbox), only the detection with the highest score (ties: the first)."""
    best: dict[tuple, dict] = {}
    for d in dt:
        key = (d["image_id"], *(round(float(v), 3) for v in d["bbox"]))
        if key not in best or d["score"] > best[key]["score"]:
            best[key] = d
    return list(best.values())


def class_agnostic(gt: dict, dt: list[dict]) -> tuple[dict, list[dict]]:
    """Ground truth and detections with every category mapped to one (id 1, 'object')."""
    anns = [{**a, "category_id": 1} for a in gt["annotations"]]
    return ({**gt, "annotations": anns, "categories": [{"id": 1, "name": "object"}]},
            [{**d, "category_id": 1} for d in dt])  # fmt: skip


def mean_tp_score(gt: dict, dt: list[dict], iou: float = 0.5) -> float:
    """Mean score of the detections that match a ground truth of their class (NaN when none does)."""
    if not dt:
        return float("nan")
    correct = match_detections(gt, dt, iou) == 1
    scores = np.array([d["score"] for d in dt], dtype=np.float64)
    return float(scores[correct].mean()) if correct.any() else float("nan")


def _located_elsewhere(gt: dict, dt: list[dict], iou_thres: float = 0.5) -> np.ndarray:
    """``bool [len(dt)]``: the detection overlaps (IoU >= ``iou_thres``) a ground truth of another class."""
    by_image: dict[Any, list[dict]] = {}
    for a in gt["annotations"]:
        if not a.get("iscrowd", 0):
            by_image.setdefault(a["image_id"], []).append(a)
    out = np.zeros(len(dt), dtype=bool)
    for i, d in enumerate(dt):
        anns = [a for a in by_image.get(d["image_id"], ()) if a["category_id"] != d["category_id"]]
        if anns:
            iou = box_overlap(xywh_to_xyxy(d["bbox"]), xywh_to_xyxy([a["bbox"] for a in anns]))
            out[i] = bool((iou >= iou_thres).any())
    return out


def wrong_class_fraction(gt: dict, dt: list[dict], thresholds: tuple[float, ...] = (0.001, 0.25)) -> dict[str, Any]:
    """``{"wrong_class@t": fraction, "dets@t": count}`` for each threshold ``t`` (NaN fraction when no detection).

    A wrong-class detection is not correct for its own class and overlaps a ground truth of another class at
    IoU >= 0.5 (not one-to-one: every duplicate of a located box in another class counts).
    """
    out: dict[str, Any] = {}
    scores = np.array([d["score"] for d in dt], dtype=np.float64)
    wrong = (match_detections(gt, dt, 0.5) == 0) & _located_elsewhere(gt, dt) if dt else np.zeros(0, dtype=bool)
    for t in thresholds:
        keep = scores >= t
        n = int(keep.sum())
        out[f"wrong_class@{t:g}"] = float(wrong[keep].mean()) if n else float("nan")
        out[f"dets@{t:g}"] = n
    return out
