"""detloss: YOLO detection losses with label smoothing that reaches the loss.

Public names::

    from detloss import YoloLoss, LossConfig, smooth_BCE
"""

from .assign import LevelTargets, assign_darknet, assign_yolov5
from .boxes import box_area, box_convert, box_iou, wh_iou
from .classification import KLDivLabelSmoothing, LabelSmoothingCrossEntropy, label_smoothing_cross_entropy
from .config import PRESETS, LossConfig, scale_yolov5_hyp
from .decode import decode_grid, decode_wh, decode_xy
from .ignore import split_ignore
from .iou import aligned_iou, iou_loss
from .loss import YoloLoss
from .online_smoothing import OnlineLabelSmoothing
from .online_smoothing_bce import OnlineLabelSmoothingBCE
from .smoothing import (
    class_prior_from_counts,
    k1_targets,
    prior_targets,
    smooth_BCE,
    smooth_BCE_k,
    uniform_targets,
)

__version__ = "0.1.0"  # the one source of the version: setup.cfg reads it (version = attr: detloss.__version__)

__all__ = [
    "KLDivLabelSmoothing",
    "LabelSmoothingCrossEntropy",
    "LevelTargets",
    "LossConfig",
    "OnlineLabelSmoothing",
    "OnlineLabelSmoothingBCE",
    "PRESETS",
    "YoloLoss",
    "aligned_iou",
    "assign_darknet",
    "assign_yolov5",
    "box_area",
    "box_convert",
    "box_iou",
    "class_prior_from_counts",
    "decode_grid",
    "decode_wh",
    "decode_xy",
    "iou_loss",
    "k1_targets",
    "label_smoothing_cross_entropy",
    "prior_targets",
    "scale_yolov5_hyp",
    "smooth_BCE",
    "smooth_BCE_k",
    "split_ignore",
    "uniform_targets",
    "wh_iou",
]
