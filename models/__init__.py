"""models: YOLOv3-tiny / YOLOv4-tiny detectors, NMS post-processing, checkpoints, size profiling.

Used from a checkout (not installed); imports ``detloss`` and torch/torchvision only.

    from models import build_model, non_max_suppression, save_checkpoint, load_model
    model = build_model("yolov4-tiny", nc=80)
"""

from .checkpoint import load_checkpoint, load_model, save_checkpoint
from .detector import MODEL_CFGS, P3_P5_ANCHORS, TINY_ANCHORS, Detector, build_model, cfg_strides
from .head import Detect
from .postprocess import non_max_suppression
from .profile import count_flops, count_params

__all__ = [
    "MODEL_CFGS",
    "P3_P5_ANCHORS",
    "TINY_ANCHORS",
    "Detect",
    "Detector",
    "build_model",
    "cfg_strides",
    "count_flops",
    "count_params",
    "load_checkpoint",
    "load_model",
    "non_max_suppression",
    "save_checkpoint",
]
