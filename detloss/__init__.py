"""detloss: YOLO detection losses with label smoothing that reaches the loss.

Public names::

    from detloss import YoloLoss, LossConfig, smooth_BCE
"""

from .assign import LevelTargets, assign_darknet, assign_yolov5
from .boxes import box_area, box_convert, box_iou, wh_iou
from .config import PRESETS, LossConfig, scale_yolov5_hyp
from .decode import decode_grid, decode_wh, decode_xy
from .iou import aligned_iou, iou_loss
from .loss import YoloLoss
from .smoothing import smooth_BCE, smooth_BCE_k

__version__ = "0.1.0"

__all__ = [
    "LevelTargets",
    "LossConfig",
    "PRESETS",
    "YoloLoss",
    "aligned_iou",
    "assign_darknet",
    "assign_yolov5",
    "box_area",
    "box_convert",
    "box_iou",
    "decode_grid",
    "decode_wh",
    "decode_xy",
    "iou_loss",
    "scale_yolov5_hyp",
    "smooth_BCE",
    "smooth_BCE_k",
    "wh_iou",
]
