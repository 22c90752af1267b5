"""Cut a large image into overlapping tiles, and its boxes into each tile's labels.

Pure functions on numpy arrays. Windows are pixel rectangles ``(x0, y0, x1, y1)`` (0-based, ``x1``/``y1``
exclusive, so a tile's size is ``x1 - x0``). Along each axis tiles start every ``stride = tile - overlap``
pixels; the last tile is shifted back to end at the image edge, so when the image is larger than a tile every
tile is full-size (the last two overlap by more than ``overlap``). An axis no longer than ``tile`` is one
window covering all of it (an image smaller than the tile is one tile of its own size). This is the slicing
of sahi (``sahi.slicing.get_slice_bboxes`` with ``auto_slice_resolution=False``), reimplemented.

A box cut by the tile edge keeps the part inside. It stays an object when at least ``min_visible`` of its
area lies inside the tile; a smaller part becomes an ignore region (class ``-1``, see ``data.sources``): the
tile shows too little of it to demand a detection, yet the model must not be punished for firing on it (a
background target there would teach it that a visible half tree is not a tree). Ignore regions of the
source (class ``-1``) stay ignore regions wherever any part of them is inside.
"""

from __future__ import annotations

import numpy as np

from detloss.checks import check_int

IGNORE_CLASS = -1
MIN_PART_PX = 1.0  # a box cut by the tile edge whose part inside is narrower than this (px) is dropped


def tile_starts(length: int, tile: int, overlap: int) -> np.ndarray:
    """Start offsets ``int64 [k]`` of the tiles along an axis of ``length`` pixels (see the module doc)."""
    length, tile, overlap = (int(v) if isinstance(v, np.integer) else v for v in (length, tile, overlap))
    length, tile = check_int(length, "length", lo=1), check_int(tile, "tile", lo=1)
    overlap = check_int(overlap, "overlap", lo=0)
    if overlap >= tile:
        raise ValueError(f"overlap must be smaller than the tile ({tile}), got {overlap}")
    if length <= tile:
        return np.zeros(1, np.int64)
    starts = np.arange(0, length - tile, tile - overlap, dtype=np.int64)
    return np.append(starts, length - tile)


def tile_windows(height: int, width: int, tile: int, overlap: int) -> np.ndarray:
    """Windows ``int64 [n, 4]`` ``(x0, y0, x1, y1)`` covering an image, row by row (top to bottom, left to right)."""
    ys = tile_starts(height, tile, overlap)
    xs = tile_starts(width, tile, overlap)
    y0, x0 = np.meshgrid(ys, xs, indexing="ij")
    x0, y0 = x0.ravel(), y0.ravel()
    return np.stack([x0, y0, np.minimum(x0 + tile, width), np.minimum(y0 + tile, height)], 1)


def boxes_in_window(
    cls: np.ndarray, boxes: np.ndarray, window: np.ndarray | tuple, min_visible: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """The boxes of one tile: ``(cls [m], boxes [m, 4])`` in the tile's pixel coordinates.

    Args:
        cls: ``[n]`` class of each box (``-1``: an ignore region).
        boxes: ``[n, 4]`` ``(x1, y1, x2, y2)`` pixels of the whole image.
        window: ``(x0, y0, x1, y1)`` of the tile.
        min_visible: the fraction of a box's area that must lie inside the tile for it to stay an object;
            below it (but above zero) it becomes an ignore region (class ``-1``).

    Boxes with no area inside the tile are dropped, as are cut boxes whose part inside is narrower than
    :data:`MIN_PART_PX` (a sliver of nothing to see; 6-decimal label files would round it to zero). Order is
    kept. The visible fraction is compared with a 1e-6 tolerance (float32 labels round a box on the image edge
    a hair past it).
    """
    if not 0.0 < min_visible <= 1.0:
        raise ValueError(f"min_visible must be in (0, 1], got {min_visible}")
    cls = np.asarray(cls, np.float64).reshape(-1)
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    if len(cls) != len(boxes):
        raise ValueError(f"cls has {len(cls)} entries but boxes has {len(boxes)} rows")
    x0, y0, x1, y1 = (float(v) for v in window)
    clipped = np.stack(
        [np.clip(boxes[:, 0], x0, x1), np.clip(boxes[:, 1], y0, y1), np.clip(boxes[:, 2], x0, x1),
         np.clip(boxes[:, 3], y0, y1)], 1)  # fmt: skip
    inside = (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1])
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    cut = (clipped != boxes).any(1)
    side = np.minimum(clipped[:, 2] - clipped[:, 0], clipped[:, 3] - clipped[:, 1])
    keep = (inside > 0) & (~cut | (side >= MIN_PART_PX))
    with np.errstate(divide="ignore", invalid="ignore"):
        seen = inside / np.where(area > 0, area, 1.0)
    out_cls = np.where(seen >= min_visible - 1e-6, cls, float(IGNORE_CLASS))
    shift = np.array([x0, y0, x0, y0])
    return out_cls[keep], clipped[keep] - shift


def tile_labels(labels: np.ndarray, shape: tuple[int, int], window: np.ndarray | tuple,
                min_visible: float = 0.5) -> np.ndarray:  # fmt: skip
    """:func:`boxes_in_window` on label rows: ``float32 [n, 5]`` ``(cls, cx, cy, w, h)`` normalised to the image of
    ``shape = (h, w)`` in, the tile's rows normalised to the tile out."""
    labels = np.asarray(labels, np.float64).reshape(-1, 5)
    h, w = shape
    cx, cy, bw, bh = labels[:, 1] * w, labels[:, 2] * h, labels[:, 3] * w, labels[:, 4] * h
    boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], 1)
    cls, b = boxes_in_window(labels[:, 0], boxes, window, min_visible)
    tw, th = float(window[2] - window[0]), float(window[3] - window[1])
    rows = np.stack([cls, (b[:, 0] + b[:, 2]) / 2 / tw, (b[:, 1] + b[:, 3]) / 2 / th,
                     (b[:, 2] - b[:, 0]) / tw, (b[:, 3] - b[:, 1]) / th], 1)  # fmt: skip
    return rows.astype(np.float32).reshape(-1, 5)
