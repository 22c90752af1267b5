"""Detection expected calibration error (D-ECE) and the per-bin figures of a reliability diagram.

Definition (Guo et al. 2017, "On Calibration of Modern Neural Networks", for the ECE; Kuppers et al. 2020,
"Multivariate Confidence Calibration for Object Detection", CVPR workshops, for its detection form, here
with confidence as the only feature):

* a detection is *correct* when it matches a ground truth of its image and category at IoU >= ``iou_thres``;
  matching is greedy as in COCO: per image and category, detections in descending confidence each take the
  unmatched non-crowd ground truth of highest IoU (ties: the first in file order). A detection left
  unmatched but covering a crowd region (intersection over the detection's own area >= ``iou_thres``, as
  COCO measures crowd overlap) is ignored, like COCO ignores it: it is neither correct nor wrong;
* detections with confidence >= ``conf_thres`` are put in ``bins`` equal-width confidence bins over [0, 1]
  (bin b holds ``b/B <= conf < (b+1)/B``, the last bin also holds 1.0);
* ``ECE = sum_b (n_b / N) * |acc_b - conf_b|`` with ``n_b`` the bin's count, ``N`` the total, ``acc_b`` the
  fraction of correct detections in the bin and ``conf_b`` their mean confidence. Empty bins add nothing;
  with no detections at all the ECE is 0.

A perfectly calibrated detector has ECE 0: among detections scored 0.8, 80% are correct. Detections are
not capped per image (COCO's maxDets) since calibration concerns every box a user would see.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Calibration", "binned_gaps", "detection_ece", "match_detections", "match_with_iou"]


@dataclass
class Calibration:
    """D-ECE and the reliability-diagram data.

    Attributes:
        ece: the expected calibration error in [0, 1].
        n: number of detections binned (above ``conf_thres``, crowd-ignored ones left out).
        edges: ``[B+1]`` bin edges. counts: ``[B]`` detections per bin.
        accuracy, confidence: ``[B]`` fraction correct and mean confidence per bin (NaN for an empty bin).
    """

    ece: float
    n: int
    edges: np.ndarray
    counts: np.ndarray
    accuracy: np.ndarray
    confidence: np.ndarray
    conf_thres: float = 0.0
    iou_thres: float = 0.5

    def to_dict(self) -> dict:
        """JSON-ready form (empty bins as ``None``)."""

        def clean(a: np.ndarray) -> list:
            return [None if np.isnan(v) else float(v) for v in a]

        return {
            "ece": float(self.ece),
            "n": int(self.n),
            "bins": len(self.counts),
            "conf_thres": float(self.conf_thres),
            "iou_thres": float(self.iou_thres),
            "edges": [float(e) for e in self.edges],
            "counts": [int(c) for c in self.counts],
            "accuracy": clean(self.accuracy),
            "confidence": clean(self.confidence),
        }


def _xywh_to_xyxy(b: np.ndarray) -> np.ndarray:
    return np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], axis=1)


def _overlap(d: np.ndarray, g: np.ndarray, crowd: bool) -> np.ndarray:
    """``[nd, ng]`` IoU of xyxy boxes, or intersection over the detection's area for crowd regions."""
    lt = np.maximum(d[:, None, :2], g[None, :, :2])
    rb = np.minimum(d[:, None, 2:], g[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(axis=2)
    area_d = ((d[:, 2] - d[:, 0]) * (d[:, 3] - d[:, 1]))[:, None]
    area_g = ((g[:, 2] - g[:, 0]) * (g[:, 3] - g[:, 1]))[None, :]
    denom = area_d if crowd else area_d + area_g - inter
    return np.divide(inter, denom, out=np.zeros_like(inter), where=denom > 0)


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
    boxes = _xywh_to_xyxy(np.array([d["bbox"] for d in dt], dtype=np.float64).reshape(-1, 4))
    for key, members in groups.items():
        idx = np.array(members)
        if ids is not None and key[0] not in ids:
            out[idx] = -1
            continue
        anns = gts.get(key, [])
        if not anns:
            continue  # no ground truth of this category in this image: all wrong
        idx = idx[np.argsort(-scores[idx], kind="stable")]
        g = _xywh_to_xyxy(np.array([a["bbox"] for a in anns], dtype=np.float64))
        crowd = np.array([bool(a.get("iscrowd", 0)) for a in anns])
        d = boxes[idx]
        if (~crowd).any():
            iou = _overlap(d, g[~crowd], crowd=False)
            iou[iou < iou_thres] = -1.0  # below threshold: never a match
            for row in np.flatnonzero((iou >= 0).any(axis=1)):  # sequential in confidence order
                j = int(np.argmax(iou[row]))
                if iou[row, j] >= 0:
                    out[idx[row]] = 1
                    matched_iou[idx[row]] = iou[row, j]
                    iou[:, j] = -1.0  # that ground truth is taken
        if crowd.any():
            on_crowd = (_overlap(d, g[crowd], crowd=True) >= iou_thres).any(axis=1)
            out[idx[on_crowd & (out[idx] == 0)]] = -1
    return out, matched_iou


def detection_ece(
    gt: dict,
    dt: list[dict],
    bins: int = 10,
    conf_thres: float = 0.0,
    iou_thres: float = 0.5,
    img_ids: Any = None,
) -> Calibration:
    """D-ECE of COCO bbox results ``dt`` (checked by ``cocojson.check_detections``) against ``gt``.

    Args:
        bins: number of equal-width confidence bins. conf_thres: detections below it are left out.
        iou_thres: IoU for a detection to count as correct. img_ids: only these images (default: all).
    """
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    if not 0.0 <= conf_thres <= 1.0 or not 0.0 < iou_thres <= 1.0:
        raise ValueError(f"conf_thres must be in [0, 1] and iou_thres in (0, 1], got {conf_thres}, {iou_thres}")
    scores = np.array([d["score"] for d in dt], dtype=np.float64)
    if scores.size and (scores.min() < 0.0 or scores.max() > 1.0):
        raise ValueError(f"calibration needs confidences in [0, 1]; scores span [{scores.min():g}, {scores.max():g}]")
    correct = match_detections(gt, dt, iou_thres, img_ids)
    keep = (correct >= 0) & (scores >= conf_thres)
    conf, ok = scores[keep], correct[keep].astype(np.float64)
    ece, counts, accuracy, confidence = binned_gaps(conf, ok, bins)
    edges = np.linspace(0.0, 1.0, bins + 1)
    return Calibration(ece, int(counts.sum()), edges, counts, accuracy, confidence, conf_thres, iou_thres)


def bin_index(values: np.ndarray, bins: int) -> np.ndarray:
    """Equal-width bin of each value in [0, 1]: ``floor(v * bins)``, 1.0 in the last bin (``int64``)."""
    return np.clip(np.floor(np.asarray(values, dtype=np.float64) * bins).astype(np.int64), 0, bins - 1)


def binned_gaps(
    conf: np.ndarray, target: np.ndarray, bins: int, which: np.ndarray | None = None, n_bins: int | None = None
) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """The binned calibration error ``sum_b (n_b / N) |mean(target)_b - mean(conf)_b|`` and its per-bin figures.

    ``target`` is what confidence should equal on average: 1/0 correctness for D-ECE, the IoU of a true
    positive (0 for a false positive) for LaECE. Bins: equal-width confidence bins (:func:`bin_index`), or the
    given flat ``which`` indices in ``[0, n_bins)`` (joint bins of several features). Returns
    ``(ece, counts, mean target, mean conf)``; empty bins count nothing and have NaN means; no samples: 0.
    """
    if which is None:
        which = bin_index(conf, bins)
    n_bins = bins if n_bins is None else n_bins
    counts = np.bincount(which, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.bincount(which, weights=target, minlength=n_bins) / counts
        confidence = np.bincount(which, weights=conf, minlength=n_bins) / counts
    n = int(counts.sum())
    gaps = np.where(counts > 0, np.abs(accuracy - confidence), 0.0)
    ece = float((counts * gaps).sum() / n) if n else 0.0
    return ece, counts, accuracy, confidence
