"""Box geometry in numpy for the metrics: COCO ``xywh`` to ``xyxy`` and the pairwise overlap of two box sets.

The one numpy IoU of ``tools/`` (matching, confusion matrix, crowd counts); ``detloss.boxes.box_iou`` is its
torch twin for the loss. Degenerate boxes (zero area) overlap nothing: the ratio is 0 where its denominator is 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["box_overlap", "xywh_to_xyxy"]


def xywh_to_xyxy(boxes: Any) -> np.ndarray:
    """``float64 [n, 4]`` ``x1, y1, x2, y2`` from COCO's ``x, y, w, h`` (top-left corner, width, height)."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], axis=1)


def box_overlap(a: Any, b: Any, over: str = "union") -> np.ndarray:
    """``float64 [len(a), len(b)]`` overlap of ``xyxy`` boxes: intersection over union, or over ``a``'s area.

    ``over="union"``: IoU. ``over="first"``: intersection over the area of the box of ``a``, the measure COCO
    uses for a detection ``a`` on a crowd region ``b`` (a box inside the region scores 1 however small it is).
    Widths and heights below 0 count as 0.
    """
    if over not in ("union", "first"):
        raise ValueError(f"over must be 'union' or 'first', got {over!r}")
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(axis=2)
    area_a = np.clip(a[:, 2:] - a[:, :2], 0, None).prod(axis=1)[:, None]
    if over == "first":
        denom = np.broadcast_to(area_a, inter.shape)
    else:
        denom = area_a + np.clip(b[:, 2:] - b[:, :2], 0, None).prod(axis=1)[None, :] - inter
    return np.divide(inter, denom, out=np.zeros_like(inter), where=denom > 0)
