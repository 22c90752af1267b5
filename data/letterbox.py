"""Letterbox resize (keep aspect ratio, pad) and its inverse for boxes.

Same geometry as yolov5 ``utils/augmentations.letterbox``: scale by ``r = min(H/h0, W/w0)``, round
the resized size, split the padding evenly (the odd pixel goes to the bottom/right). The ratio
returned is the one actually applied per axis (``round(w0 * r) / w0``), so the inverse is exact.
Coordinates: pixels, ``x`` right, ``y`` down, boxes ``xyxy``.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np


def _shape2(new_shape: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    if isinstance(new_shape, int) and not isinstance(new_shape, bool):
        shape = (new_shape, new_shape)
    elif isinstance(new_shape, tuple | list) and len(new_shape) == 2:
        shape = (int(new_shape[0]), int(new_shape[1]))
    else:
        raise ValueError(f"new_shape must be an int or (height, width), got {new_shape!r}")
    if min(shape) <= 0:
        raise ValueError(f"new_shape must be positive, got {new_shape!r}")
    return shape


def letterbox(
    img: np.ndarray,
    new_shape: int | tuple[int, int] = 640,
    color: tuple[int, int, int] = (114, 114, 114),
    auto: bool = False,
    scaleup: bool = True,
    stride: int = 32,
) -> tuple[np.ndarray, tuple[float, float], tuple[float, float]]:
    """Resize ``img`` (``uint8 [H, W, 3]``) into ``new_shape`` (``int`` or ``(height, width)``) keeping its ratio.

    Args:
        color: padding value per channel.
        auto: pad only up to the next multiple of ``stride`` (minimum rectangle) instead of ``new_shape``.
        scaleup: allow enlarging; when False images are only shrunk (better mAP at test time, yolov5).

    Returns:
        ``(out, (rw, rh), (padw, padh))``: ``out`` is ``uint8 [H', W', 3]``; a point ``(x, y)`` of the
        original maps to ``(x * rw + padw, y * rh + padh)`` in ``out`` (``padw``/``padh`` = left/top pad).
    """
    if not isinstance(img, np.ndarray) or img.ndim != 3 or img.shape[0] == 0 or img.shape[1] == 0:
        raise ValueError(f"img must be a non-empty [H, W, C] array, got {getattr(img, 'shape', type(img))}")
    h0, w0 = img.shape[:2]
    nh, nw = _shape2(new_shape)
    r = min(nh / h0, nw / w0)
    if not scaleup:
        r = min(r, 1.0)
    uw, uh = max(1, round(w0 * r)), max(1, round(h0 * r))
    dw, dh = nw - uw, nh - uh
    if auto:
        dw, dh = dw % stride, dh % stride
    if (uw, uh) != (w0, h0):
        interp = cv2.INTER_AREA if r < 1 else cv2.INTER_LINEAR
        img = cv2.resize(img, (uw, uh), interpolation=interp)
    left, top = dw // 2, dh // 2
    out = cv2.copyMakeBorder(img, top, dh - top, left, dw - left, cv2.BORDER_CONSTANT, value=color)
    return out, (uw / w0, uh / h0), (float(left), float(top))


def letterbox_boxes(boxes: Any, ratio: tuple[float, float], pad: tuple[float, float]) -> Any:
    """Map ``xyxy`` pixel boxes ``[N, 4]`` (numpy or torch) of the original image into the letterboxed one."""
    out = _copy(boxes)
    out[:, [0, 2]] = out[:, [0, 2]] * ratio[0] + pad[0]
    out[:, [1, 3]] = out[:, [1, 3]] * ratio[1] + pad[1]
    return out


def unletterbox_boxes(
    boxes: Any, ratio: tuple[float, float], pad: tuple[float, float], orig_shape: tuple[int, int]
) -> Any:
    """Map ``xyxy`` pixel boxes ``[N, 4]`` of the letterboxed image back to the original, clipped to it.

    Pure (input untouched); works on numpy arrays and torch tensors, returns the same kind.
    ``orig_shape`` is ``(h0, w0)``; ``ratio``/``pad`` as returned by :func:`letterbox`.
    """
    if boxes.ndim != 2 or boxes.shape[-1] != 4:
        raise ValueError(f"boxes must be [N, 4] xyxy, got shape {tuple(boxes.shape)}")
    out = _copy(boxes)
    out[:, [0, 2]] = (out[:, [0, 2]] - pad[0]) / ratio[0]
    out[:, [1, 3]] = (out[:, [1, 3]] - pad[1]) / ratio[1]
    h0, w0 = orig_shape
    if isinstance(out, np.ndarray):
        out[:, [0, 2]] = out[:, [0, 2]].clip(0, w0)
        out[:, [1, 3]] = out[:, [1, 3]].clip(0, h0)
    else:
        out[:, [0, 2]] = out[:, [0, 2]].clamp(0, w0)
        out[:, [1, 3]] = out[:, [1, 3]].clamp(0, h0)
    return out


def _copy(boxes: Any) -> Any:
    if isinstance(boxes, np.ndarray):
        return boxes.astype(np.float64 if boxes.dtype == np.float64 else np.float32, copy=True)
    if hasattr(boxes, "clone"):  # torch.Tensor, without importing torch here
        return boxes.clone() if boxes.is_floating_point() else boxes.float()
    raise TypeError(f"boxes must be a numpy array or torch tensor, got {type(boxes).__name__}")
