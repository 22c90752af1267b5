"""The names of the validation metrics, written once.

yolov5's results.csv column names, so its plotting and comparison habits carry over. They are the keys of
:meth:`tools.evaluation.evaluate.EvalResult.metrics`, the columns of ``results.csv``
(``tools/training/results.py``), the TensorBoard tags and what the console's summary reads.
"""

from __future__ import annotations

__all__ = ["D_ECE", "MAP", "MAP50", "METRICS", "PRECISION", "RECALL", "VAL_LOSSES", "fitness"]

PRECISION = "metrics/precision"  # mean over classes at each class's best-F1 point (coco.best_f1_pr)
RECALL = "metrics/recall"
MAP50 = "metrics/mAP_0.5"  # COCO AP at IoU 0.50
MAP = "metrics/mAP_0.5:0.95"  # COCO AP at IoU 0.50:0.95
D_ECE = "metrics/D-ECE"  # detection ECE (calibration.reliability)
METRICS = (PRECISION, RECALL, MAP50, MAP, D_ECE)
VAL_LOSSES = ("val/box_loss", "val/obj_loss", "val/cls_loss")  # the loss items of the same forward pass


def fitness(metrics: dict[str, float]) -> float:
    """yolov5's model-selection score ``0.1 * mAP50 + 0.9 * mAP50-95`` (``utils/metrics.py`` ``fitness``)."""
    return 0.1 * metrics[MAP50] + 0.9 * metrics[MAP]
