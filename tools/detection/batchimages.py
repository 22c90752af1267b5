"""A batch as one picture (yolov5 ``plot_images``): up to 16 images in a grid, with boxes and class names.

Used for ``train_batch0.jpg`` (the augmented batch the model saw), ``val_batch0_labels.jpg`` and
``val_batch0_pred.jpg``. Tiles are scaled so each is at least ``MIN_TILE`` pixels (small training images
stay readable) and the grid at most ``MAX_SIZE``; each tile carries its file name at the bottom left.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from .annotate import FONT, class_colour, draw_box, label_text

__all__ = ["MAX_IMAGES", "batch_grid", "targets_to_xyxy"]

MAX_IMAGES = 16
MAX_SIZE = 1920
MIN_TILE = 320


def targets_to_xyxy(targets: Any, k: int, w: int, h: int) -> np.ndarray:
    """Rows of image ``k`` of collate targets ``[n, 6]`` ``(image, cls, cx, cy, w, h)`` (normalised) ->
    ``[m, 6]`` ``x1, y1, x2, y2, conf=1, cls`` in pixels of a ``w x h`` image."""
    t = np.asarray(targets.detach().cpu() if isinstance(targets, torch.Tensor) else targets, np.float64).reshape(-1, 6)
    t = t[t[:, 0] == k]
    out = np.ones((len(t), 6))
    out[:, 0], out[:, 2] = (t[:, 2] - t[:, 4] / 2) * w, (t[:, 2] + t[:, 4] / 2) * w
    out[:, 1], out[:, 3] = (t[:, 3] - t[:, 5] / 2) * h, (t[:, 3] + t[:, 5] / 2) * h
    out[:, 5] = t[:, 1]
    return out


def _as_bgr_uint8(imgs: Any) -> np.ndarray:
    """``[bs, 3, H, W]`` RGB (uint8, or float in 0..1) tensor/array -> ``uint8 [bs, H, W, 3]`` BGR."""
    x = imgs.detach().cpu() if isinstance(imgs, torch.Tensor) else torch.as_tensor(np.asarray(imgs))
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"images must be [bs, 3, H, W], got shape {tuple(x.shape)}")
    if x.is_floating_point():
        x = (x.float().clamp(0, 1) * 255).round()
    return np.ascontiguousarray(x.to(torch.uint8).permute(0, 2, 3, 1).numpy()[..., ::-1])


def batch_grid(
    imgs: Any,
    boxes: Sequence[np.ndarray],
    names: Sequence[str],
    paths: Sequence[str] | None = None,
    show_conf: bool = False,
    conf_thres: float = 0.0,
) -> np.ndarray:
    """The grid picture (BGR ``uint8``) of the first ``MAX_IMAGES`` images of a batch.

    Args:
        imgs: ``[bs, 3, H, W]`` RGB, uint8 or float 0..1.
        boxes: per image ``[k, 6]`` ``x1, y1, x2, y2, conf, cls`` in pixels of that ``H x W`` image.
        show_conf: write the score after the class name (predictions); boxes below ``conf_thres`` are skipped.
    """
    arr = _as_bgr_uint8(imgs)[:MAX_IMAGES]
    n, h, w = arr.shape[:3]
    ns = math.ceil(math.sqrt(n))
    scale = max(1.0, MIN_TILE / max(h, w))
    scale = min(scale, MAX_SIZE / (ns * max(h, w)))
    th, tw = max(1, round(h * scale)), max(1, round(w * scale))
    rows = math.ceil(n / ns)
    grid = np.full((rows * th, ns * tw, 3), 255, np.uint8)
    lw = max(1, round(th / 200))
    for k in range(n):
        tile = cv2.resize(arr[k], (tw, th), interpolation=cv2.INTER_LINEAR) if scale != 1 else arr[k].copy()
        det = np.asarray(boxes[k] if k < len(boxes) else np.zeros((0, 6)), np.float64).reshape(-1, 6)
        det = det[det[:, 4] >= conf_thres]
        for x1, y1, x2, y2, conf, cls in det[np.argsort(det[:, 4], kind="stable")]:
            c = int(cls)
            label = label_text(c, conf if show_conf else None, names, False, not show_conf)
            draw_box(tile, (x1 * scale, y1 * scale, x2 * scale, y2 * scale), class_colour(c), label, lw)
        if paths is not None and k < len(paths):
            name = Path(paths[k]).name[:40]
            cv2.putText(tile, name, (4, th - 6), FONT, 0.45, (0, 0, 0), 3, cv2.LINE_AA)
            cv2.putText(tile, name, (4, th - 6), FONT, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
        r, c0 = divmod(k, ns)
        y0, x0 = r * th, c0 * tw
        grid[y0 : y0 + th, x0 : x0 + tw] = tile
        cv2.rectangle(grid, (x0, y0), (x0 + tw - 1, y0 + th - 1), (255, 255, 255), 2)
    return grid
