"""Evaluate COCO bbox results (a file or an in-memory list) against a COCO ground truth: one call, one result.

This is the entry point shared by ``tools/eval.py`` and the trainer's per-epoch validation: it checks the
input (``cocojson``), runs the COCO evaluation (``coco``) and the calibration metrics (``calibration``,
``calib_metrics``), and returns an ``EvalResult`` that prints and serialises itself and names its numbers with
``metric_names`` (results.csv, TensorBoard, the console).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import metric_names as mn
from .calib_metrics import CalibrationFigures, calibration_figures
from .calibration import Calibration, reliability
from .coco import STAT_NAMES, CocoStats, best_f1_pr, coco_evaluate, mean_pr
from .cocojson import atomic_write_json, check_detections, check_ground_truth, read_json
from .config import EvalConfig
from .matching import DetectionTable, detection_table
from .report import format_per_class, format_stats

__all__ = ["EvalResult", "evaluate_results", "load_ground_truth"]


@dataclass
class EvalResult:
    """COCO numbers, calibration and counts of one evaluation.

    ``stats`` are the 12 COCOeval numbers (``STAT_NAMES`` order); ``calibration`` is None when it could not be
    computed (scores outside [0, 1]); ``speed`` is milliseconds per image by stage when a model was run;
    ``detections`` and ``ground_truth`` are the checked COCO inputs (kept for the run folder's pictures,
    ``tools.detection.runplots.write_val_plots``).
    """

    coco: CocoStats
    calibration: Calibration | None
    n_images: int
    n_detections: int
    speed: dict[str, float] = field(default_factory=dict)
    # the checked inputs, for the run-folder plots (confusion matrix, P/R/F1 curves); not serialised
    detections: list[dict] = field(default_factory=list, repr=False)
    ground_truth: dict | None = field(default=None, repr=False)
    # D-ECE, position-aware D-ECE and LaECE at each operating threshold (calib_metrics.OPERATING_POINTS)
    figures: list[CalibrationFigures] = field(default_factory=list)
    table: DetectionTable | None = field(default=None, repr=False)  # matched detections, for reliability plots
    before: EvalResult | None = None  # the uncalibrated evaluation when a post-hoc calibrator was applied
    val_loss: list[float] | None = None  # mean loss items over the batches, when a val_loss was given

    @property
    def stats(self) -> list[float]:
        return self.coco.stats

    @property
    def map(self) -> float:
        """AP at IoU .50:.95 (``stats[0]``)."""
        return self.coco.stats[0]

    @property
    def map50(self) -> float:
        """AP at IoU .50 (``stats[1]``)."""
        return self.coco.stats[1]

    def per_class_pr(self) -> list[tuple[float, float]]:
        """Per class (``coco.cat_ids`` order) ``(P, R)`` at its best-F1 point (:func:`coco.best_f1_pr`)."""
        return best_f1_pr(self.coco.precision)

    @property
    def pr(self) -> tuple[float, float]:
        """Mean ``(P, R)`` over the classes with ground truth (yolov5's P and R columns)."""
        return mean_pr(self.per_class_pr())

    def metrics(self) -> dict[str, float]:
        """The validation numbers under their ``metric_names`` (results.csv, TensorBoard, the console): P, R,
        mAP50, mAP50-95, D-ECE (NaN when it could not be computed) and, when a ``val_loss`` ran, the val losses."""
        p, r = self.pr
        ece = self.calibration.ece if self.calibration is not None else float("nan")
        out = {mn.PRECISION: p, mn.RECALL: r, mn.MAP50: float(self.map50), mn.MAP: float(self.map), mn.D_ECE: ece}
        if self.val_loss is not None:
            out.update(zip(mn.VAL_LOSSES, (float(v) for v in self.val_loss)))
        return out

    def to_dict(self) -> dict:
        return {
            "stats": [float(s) for s in self.stats],
            "stat_names": list(STAT_NAMES),
            "per_class": self.coco.per_class,
            "calibration": None if self.calibration is None else self.calibration.to_dict(),
            "backend": self.coco.backend,
            "images": self.n_images,
            "detections": self.n_detections,
            "speed_ms_per_image": self.speed or None,
            "calibration_figures": [f.to_dict() for f in self.figures],
            "before_calibrator": None if self.before is None else self.before.to_dict(),
        }

    def write_json(self, path: str | os.PathLike) -> Path:
        """Write ``to_dict()`` atomically."""
        return atomic_write_json(path, self.to_dict(), indent=2)

    def report(self, per_class: bool = True) -> str:
        """The COCO summary block, the per-class table and the D-ECE line, as printed by ``tools/eval.py``."""
        parts = [format_stats(self.stats, self.coco.max_dets)]
        if per_class:
            parts.append(format_per_class(self.coco.per_class, self.stats, self.n_images))
        if self.calibration is not None:
            c = self.calibration
            parts.append(
                f"D-ECE {c.ece:.4f} over {c.n} detections (conf >= {c.conf_thres:g}, IoU >= {c.iou_thres:g}, "
                f"{len(c.counts)} bins)"
            )
        parts += [f"calibration at {f.line()}" for f in self.figures]
        if self.before is not None:
            b = self.before
            parts.append(f"before the post-hoc calibrator: mAP50-95 {b.map:.4f}, mAP50 {b.map50:.4f}")
            parts += [f"before the post-hoc calibrator, calibration at {f.line()}" for f in b.figures]
        return "\n".join(parts)


def load_ground_truth(gt: str | os.PathLike | dict, reindex_ann_ids: bool = False) -> tuple[dict, str]:
    """Read (if a path) and check a COCO ground truth; returns ``(checked_dict, source_name)``."""
    if isinstance(gt, dict):
        return check_ground_truth(gt, "<ground truth>", reindex_ann_ids), "<ground truth>"
    source = str(gt)
    return check_ground_truth(read_json(gt), source, reindex_ann_ids), source


def evaluate_results(
    gt: str | os.PathLike | dict,
    dt: str | os.PathLike | list,
    config: EvalConfig | None = None,
    img_ids: Sequence[Any] | None = None,
    reindex_ann_ids: bool = False,
) -> EvalResult:
    """Evaluate COCO bbox results against a COCO ground truth.

    Args:
        gt: ground-truth JSON path or dict. dt: results JSON path or list of detection dicts.
        config: ``backend`` (``"pycocotools"``, the reference, or ``"faster"``: faster-coco-eval, same numbers),
            ``calib_bins`` and ``calib_conf`` (the D-ECE's bins and confidence floor) are read; default
            ``EvalConfig()``.
        img_ids: evaluate only these image ids (default: all images of the ground truth).
        reindex_ann_ids: renumber ground-truth annotation ids from 1 (fixes id 0; see ``check_ground_truth``).

    Raises:
        CocoFormatError (a ValueError): malformed files, detections on unknown images or categories.
    """
    cfg = EvalConfig() if config is None else config
    gt_checked, gt_source = load_ground_truth(gt, reindex_ann_ids)
    dt_source = "<detections>" if isinstance(dt, list) else str(dt)
    raw = dt if isinstance(dt, list) else read_json(dt)
    detections = check_detections(raw, gt_checked, dt_source, gt_source)
    if img_ids is not None:
        known = {im["id"] for im in gt_checked["images"]}
        missing = [i for i in img_ids if i not in known]
        if missing:
            raise ValueError(f"img_ids not in the ground truth {gt_source}: {missing[:5]} ({len(missing)} in all)")
    coco = coco_evaluate(gt_checked, detections, cfg.backend, img_ids, cfg.coco_max_dets)
    table: DetectionTable | None = None
    try:
        table = detection_table(gt_checked, detections, 0.5, img_ids)
        cal: Calibration | None = reliability(table, cfg.calib_conf, cfg.calib_bins)
    except ValueError as e:
        if "confidences in [0, 1]" not in str(e):
            raise
        warnings.warn(f"{dt_source}: no calibration: {e}", stacklevel=2)
        cal = None
    ids = set(img_ids) if img_ids is not None else None
    n_images = len(gt_checked["images"]) if ids is None else len(ids)
    n_det = len(detections) if ids is None else sum(d["image_id"] in ids for d in detections)
    figures = [] if table is None else calibration_figures(table, bins=cfg.calib_bins)
    return EvalResult(coco, cal, n_images, n_det, detections=detections, ground_truth=gt_checked, figures=figures,
                      table=table)  # fmt: skip
