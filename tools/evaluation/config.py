"""``EvalConfig``: the settings of one evaluation, as a frozen, validated value (like ``detloss.LossConfig``).

Defaults are yolov5 ``val.py``'s: NMS at confidence 0.001 and IoU 0.6, at most 300 detections an image,
batch 32. ``backend`` picks the COCO evaluator (both give the same numbers; ``faster`` is what the trainer
uses per epoch), ``coco_max_dets`` is COCOeval's largest ``maxDets`` (100: the detections an image that AP
and AR100 rank; raise it for images with more objects, such as a whole aerial scene), ``calib_bins`` /
``calib_conf`` the D-ECE's bins and confidence floor. The model-side fields
(batch, workers, NMS, ``half``) are read by :func:`tools.inference.evaluate.evaluate_model`; the metric-side
ones also by :func:`tools.evaluation.evaluate.evaluate_results`.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, fields

from .coco import BACKENDS

__all__ = ["EvalConfig"]


@dataclass(frozen=True)
class EvalConfig:
    """Settings of an evaluation (module docstring). Bad values raise ``ValueError`` naming the field."""

    batch_size: int = 32
    workers: int = 0
    conf_thres: float = 0.001
    iou_thres: float = 0.6
    max_det: int = 300
    half: bool = False  # fp16 autocast on CUDA (ignored elsewhere)
    backend: str = "pycocotools"
    calib_bins: int = 10
    calib_conf: float = 0.0
    coco_max_dets: int = 100  # COCOeval params.maxDets = [1, 10, coco_max_dets]

    def __post_init__(self) -> None:
        for name in ("batch_size", "max_det", "calib_bins", "coco_max_dets"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"EvalConfig.{name} must be an int >= 1, got {value!r}")
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 0:
            raise ValueError(f"EvalConfig.workers must be an int >= 0, got {self.workers!r}")
        for name in ("conf_thres", "iou_thres", "calib_conf"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ValueError(f"EvalConfig.{name} must be a number in [0, 1], got {value!r}")
        if not isinstance(self.half, bool):
            raise ValueError(f"EvalConfig.half must be a bool, got {self.half!r}")
        if self.backend not in BACKENDS:
            raise ValueError(f"EvalConfig.backend must be one of {BACKENDS}, got {self.backend!r}")

    @classmethod
    def from_args(cls, args: argparse.Namespace, **overrides: object) -> EvalConfig:
        """The fields from an argparse namespace that has them (``tools/eval.py``'s flags; unknown names are
        not read), then ``overrides``; every field the namespace lacks keeps its default."""
        names = {f.name for f in fields(cls)}
        unknown = set(overrides) - names
        if unknown:
            raise ValueError(f"EvalConfig has no field(s) {sorted(unknown)}; fields: {sorted(names)}")
        values = {n: getattr(args, n) for n in names if hasattr(args, n)}
        return cls(**{**values, **overrides})
