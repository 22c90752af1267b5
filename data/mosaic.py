"""Mosaic of 4 images (YOLOv4, Bochkovskiy et al. 2020; yolov5 ``load_mosaic``) on a ``2s x 2s`` canvas.

Each image (already resized so its long side is ``s``) is placed in one quadrant around a random
centre ``(xc, yc)`` in ``[s/2, 3s/2]^2``, touching the centre with one corner; whatever falls off the
canvas is cut. The caller then crops to ``s x s`` with ``random_affine(..., border=-s//2)``.
Labels: ``[n, 5] (cls, x1, y1, x2, y2)`` in pixels of each input image, then of the canvas.
"""

from __future__ import annotations

import numpy as np

from .augment import FILL, clip_labels


def mosaic4(
    imgs: list[np.ndarray], labels: list[np.ndarray], s: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Combine 4 BGR images (each at most ``s`` on its long side) into a ``[2s, 2s, 3]`` canvas.

    Boxes are shifted with their image, clipped to the part of it that was pasted, and dropped when
    too little of them remains (:func:`data.augment.box_keep`).
    """
    if len(imgs) != 4 or len(labels) != 4:
        raise ValueError(f"mosaic4 needs 4 images and 4 label arrays, got {len(imgs)} and {len(labels)}")
    canvas = np.full((2 * s, 2 * s, 3), FILL, np.uint8)
    xc, yc = (int(v) for v in rng.uniform(s / 2, 3 * s / 2, 2))
    out = []
    for k, (img, lab) in enumerate(zip(imgs, labels)):
        h, w = img.shape[:2]
        if max(h, w) > s:
            raise ValueError(f"mosaic4 image {k} is {w}x{h}, larger than s={s}")
        if k == 0:  # top-left: its bottom-right corner at the centre
            x1a, y1a, x2a, y2a = max(xc - w, 0), max(yc - h, 0), xc, yc
            x1b, y1b = w - (x2a - x1a), h - (y2a - y1a)
        elif k == 1:  # top-right: bottom-left corner at the centre
            x1a, y1a, x2a, y2a = xc, max(yc - h, 0), min(xc + w, 2 * s), yc
            x1b, y1b = 0, h - (y2a - y1a)
        elif k == 2:  # bottom-left: top-right corner at the centre
            x1a, y1a, x2a, y2a = max(xc - w, 0), yc, xc, min(yc + h, 2 * s)
            x1b, y1b = w - (x2a - x1a), 0
        else:  # bottom-right: top-left corner at the centre
            x1a, y1a, x2a, y2a = xc, yc, min(xc + w, 2 * s), min(yc + h, 2 * s)
            x1b, y1b = 0, 0
        canvas[y1a:y2a, x1a:x2a] = img[y1b : y1b + (y2a - y1a), x1b : x1b + (x2a - x1a)]
        if len(lab):
            moved = lab.astype(np.float32, copy=True)
            moved[:, [1, 3]] += x1a - x1b
            moved[:, [2, 4]] += y1a - y1b
            out.append(clip_labels(moved, (x1a, y1a, x2a, y2a)))
    labels_out = np.concatenate(out, 0) if out else np.zeros((0, 5), np.float32)
    return canvas, labels_out
