"""LossConfig: every knob of :class:`detloss.YoloLoss`, frozen and validated.

Presets (``LossConfig.preset(name, **overrides)``):

* ``"yolov5"`` (default; ultralytics yolov5 v7.0 ``hyp.scratch-low.yaml`` + ``ComputeLoss``):
  wh-ratio assignment with neighbour cells, ``2*sigmoid - 0.5`` decode, CIoU, IoU objectness targets.
* ``"yolov4"`` (AlexeyAB darknet ``cfg/yolov4.cfg``): best-anchor shape-IoU assignment plus every anchor
  above ``iou_thresh = 0.213``, ``scale_x_y`` decode (1.2 / 1.1 / 1.05 per level), CIoU with
  ``iou_normalizer = 0.07``, ``ignore_thresh = 0.7``, objectness target 1.
* ``"yolov3"`` (darknet ``cfg/yolov3.cfg``): best anchor only, exp decode, MSE box loss,
  ``ignore_thresh = 0.7``.
"""

from __future__ import annotations

import dataclasses
import math
import types
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .checks import check_choice, check_eps, check_number
from .decode import DECODE_STYLES
from .iou import IOU_KINDS

BOX_KINDS = IOU_KINDS + ("mse",)
ASSIGNERS = ("yolov5", "darknet")
BALANCE_RULES = ("yolov5", "uniform")
SMOOTHING_KINDS = ("yolo", "uniform", "prior", "online")
IMPLS = ("auto", "fused", "reference")
POSITIVES = ("auto", "dense", "compact")

# yolov5 ComputeLoss: per-level objectness weights
YOLOV5_BALANCE_3 = (4.0, 1.0, 0.4)
YOLOV5_BALANCE_N = (4.0, 1.0, 0.25, 0.06, 0.02)

# keys of a yolov5 hyp file that the loss reads, and those it accepts and ignores
YOLOV5_LOSS_KEYS = ("box", "obj", "cls", "cls_pw", "obj_pw", "anchor_t", "fl_gamma", "label_smoothing")
YOLOV5_OTHER_KEYS = (
    "lr0", "lrf", "momentum", "weight_decay", "warmup_epochs", "warmup_momentum", "warmup_bias_lr",
    "iou_t", "anchors", "hsv_h", "hsv_s", "hsv_v", "degrees", "translate", "scale", "shear",
    "perspective", "flipud", "fliplr", "mosaic", "mixup", "copy_paste",
)  # fmt: skip


def _num(name: str, value: Any, lo: float | None = None, hi: float | None = None, lo_open: bool = False) -> None:
    check_number(value, f"LossConfig.{name}", lo, hi, lo_open=lo_open)


def _choice(name: str, value: Any, options: tuple[str, ...]) -> None:
    check_choice(value, f"LossConfig.{name}", options)


@dataclass(frozen=True)
class LossConfig:
    """Hyperparameters of :class:`detloss.YoloLoss` (defaults: the yolov5 preset).

    Attributes:
        box, obj, cls: gains of the three terms (yolov5 hyp ``box``, ``obj``, ``cls``).
        cls_pw, obj_pw: BCE ``pos_weight`` of the class and objectness terms.
        label_smoothing: eps of the class targets, in [0, 1).
        label_smoothing_kind: ``"yolo"`` = :func:`smooth_BCE` ``(1 - eps/2, eps/2)``; ``"uniform"`` =
            softmax convention ``(1 - eps + eps/K, eps/K)``; ``"prior"`` = ``(1 - eps + eps*u(k), eps*u(k))``
            with the class prior ``u`` given to :class:`detloss.YoloLoss` (Szegedy et al. 2016); ``"online"`` =
            online label smoothing (Zhang et al. 2021) adapted to the BCE class branch, see :class:`detloss.YoloLoss`.
        ols_alpha: weight of the hard target in the ``"online"`` kind (``alpha*onehot + (1-alpha)*S[:, y]``).
        fl_gamma, fl_alpha: focal loss (Lin et al. 2017) on class and objectness BCE when gamma > 0.
        box_kind: ``"iou" | "giou" | "diou" | "ciou" | "mse"``.
        decode: ``"yolov5" | "darknet"`` (see :mod:`detloss.decode`).
        scale_x_y: darknet decode scale, one float or one per level.
        balance: per-level objectness weights: a tuple (one per level) or the rule ``"yolov5"``
            (``[4, 1, 0.4]`` for 3 levels, else ``[4, 1, 0.25, 0.06, 0.02][:nl]``) or ``"uniform"``.
        autobalance: yolov5's running objectness re-weighting (normalised to the stride-16 level).
        gr: objectness target at positives is ``(1 - gr) + gr * IoU``.
        sort_obj_iou: when several positives share a cell, the highest IoU wins (else the last).
        assign: ``"yolov5"`` (wh ratio < anchor_t, + 2 neighbour cells) or ``"darknet"``.
        anchor_t: yolov5 wh-ratio threshold (> 1).
        iou_thresh: darknet: anchors with shape IoU above it are positive too (1.0 = best only).
        ignore_thresh: darknet: negatives whose predicted box has IoU above it with a target of the
            same image get no objectness loss (1.0 disables).
        ignore_iof: ignore regions (``YoloLoss(..., ignore=...)``): a prediction whose decoded box has
            intersection over its own area >= this with a region of its image gets no objectness loss,
            in (0, 1]; positives of targets keep theirs (see :mod:`detloss.ignore`).
        multi_label: rows of one image with the same box (within :data:`detloss.multilabel.MULTI_LABEL_TOL`)
            and different classes form one positive with a multi-hot class target (see :mod:`detloss.multilabel`).
        check_finite: raise ``FloatingPointError`` naming the level when a loss term is not finite
            (one host sync per call; disable for speed).
        validate_targets: check target values (NaN, ranges, class ids); costs a sync when targets
            live on the GPU.
        impl: how the BCE terms are computed (the rest of the loss is one implementation): ``"fused"`` (``"auto"``,
            the default): in closed form, each level's gradient written once into reusable memory
            (:mod:`detloss.fused`); ``"reference"``: plain autograd over torch's BCE (yolov5 ``ComputeLoss``'s
            shape; differentiable twice). The same numbers either way.
        positives: ``"dense"`` = fixed-size rows with a validity mask (no host sync, static shapes for CUDA graphs
            and ``torch.compile``; ignore masks compare every prediction with every box of its image);
            ``"compact"`` = only the positives, selected with ``nonzero`` (fewer rows; ignore masks compare only the
            cells a box can reach; a sync on GPU); ``"auto"``: compact on CPU, dense elsewhere.
    """

    box: float = 0.05
    obj: float = 1.0
    cls: float = 0.5
    cls_pw: float = 1.0
    obj_pw: float = 1.0
    label_smoothing: float = 0.0
    label_smoothing_kind: str = "yolo"
    ols_alpha: float = 0.5
    fl_gamma: float = 0.0
    fl_alpha: float = 0.25
    box_kind: str = "ciou"
    decode: str = "yolov5"
    scale_x_y: float | tuple[float, ...] = 1.0
    balance: str | tuple[float, ...] = "yolov5"
    autobalance: bool = False
    gr: float = 1.0
    sort_obj_iou: bool = False
    assign: str = "yolov5"
    anchor_t: float = 4.0
    iou_thresh: float = 1.0
    ignore_thresh: float = 1.0
    ignore_iof: float = 0.5
    multi_label: bool = False
    check_finite: bool = True
    validate_targets: bool = True
    impl: str = "auto"
    positives: str = "auto"

    def __post_init__(self) -> None:
        for name in ("box", "obj", "cls", "fl_gamma"):
            _num(name, getattr(self, name), lo=0.0)
        for name in ("cls_pw", "obj_pw"):
            _num(name, getattr(self, name), lo=0.0, lo_open=True)
        check_eps(self.label_smoothing, "LossConfig.label_smoothing")
        _choice("label_smoothing_kind", self.label_smoothing_kind, SMOOTHING_KINDS)
        _num("fl_alpha", self.fl_alpha, lo=0.0, hi=1.0)
        _num("ols_alpha", self.ols_alpha, lo=0.0, hi=1.0)
        _choice("box_kind", self.box_kind, BOX_KINDS)
        _choice("decode", self.decode, DECODE_STYLES)
        _choice("assign", self.assign, ASSIGNERS)
        scales = self.scale_x_y if isinstance(self.scale_x_y, tuple) else (self.scale_x_y,)
        for s in scales:
            _num("scale_x_y", s, lo=1.0)
        if isinstance(self.scale_x_y, list):
            object.__setattr__(self, "scale_x_y", tuple(self.scale_x_y))
        if isinstance(self.balance, (list, tuple)):
            object.__setattr__(self, "balance", tuple(float(b) for b in self.balance))
            for b in self.balance:
                _num("balance", b, lo=0.0)
        else:
            _choice("balance", self.balance, BALANCE_RULES)
        _num("gr", self.gr, lo=0.0, hi=1.0)
        _num("anchor_t", self.anchor_t, lo=1.0, lo_open=True)
        _num("iou_thresh", self.iou_thresh, lo=0.0, hi=1.0)
        _num("ignore_thresh", self.ignore_thresh, lo=0.0, hi=1.0)
        _num("ignore_iof", self.ignore_iof, lo=0.0, hi=1.0, lo_open=True)
        for name in ("autobalance", "sort_obj_iou", "multi_label", "check_finite", "validate_targets"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"LossConfig.{name} must be a bool, got {getattr(self, name)!r}")
        _choice("impl", self.impl, IMPLS)
        _choice("positives", self.positives, POSITIVES)

    def replace(self, **changes: Any) -> LossConfig:
        """A copy with ``changes`` applied (and validated)."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ValueError(f"unknown LossConfig field(s) {sorted(unknown)}")
        return dataclasses.replace(self, **changes)

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> LossConfig:
        """One of ``PRESETS`` (``"yolov5"``, ``"yolov4"``, ``"yolov3"``) with optional overrides."""
        check_choice(name, "preset", tuple(PRESETS))
        return PRESETS[name].replace(**overrides)

    @classmethod
    def from_yolov5_hyp(cls, hyp: Mapping[str, Any], **overrides: Any) -> LossConfig:
        """Config from a yolov5 hyp dict as ``ComputeLoss`` receives it (already scaled by train.py).

        Loss keys are read; the other keys of a yolov5 hyp file are accepted and ignored; anything
        else (a misspelling, say) is a ``ValueError``.
        """
        if not isinstance(hyp, Mapping):
            raise ValueError(f"hyp must be a mapping, got {type(hyp).__name__}")
        unknown = sorted(k for k in hyp if k not in YOLOV5_LOSS_KEYS and k not in YOLOV5_OTHER_KEYS)
        if unknown:
            raise ValueError(f"unknown yolov5 hyp key(s) {unknown}; loss keys are {YOLOV5_LOSS_KEYS}")
        missing = [k for k in ("box", "obj", "cls", "cls_pw", "obj_pw", "anchor_t", "fl_gamma") if k not in hyp]
        if missing:
            raise ValueError(f"yolov5 hyp is missing required key(s) {missing}")
        values = {k: float(hyp[k]) for k in YOLOV5_LOSS_KEYS if k in hyp}
        return PRESETS["yolov5"].replace(**values, **overrides)


# read-only: a preset changed in place would change every later LossConfig.preset() call
PRESETS: Mapping[str, LossConfig] = types.MappingProxyType({
    "yolov5": LossConfig(),
    "yolov4": LossConfig(
        box=0.07, obj=1.0, cls=1.0, box_kind="ciou", decode="darknet", scale_x_y=(1.2, 1.1, 1.05),
        balance="uniform", gr=0.0, assign="darknet", iou_thresh=0.213, ignore_thresh=0.7,
    ),
    "yolov3": LossConfig(
        box=1.0, obj=1.0, cls=1.0, box_kind="mse", decode="darknet", scale_x_y=1.0,
        balance="uniform", gr=0.0, assign="darknet", iou_thresh=1.0, ignore_thresh=0.7,
    ),
})  # fmt: skip


def yolov5_balance(nl: int) -> tuple[float, ...]:
    if nl == 3:
        return YOLOV5_BALANCE_3
    if nl > len(YOLOV5_BALANCE_N):
        raise ValueError(f"the yolov5 balance rule covers at most {len(YOLOV5_BALANCE_N)} levels, got {nl}")
    return YOLOV5_BALANCE_N[:nl]


# How the class gain follows the number of classes (docs/loss.md, "Gains and their scaling"): yolov5's
# train.py multiplies it by nc/80, which keeps the gradient on each class logit of a positive the same for any
# nc (the class BCE is a mean over nc logits); "sqrt" multiplies by sqrt(nc/80) below 80 classes, more gain for
# few classes, and keeps nc/80 from 80 on (never less than yolov5's gain). "sqrt-cap4" is "sqrt" with at most
# 4 times yolov5's gain, which only changes 2 to 4 classes. Why these rules: docs/notes.md, "detloss/config.py".
CLS_SCALINGS = ("yolov5", "sqrt", "sqrt-cap4")


def class_gain_factor(nc: int, cls_scaling: str = "yolov5") -> float:
    """The factor on ``hyp["cls"]`` for ``nc`` classes before ``3/nl``: ``nc/80`` (yolov5),
    ``max(sqrt(nc/80), nc/80)`` (sqrt), that at most ``4 * nc/80`` (sqrt-cap4)."""
    check_choice(cls_scaling, "cls_scaling", CLS_SCALINGS)
    if cls_scaling == "yolov5":
        return nc / 80
    factor = max(math.sqrt(nc / 80), nc / 80)
    return min(factor, 4 * nc / 80) if cls_scaling == "sqrt-cap4" else factor


def scale_yolov5_hyp(
    hyp: Mapping[str, Any], nl: int, nc: int, imgsz: int, cls_scaling: str = "yolov5"
) -> dict[str, Any]:
    """yolov5 train.py's rescaling: ``box *= 3/nl``, ``cls *= nc/80 * 3/nl``, ``obj *= (imgsz/640)**2 * 3/nl``.
    ``cls_scaling`` (one of :data:`detloss.config.CLS_SCALINGS`) picks the class factor in place of ``nc/80``
    (:func:`detloss.config.class_gain_factor`)."""
    by_nc = class_gain_factor(nc, cls_scaling)
    out = dict(hyp)
    out["box"] = float(hyp["box"]) * 3 / nl
    out["cls"] = float(hyp["cls"]) * by_nc * 3 / nl
    out["obj"] = float(hyp["obj"]) * (imgsz / 640) ** 2 * 3 / nl
    return out
