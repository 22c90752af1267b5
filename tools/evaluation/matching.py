"""Detections matched to ground truth at one IoU threshold: the rule every calibration figure and curve shares.

Rule (COCO's, at one threshold): per image and category, detections in descending confidence each take the
unmatched non-crowd ground truth of highest IoU >= ``iou_thres`` (ties: the first in file order); such a
detection is *correct*. A detection left unmatched but covering a crowd region (intersection over the
detection's own area >= ``iou_thres``, as COCO measures crowd overlap) is *ignored*, like COCO ignores it:
neither correct nor wrong. Everything else is wrong.

:func:`detection_table` runs the rule once over checked COCO results and keeps what the metrics read: score,
correctness, matched IoU, class index and the box normalised by its image size.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np

from .boxes import box_overlap, xywh_to_xyxy
from .cocojson import class_indices

__all__ = ["DetectionTable", "check_scores", "detection_table", "match_detections", "match_with_iou"]


def match_detections(gt: dict, dt: list[dict], iou_thres: float = 0.5, img_ids: Any = None) -> np.ndarray:
    """Greedy COCO-style matching of detections to ground truth at one IoU threshold.

    Returns ``int8 [len(dt)]``: 1 correct, 0 wrong, -1 ignored (matches only a crowd region, or its image
    is outside ``img_ids``). See the module docstring for the rule.
    """
    return match_with_iou(gt, dt, iou_thres, img_ids)[0]


def match_with_iou(
    gt: dict, dt: list[dict], iou_thres: float = 0.5, img_ids: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`match_detections` plus ``float64 [len(dt)]``: the IoU with the matched ground truth (0 unless correct)."""
    if not 0.0 < iou_thres <= 1.0:
        raise ValueError(f"iou_thres must be in (0, 1], got {iou_thres}")
    ids = None if img_ids is None else set(img_ids)
    gts: dict[tuple, list] = defaultdict(list)
    for a in gt["annotations"]:
        gts[a["image_id"], a["category_id"]].append(a)
    groups: dict[tuple, list[int]] = defaultdict(list)
    for i, d in enumerate(dt):
        groups[d["image_id"], d["category_id"]].append(i)
    out = np.zeros(len(dt), dtype=np.int8)
    matched_iou = np.zeros(len(dt), dtype=np.float64)
    if not dt:
        return out, matched_iou
    scores = np.array([d["score"] for d in dt], dtype=np.float64)
    boxes = xywh_to_xyxy([d["bbox"] for d in dt])
    for key, members in groups.items():
        idx = np.array(members)
        if ids is not None and key[0] not in ids:
            out[idx] = -1
            continue
        anns = gts.get(key, [])
        if not anns:
            continue  # no ground truth of this category in this image: all wrong
        idx = idx[np.argsort(-scores[idx], kind="stable")]
        g = xywh_to_xyxy([a["bbox"] for a in anns])
        crowd = np.array([bool(a.get("iscrowd", 0)) for a in anns])
        d = boxes[idx]
        if (~crowd).any():
            iou = box_overlap(d, g[~crowd])
            iou[iou < iou_thres] = -1.0  # below threshold: never a match
            for row in np.flatnonzero((iou >= 0).any(axis=1)):  # sequential in confidence order
                j = int(np.argmax(iou[row]))
                if iou[row, j] >= 0:
                    out[idx[row]] = 1
                    matched_iou[idx[row]] = iou[row, j]
                    iou[:, j] = -1.0  # that ground truth is taken
        if crowd.any():
            on_crowd = (box_overlap(d, g[crowd], over="first") >= iou_thres).any(axis=1)
            out[idx[on_crowd & (out[idx] == 0)]] = -1
    return out, matched_iou


def check_scores(scores: np.ndarray) -> None:
    """Calibration compares confidences with frequencies: ``ValueError`` unless every score is in [0, 1]."""
    if scores.size and (scores.min() < 0.0 or scores.max() > 1.0):
        raise ValueError(f"calibration needs confidences in [0, 1]; scores span [{scores.min():g}, {scores.max():g}]")


@dataclass
class DetectionTable:
    """One row per detection that is not ignored: ``score``, ``correct`` (1/0), ``iou`` (of the matched ground
    truth, 0 for a false positive), ``cls`` (index into ``cat_ids``) and ``box`` ``[n, 4]`` normalised
    ``cx, cy, w, h`` (NaN where the image has no width/height)."""

    score: np.ndarray
    correct: np.ndarray
    iou: np.ndarray
    cls: np.ndarray
    box: np.ndarray
    cat_ids: list[Any]
    names: list[str]
    iou_thres: float = 0.5

    def above(self, conf_thres: float) -> np.ndarray:
        return self.score >= conf_thres


def detection_table(gt: dict, dt: list[dict], iou_thres: float = 0.5, img_ids: Any = None) -> DetectionTable:
    """Match checked COCO results ``dt`` to the checked ground truth ``gt`` (see the module docstring).

    Raises ``ValueError`` when a score is outside [0, 1] (:func:`check_scores`).
    """
    scores = np.array([d["score"] for d in dt], dtype=np.float64)
    check_scores(scores)
    correct, iou = match_with_iou(gt, dt, iou_thres, img_ids)
    cats = [c["id"] for c in gt["categories"]]
    cls = class_indices(dt, cats)
    sizes = {im["id"]: (im.get("width"), im.get("height")) for im in gt["images"]}
    box = np.full((len(dt), 4), np.nan)
    for i, d in enumerate(dt):
        w0, h0 = sizes.get(d["image_id"], (None, None))
        if w0 and h0:
            x, y, w, h = d["bbox"]
            box[i] = ((x + w / 2) / w0, (y + h / 2) / h0, w / w0, h / h0)
    keep = correct >= 0
    names = [str(c.get("name", c["id"])) for c in gt["categories"]]
    return DetectionTable(scores[keep], correct[keep], iou[keep], cls[keep], box[keep], cats, names, iou_thres)
