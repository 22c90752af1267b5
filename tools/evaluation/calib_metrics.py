"""Calibration metrics of a detector, all reported at a stated confidence threshold with their detection count.

Detections are matched to ground truth once (:func:`tools.evaluation.matching.detection_table`: greedy,
COCO-style, IoU >= ``iou_thres``, crowd-only matches ignored) into a ``DetectionTable``; the metrics are
then functions of the table's rows with ``score >= conf_thres``:

* **D-ECE** (confidence only; Kuppers et al. 2020, "Multivariate Confidence Calibration for Object Detection",
  CVPR workshops, eq. 3 with confidence as the only feature): ``sum_b (n_b / N) |prec_b - conf_b|`` over
  ``bins`` equal-width confidence bins, ``prec_b`` the fraction of true positives in bin b
  (:func:`tools.evaluation.calibration.reliability`).
* **Position-aware D-ECE** (the same paper's multivariate form): the same sum over *joint* bins of the
  five features ``(conf, cx, cy, w, h)``, box centre and size normalised by the image width and height to
  [0, 1]. Default 5 equal-width bins per feature, i.e. ``5**5 = 3125`` joint bins (netcal's
  ``ECE(5, detection=True)`` on the same five columns gives the same number). Many bins hold one or two
  detections, which biases the value upwards on small sets: compare it only between models evaluated on
  the same images, and read ``n``.
* **LaECE** (Oksuz et al. 2023, "Towards Building Self-Aware Object Detectors via Reliable Uncertainty
  Quantification and Calibration", CVPR): per class c, over ``bins`` (25 in the paper) equal-width
  confidence bins, ``LaECE_c = sum_j (n_j^c / N^c) |conf_j^c - acc_j^c|`` where ``acc_j^c`` is the mean
  over the bin's detections of the IoU with the matched ground truth for a true positive and 0 for a false
  positive (i.e. precision times mean IoU of the true positives); ``LaECE = mean_c LaECE_c`` over the
  classes with at least one detection above the threshold. A detector is LaECE-calibrated when its
  confidence predicts the IoU it will achieve. We validate true positives at IoU 0.5 like the D-ECE; pass
  another ``iou_thres`` to follow a different protocol.

``OPERATING_POINTS = (0.25, 0.001)``: the usual deployment threshold and the yolov5 ``val.py`` threshold
(mAP is computed over the latter). Every figure states its threshold and detection count.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .calibration import bin_index, binned_gaps, reliability
from .matching import DetectionTable

__all__ = ["OPERATING_POINTS", "CalibrationFigures", "calibration_figures", "laece", "position_ece"]

OPERATING_POINTS = (0.25, 0.001)


def position_ece(table: DetectionTable, conf_thres: float, bins: int | tuple[int, ...] = 5) -> tuple[float, int]:
    """Position-aware D-ECE over joint ``(conf, cx, cy, w, h)`` bins; returns ``(ece, n)``.

    ``bins``: one count for all five features or five counts. Raises ``ValueError`` when a detection's image
    has no width/height (the box cannot be normalised).
    """
    per = (bins,) * 5 if isinstance(bins, int) else tuple(bins)
    if len(per) != 5 or any(b < 1 for b in per):
        raise ValueError(f"bins must be an int >= 1 or five of them (conf, cx, cy, w, h), got {bins!r}")
    keep = table.above(conf_thres)
    feats = np.concatenate([table.score[keep, None], table.box[keep]], axis=1)
    if np.isnan(feats).any():
        raise ValueError("position-aware D-ECE needs each image's width and height in the ground truth")
    flat = np.zeros(len(feats), dtype=np.int64)
    for k, b in enumerate(per):
        flat = flat * b + bin_index(np.clip(feats[:, k], 0.0, 1.0), b)
    ece, counts, _, _ = binned_gaps(feats[:, 0], table.correct[keep].astype(np.float64), 0, flat, int(np.prod(per)))
    return ece, int(counts.sum())


def laece(table: DetectionTable, conf_thres: float, bins: int = 25) -> tuple[float, dict[str, float], int]:
    """LaECE (see the module docstring); returns ``(mean over classes, {class name: LaECE_c}, n)``."""
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    keep = table.above(conf_thres)
    per_class: dict[str, float] = {}
    for c, name in enumerate(table.names):
        m = keep & (table.cls == c)
        if m.any():
            per_class[name] = binned_gaps(table.score[m], table.iou[m], bins)[0]
    value = float(np.mean(list(per_class.values()))) if per_class else 0.0
    return value, per_class, int(keep.sum())


@dataclass
class CalibrationFigures:
    """The calibration figures at one operating threshold: ``n`` detections with ``score >= conf_thres``."""

    conf_thres: float
    n: int
    d_ece: float
    d_ece_position: float | None
    laece: float
    laece_per_class: dict[str, float] = field(default_factory=dict)
    d_ece_per_class: dict[str, float] = field(default_factory=dict)

    def line(self) -> str:
        pos = "n/a (no image sizes)" if self.d_ece_position is None else f"{self.d_ece_position:.4f}"
        return (
            f"conf >= {self.conf_thres:g}: {self.n} detections, D-ECE {self.d_ece:.4f}, position D-ECE {pos}, "
            f"LaECE {self.laece:.4f}"
        )

    def to_dict(self) -> dict:
        return {
            "conf_thres": self.conf_thres,
            "n": self.n,
            "D-ECE": self.d_ece,
            "D-ECE_position": self.d_ece_position,
            "LaECE": self.laece,
            "LaECE_per_class": dict(self.laece_per_class),
            "D-ECE_per_class": dict(self.d_ece_per_class),
        }


def calibration_figures(
    table: DetectionTable, thresholds: tuple[float, ...] = OPERATING_POINTS, bins: int = 10
) -> list[CalibrationFigures]:
    """D-ECE (``bins`` bins, overall and per class), position-aware D-ECE and LaECE at each threshold."""
    out = []
    for t in thresholds:
        if not 0.0 <= t <= 1.0:
            raise ValueError(f"operating thresholds must be in [0, 1], got {t}")
        try:
            pos: float | None = position_ece(table, t)[0]
        except ValueError:
            pos = None
        lae, lae_c, n = laece(table, t)
        per = {
            name: reliability(table, t, bins, c).ece
            for c, name in enumerate(table.names)
            if (table.above(t) & (table.cls == c)).any()
        }
        out.append(CalibrationFigures(t, n, reliability(table, t, bins).ece, pos, lae, lae_c, per))
    return out
