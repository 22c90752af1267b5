"""Detection evaluation shared by ``tools/eval.py`` and the trainer's validation.

Modules: ``cocojson`` (read/check/write COCO JSON), ``coco`` (pycocotools / faster-coco-eval backends),
``calibration`` (detection ECE), ``calib_metrics`` (D-ECE, position-aware D-ECE, LaECE at operating
thresholds), ``calibrators`` (post-hoc calibration; ``apply_calibrator``), ``evaluate`` (one call: results ->
``EvalResult``), ``report`` (text), ``plots`` (PNG, matplotlib imported lazily) and ``inference`` (model ->
COCO results; imports torch, models and data, so it is not imported here).
"""

from .calibration import Calibration, detection_ece, match_detections
from .calibrators import Calibrator, apply_calibrator, fit_calibrator
from .coco import BACKENDS, STAT_NAMES, CocoStats, coco_evaluate
from .cocojson import (
    CocoFormatError,
    atomic_write_json,
    check_detections,
    check_ground_truth,
    coco80_to_91,
    detections_to_coco,
    read_json,
)
from .evaluate import EvalResult, evaluate_results, load_ground_truth

__all__ = [
    "BACKENDS",
    "STAT_NAMES",
    "Calibration",
    "Calibrator",
    "CocoFormatError",
    "CocoStats",
    "EvalResult",
    "apply_calibrator",
    "atomic_write_json",
    "check_detections",
    "check_ground_truth",
    "coco80_to_91",
    "coco_evaluate",
    "detection_ece",
    "detections_to_coco",
    "fit_calibrator",
    "evaluate_results",
    "load_ground_truth",
    "match_detections",
    "read_json",
]
