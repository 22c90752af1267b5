"""``--weights``: a detloss checkpoint (``.pt``) or a detloss ONNX export (``.onnx``) -> a callable model.

The inference size a model was made for is written here once: a checkpoint's training ``--imgsz`` (its
``opt``; 640, yolov5's default, when it does not say) or an export's ``imgsz`` metadata.
"""

from __future__ import annotations

import os
from typing import Any

import torch

__all__ = ["DEFAULT_IMGSZ", "checkpoint_imgsz", "is_onnx", "load_weights"]

DEFAULT_IMGSZ = 640


def is_onnx(weights: str | os.PathLike[str]) -> bool:
    return str(weights).lower().endswith(".onnx")


def checkpoint_imgsz(ckpt: dict[str, Any]) -> int:
    """The training image size of a loaded checkpoint (``ckpt["opt"]["imgsz"]``), else ``DEFAULT_IMGSZ``."""
    return int((ckpt.get("opt") or {}).get("imgsz", DEFAULT_IMGSZ))


def load_weights(weights: str | os.PathLike[str], device: torch.device) -> tuple[Any, int, dict | None]:
    """``(model, imgsz, calibrator)``: the model in eval mode on ``device``, its natural inference size and
    the post-hoc calibrator state it carries (``tools/calibrate.py``; None when it has none).

    ``.onnx``: an :class:`tools.inference.onnx_runtime.OnnxDetector`, ``imgsz`` and calibrator from the
    export's metadata. Else a ``models.Detector`` from the checkpoint (EMA weights when present), its convs and
    batch norms folded for inference (:func:`models.fold.folded_for_eval`), and :func:`checkpoint_imgsz`.
    """
    if is_onnx(weights):
        from .onnx_runtime import OnnxDetector

        onnx_model = OnnxDetector(weights, device)
        return onnx_model, onnx_model.imgsz[0], onnx_model.calibrator
    from models.checkpoint import checkpoint_calibrator, load_checkpoint, load_model
    from models.fold import folded_for_eval

    ckpt = load_checkpoint(weights, map_location="cpu")
    model = folded_for_eval(load_model(ckpt, map_location=device))
    return model, checkpoint_imgsz(ckpt), checkpoint_calibrator(ckpt)
