"""Hyperparameters in yolov5's hyp-file layout (``hyp.scratch-low.yaml`` defaults) and their validation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from detloss.checks import check_number
from detloss.config import YOLOV5_LOSS_KEYS, YOLOV5_OTHER_KEYS

# ultralytics yolov5 data/hyps/hyp.scratch-low.yaml (values, not text)
DEFAULT_HYP: dict[str, float] = {
    "lr0": 0.01,
    "lrf": 0.01,
    "momentum": 0.937,
    "weight_decay": 0.0005,
    "warmup_epochs": 3.0,
    "warmup_momentum": 0.8,
    "warmup_bias_lr": 0.1,
    "box": 0.05,
    "cls": 0.5,
    "cls_pw": 1.0,
    "obj": 1.0,
    "obj_pw": 1.0,
    "iou_t": 0.20,
    "anchor_t": 4.0,
    "fl_gamma": 0.0,
    "hsv_h": 0.015,
    "hsv_s": 0.7,
    "hsv_v": 0.4,
    "degrees": 0.0,
    "translate": 0.1,
    "scale": 0.5,
    "shear": 0.0,
    "perspective": 0.0,
    "flipud": 0.0,
    "fliplr": 0.5,
    "mosaic": 1.0,
    "mixup": 0.0,
    "copy_paste": 0.0,
}
KNOWN_KEYS = set(YOLOV5_LOSS_KEYS) | set(YOLOV5_OTHER_KEYS)


def check_hyp(hyp: dict[str, Any], source: str = "hyp") -> dict[str, float]:
    """Validate a hyp dict: known keys only (a misspelling is an error), finite numbers."""
    if not isinstance(hyp, dict):
        raise ValueError(f"{source}: expected a mapping of hyperparameters, got {type(hyp).__name__}")
    unknown = sorted(str(k) for k in hyp if k not in KNOWN_KEYS)
    if unknown:
        raise ValueError(f"{source}: unknown hyperparameter(s) {unknown}; known: {sorted(KNOWN_KEYS)}")
    out: dict[str, float] = {}
    for k, v in hyp.items():
        if k == "anchors":  # yolov5 allows an anchor count here; we take anchors from the model
            continue
        out[k] = check_number(v, f"{source}: {k}")
    return out


def load_hyp(path: str | Path | None) -> dict[str, float]:
    """Defaults updated by a yolov5 hyp YAML (missing keys keep their defaults)."""
    hyp = dict(DEFAULT_HYP)
    if path is None:
        return hyp
    import yaml

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"hyp file {str(p)!r} does not exist")
    try:
        loaded = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise ValueError(f"hyp file {str(p)!r} is not valid YAML: {e}") from e
    hyp.update(check_hyp(loaded if loaded is not None else {}, f"hyp file {str(p)!r}"))
    return hyp
