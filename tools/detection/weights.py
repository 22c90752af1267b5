"""``--weights``: a detloss checkpoint (``.pt``) or a detloss ONNX export (``.onnx``) -> a callable model."""

from __future__ import annotations

import os
from typing import Any

import torch

__all__ = ["is_onnx", "load_weights"]

DEFAULT_IMGSZ = 640


def is_onnx(weights: str | os.PathLike[str]) -> bool:
    return str(weights).lower().endswith(".onnx")


def load_weights(weights: str | os.PathLike[str], device: torch.device) -> tuple[Any, int]:
    """``(model, imgsz)``: the model in eval mode on ``device`` and its natural inference size.

    ``.onnx``: an :class:`tools.detection.onnx_runtime.OnnxDetector`, ``imgsz`` the export's. Else a
    ``models.Detector`` from the checkpoint (EMA weights when present), ``imgsz`` its training size (640 when
    the checkpoint does not say).
    """
    if is_onnx(weights):
        from .onnx_runtime import OnnxDetector

        onnx_model = OnnxDetector(weights, device)
        return onnx_model, onnx_model.imgsz[0]
    from models.checkpoint import load_checkpoint, load_model

    ckpt = load_checkpoint(weights, map_location="cpu")
    imgsz = int((ckpt.get("opt") or {}).get("imgsz", DEFAULT_IMGSZ))
    return load_model(ckpt, map_location=device), imgsz
