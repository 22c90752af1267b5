"""Detection metrics: COCO dicts and numpy arrays in, numbers and plots out. Imports without torch.

Modules: ``cocojson`` (read/check/write COCO JSON, the class-id map), ``boxes`` (numpy box overlap),
``matching`` (detections matched to ground truth once), ``coco`` (pycocotools / faster-coco-eval backends, the
best-F1 P/R reading), ``calibration`` (binned gaps and the D-ECE), ``calib_metrics`` (position-aware D-ECE,
LaECE, the figures at operating thresholds), ``calibrators`` (post-hoc calibration of scores), ``curves`` and
``confusion`` (yolov5's P/R/F1 curves and confusion matrix), ``config`` (``EvalConfig``), ``metric_names``,
``evaluate`` (one call: results -> ``EvalResult``), ``report`` (text), ``plots``, ``calib_plots`` and
``runfigures`` (PNG; matplotlib imported when a figure is drawn).

Running a model to get the results is ``tools.inference``; pictures drawn on images are ``tools.detection``.
Files are written through ``fileio`` (atomic writes, standard library only: no torch).
"""

from .calibration import Calibration, detection_ece, reliability
from .calibrators import Calibrator, apply_calibrator, fit_calibrator
from .coco import BACKENDS, STAT_NAMES, CocoStats, coco_evaluate
from .cocojson import (
    CocoFormatError,
    atomic_write_json,
    check_detections,
    check_ground_truth,
    class_index,
    coco80_to_91,
    detections_to_coco,
    read_json,
)
from .config import EvalConfig
from .evaluate import EvalResult, evaluate_results, load_ground_truth
from .matching import DetectionTable, detection_table, match_detections

__all__ = [
    "BACKENDS",
    "STAT_NAMES",
    "Calibration",
    "Calibrator",
    "CocoFormatError",
    "CocoStats",
    "DetectionTable",
    "EvalConfig",
    "EvalResult",
    "apply_calibrator",
    "atomic_write_json",
    "check_detections",
    "check_ground_truth",
    "class_index",
    "coco80_to_91",
    "coco_evaluate",
    "detection_ece",
    "detection_table",
    "detections_to_coco",
    "evaluate_results",
    "fit_calibrator",
    "load_ground_truth",
    "match_detections",
    "read_json",
    "reliability",
]
