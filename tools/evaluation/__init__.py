"""Detection evaluation shared by ``tools/eval.py`` and the trainer's validation.

Modules: ``cocojson`` (read/check/write COCO JSON), ``coco`` (pycocotools / faster-coco-eval backends),
``calibration`` (detection ECE), ``evaluate`` (one call: results -> ``EvalResult``), ``report`` (text),
``plots`` (PNG, matplotlib imported lazily) and ``inference`` (model -> COCO results; imports torch, models
and data, so it is not imported here).
"""

from .calibration import Calibration, detection_ece, match_detections
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
    "CocoFormatError",
    "CocoStats",
    "EvalResult",
    "atomic_write_json",
    "check_detections",
    "check_ground_truth",
    "coco80_to_91",
    "coco_evaluate",
    "detection_ece",
    "detections_to_coco",
    "evaluate_results",
    "load_ground_truth",
    "match_detections",
    "read_json",
]
