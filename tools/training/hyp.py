"""``Hyp``: a run's hyperparameters in yolov5's hyp-file layout, as a frozen, validated value.

The field names are yolov5's hyp YAML keys and the defaults ``data/hyps/hyp.scratch-low.yaml``'s values
(ultralytics yolov5; values, not text). A hyp YAML (``--hyp``) overrides some of them; an unknown key is a
``ValueError`` naming it, as ``detloss.LossConfig.from_yolov5_hyp`` does (yolov5's ``hyp.get(key, default)``
falls back silently on a typo). Two yolov5 keys are accepted and not kept: ``anchors`` (an anchor count; the
anchors come from the model) and ``label_smoothing`` (``--label-smoothing`` sets it).

``hyp.yaml`` and a checkpoint's ``hyp`` hold :meth:`Hyp.as_dict` (plain floats), read back by
:meth:`Hyp.from_dict`; the loss converter and ``data``'s augmentation take that dict too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from data.augment import AugConfig
from detloss.checks import check_number
from detloss.config import YOLOV5_LOSS_KEYS, YOLOV5_OTHER_KEYS

__all__ = ["DEFAULT_HYP", "Hyp", "KNOWN_KEYS", "check_hyp", "load_hyp"]

KNOWN_KEYS = set(YOLOV5_LOSS_KEYS) | set(YOLOV5_OTHER_KEYS)
NOT_KEPT = ("anchors", "label_smoothing")  # accepted in a hyp file, not a field (module docstring)


@dataclass(frozen=True)
class Hyp:
    """Hyperparameters (module docstring). Every value a finite number; the optimizer's are >= 0."""

    lr0: float = 0.01  # initial learning rate (SGD 1e-2)
    lrf: float = 0.01  # final learning rate: lr0 * lrf
    momentum: float = 0.937  # SGD momentum / Adam beta1
    weight_decay: float = 0.0005
    warmup_epochs: float = 3.0  # fractions allowed
    warmup_momentum: float = 0.8
    warmup_bias_lr: float = 0.1
    box: float = 0.05  # loss gains (scaled by levels, classes and image size: detloss.scale_yolov5_hyp)
    cls: float = 0.5
    cls_pw: float = 1.0
    obj: float = 1.0
    obj_pw: float = 1.0
    iou_t: float = 0.20  # kept for yolov5 files; nothing reads it (yolov5 neither)
    anchor_t: float = 4.0  # anchor-multiple threshold of assignment and autoanchor
    fl_gamma: float = 0.0
    hsv_h: float = AugConfig.hsv_h  # augmentation: data.augment.AugConfig's defaults, which checks their ranges
    hsv_s: float = AugConfig.hsv_s
    hsv_v: float = AugConfig.hsv_v
    degrees: float = AugConfig.degrees
    translate: float = AugConfig.translate
    scale: float = AugConfig.scale
    shear: float = AugConfig.shear
    perspective: float = AugConfig.perspective
    flipud: float = AugConfig.flipud
    fliplr: float = AugConfig.fliplr
    mosaic: float = AugConfig.mosaic
    mixup: float = AugConfig.mixup
    copy_paste: float = AugConfig.copy_paste

    def __post_init__(self) -> None:
        for f in fields(self):
            lo = 0.0 if f.name in _NON_NEGATIVE else None
            object.__setattr__(self, f.name, check_number(getattr(self, f.name), f"hyp {f.name}", lo))

    def as_dict(self) -> dict[str, float]:
        """The yolov5 hyp dict (``hyp.yaml``, checkpoints, the loss converter, ``data``'s augmentation)."""
        return asdict(self)

    def replace(self, **changes: float) -> Hyp:
        return replace(self, **changes)

    @classmethod
    def from_dict(cls, values: Any, source: str = "hyp") -> Hyp:
        """The defaults updated by a yolov5 hyp mapping; ``ValueError`` naming ``source`` and the bad key."""
        if not isinstance(values, Mapping):
            raise ValueError(f"{source}: expected a mapping of hyperparameters, got {type(values).__name__}")
        unknown = sorted(str(k) for k in values if k not in KNOWN_KEYS)
        if unknown:
            raise ValueError(f"{source}: unknown hyperparameter(s) {unknown}; known: {sorted(KNOWN_KEYS)}")
        kept = {k: v for k, v in values.items() if k not in NOT_KEPT}
        for k, v in kept.items():
            check_number(v, f"{source}: {k}")
        return cls(**kept)


_NON_NEGATIVE = ("lr0", "lrf", "momentum", "weight_decay", "warmup_epochs", "warmup_momentum", "warmup_bias_lr")
DEFAULT_HYP: dict[str, float] = Hyp().as_dict()  # the defaults as a yolov5 hyp dict (Hyp() is the source)


def check_hyp(hyp: Any, source: str = "hyp") -> Hyp:
    """A hyp mapping validated into a :class:`Hyp` (:meth:`Hyp.from_dict`)."""
    return Hyp.from_dict(hyp, source)


def as_hyp(hyp: Hyp | Mapping[str, Any]) -> Hyp:
    """``hyp`` itself, or a mapping of yolov5 keys turned into one (callers that still hold a dict)."""
    return hyp if isinstance(hyp, Hyp) else Hyp.from_dict(hyp)


def load_hyp(path: str | Path | None) -> Hyp:
    """The defaults updated by a yolov5 hyp YAML (missing keys keep their defaults); None: the defaults."""
    if path is None:
        return Hyp()
    import yaml

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"hyp file {str(p)!r} does not exist")
    try:
        loaded = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise ValueError(f"hyp file {str(p)!r} is not valid YAML: {e}") from e
    return Hyp.from_dict(loaded if loaded is not None else {}, f"hyp file {str(p)!r}")
