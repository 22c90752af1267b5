"""Shared by test_detect.py and test_export.py: a small demo dataset and a checkpoint that emits confident boxes."""

from __future__ import annotations

from pathlib import Path

import torch

from data.demo import ensure_demo
from data.yaml_io import load_data_yaml
from models import build_model, save_checkpoint

IMGSZ = 64


def demo_and_weights(root: Path, n_val: int = 6) -> tuple[dict, Path]:
    """``(data dict, checkpoint path)``: demo with ``n_val`` val images; an untrained yolov4-tiny-n whose head
    biases are raised (objectness ~0.88, random class biases) so that it gives boxes above conf 0.25."""
    data = load_data_yaml(ensure_demo(root / "demo", n_train=2, n_val=n_val))
    torch.manual_seed(0)
    model = build_model("yolov4-tiny-n", nc=len(data["names"]), names=data["names"])
    with torch.no_grad():
        for conv in model.head.m:
            b = conv.bias.view(model.head.na, model.head.no)
            b[:, 4] = 2.0
            b[:, 5:] = torch.randn_like(b[:, 5:])
    return data, save_checkpoint(root / "w.pt", model, opt={"imgsz": IMGSZ})


def val_images(data: dict) -> list[Path]:
    return sorted((Path(data["path"]) / "images" / "val").iterdir())
