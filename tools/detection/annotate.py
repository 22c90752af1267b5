"""Drawing detections with OpenCV: a distinct colour per class, boxes, ``name score`` labels, image writes.

Colours: class ``c`` gets hue ``c * 0.618034`` (golden-ratio steps around the HSV circle, so neighbouring
class indices are far apart in hue) at saturation 0.85, value 0.95, alternating with a darker value 0.7
every other turn so that more than ~10 classes stay apart. Labels are filled boxes in the class colour
with black or white text, whichever contrasts more (relative luminance above 0.5 gets black).
"""

from __future__ import annotations

import colorsys
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from fileio import atomic_write

__all__ = ["class_colour", "draw_box", "draw_detections", "label_text", "line_width", "write_image"]

_GOLDEN = 0.618033988749895
FONT = cv2.FONT_HERSHEY_SIMPLEX


def class_colour(c: int) -> tuple[int, int, int]:
    """The BGR colour of class ``c`` (deterministic, distinct for neighbouring classes)."""
    c = int(c)
    hue = (c * _GOLDEN) % 1.0
    value = 0.95 if (c * _GOLDEN) % 2.0 < 1.0 else 0.7
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, value)
    return int(b * 255), int(g * 255), int(r * 255)


def _text_colour(bgr: tuple[int, int, int]) -> tuple[int, int, int]:
    b, g, r = (v / 255.0 for v in bgr)
    return (0, 0, 0) if 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.5 else (255, 255, 255)


def line_width(shape: Sequence[int], line_thickness: int | None = None) -> int:
    """Box line width: ``line_thickness`` if given, else yolov5's ``max(round((h + w) / 2 * 0.003), 2)``."""
    if line_thickness is not None:
        return max(int(line_thickness), 1)
    return max(round(sum(shape[:2]) / 2 * 0.003), 2)


def draw_box(img: np.ndarray, box: Sequence[float], colour: tuple[int, int, int], label: str = "", lw: int = 2) -> None:
    """Draw an ``xyxy`` pixel box on ``img`` (BGR uint8, in place) with ``label`` above it (inside at the top edge)."""
    x1, y1, x2, y2 = (int(round(float(v))) for v in box[:4])
    cv2.rectangle(img, (x1, y1), (x2, y2), colour, lw, cv2.LINE_AA)
    if not label:
        return
    scale = max(lw / 3.0, 0.35)
    thick = max(lw - 1, 1)
    (tw, th), base = cv2.getTextSize(label, FONT, scale, thick)
    above = y1 - th - base - 2 >= 0
    top = y1 - th - base - 2 if above else y1
    x1 = min(max(x1, 0), max(img.shape[1] - tw - 2, 0))
    cv2.rectangle(img, (x1, top), (x1 + tw + 2, top + th + base + 2), colour, -1, cv2.LINE_AA)
    cv2.putText(img, label, (x1 + 1, top + th + 1), FONT, scale, _text_colour(colour), thick, cv2.LINE_AA)


def label_text(cls: int, conf: float | None, names: Sequence[str], hide_labels: bool, hide_conf: bool) -> str:
    """``"name 0.87"`` (or only the name with ``hide_conf``, nothing with ``hide_labels``)."""
    if hide_labels:
        return ""
    name = names[cls] if 0 <= cls < len(names) else str(cls)
    return name if hide_conf or conf is None else f"{name} {conf:.2f}"


def draw_detections(
    img: np.ndarray,
    det: Any,
    names: Sequence[str],
    line_thickness: int | None = None,
    hide_labels: bool = False,
    hide_conf: bool = False,
) -> np.ndarray:
    """Draw detections ``[k, 6]`` ``[x1, y1, x2, y2, conf, cls]`` (pixels of ``img``) on ``img`` in place.

    Lower scores are drawn first, so the most confident box and label end on top. Returns ``img``.
    """
    rows = np.asarray(det.tolist() if hasattr(det, "tolist") else det, dtype=np.float64).reshape(-1, 6)
    lw = line_width(img.shape, line_thickness)
    for x1, y1, x2, y2, conf, cls in rows[np.argsort(rows[:, 4], kind="stable")]:
        c = int(cls)
        draw_box(img, (x1, y1, x2, y2), class_colour(c), label_text(c, conf, names, hide_labels, hide_conf), lw)
    return img


def write_image(path: str | os.PathLike[str], img: np.ndarray, quality: int = 95) -> Path:
    """Encode ``img`` (BGR) by the suffix of ``path`` (``.jpg``, ``.png``, ...) and write it atomically."""
    path = Path(path)
    suffix = path.suffix.lower() or ".jpg"
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if suffix in (".jpg", ".jpeg") else []
    ok, buf = cv2.imencode(suffix, img, params)
    if not ok:
        raise ValueError(f"{path}: OpenCV cannot encode an image as {suffix!r}")
    return atomic_write(path, buf.tobytes())
