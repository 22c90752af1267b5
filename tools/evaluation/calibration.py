"""Detection expected calibration error (D-ECE) and the per-bin figures of a reliability diagram.

Definition (Guo et al. 2017, "On Calibration of Modern Neural Networks", for the ECE; Kuppers et al. 2020,
"Multivariate Confidence Calibration for Object Detection", CVPR workshops, for its detection form, here
with confidence as the only feature):

* a detection is *correct* when it matches a ground truth of its image and category at IoU >= ``iou_thres``
  (greedy COCO matching, crowd regions ignored: :mod:`tools.evaluation.matching`);
* detections with confidence >= ``conf_thres`` are put in ``bins`` equal-width confidence bins over [0, 1]
  (bin b holds ``b/B <= conf < (b+1)/B``, the last bin also holds 1.0);
* ``ECE = sum_b (n_b / N) * |acc_b - conf_b|`` with ``n_b`` the bin's count, ``N`` the total, ``acc_b`` the
  fraction of correct detections in the bin and ``conf_b`` their mean confidence. Empty bins add nothing;
  with no detections at all the ECE is 0.

A perfectly calibrated detector has ECE 0: among detections scored 0.8, 80% are correct. Detections are
not capped per image (COCO's maxDets) since calibration concerns every box a user would see.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .matching import DetectionTable, detection_table

__all__ = ["Calibration", "bin_index", "binned_gaps", "detection_ece", "reliability"]


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


def reliability(table: DetectionTable, conf_thres: float, bins: int = 10, cls: int | None = None) -> Calibration:
    """D-ECE with its per-bin figures (a reliability diagram) of a matched table, overall or for class ``cls``.

    The one D-ECE of the package (module docstring): the rows with ``score >= conf_thres`` in :func:`binned_gaps`
    with 1/0 correctness as the target.
    """
    if bins < 1 or not 0.0 <= conf_thres <= 1.0:
        raise ValueError(f"bins must be >= 1 and conf_thres in [0, 1], got {bins}, {conf_thres}")
    keep = table.above(conf_thres) if cls is None else table.above(conf_thres) & (table.cls == cls)
    ece, counts, acc, conf = binned_gaps(table.score[keep], table.correct[keep].astype(np.float64), bins)
    edges = np.linspace(0.0, 1.0, bins + 1)
    return Calibration(ece, int(counts.sum()), edges, counts, acc, conf, conf_thres, table.iou_thres)


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
    return reliability(detection_table(gt, dt, iou_thres, img_ids), conf_thres, bins)
