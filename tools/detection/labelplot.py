"""``labels.jpg``: the label statistics of a training set, in the class colours of the batch pictures.

Drawn with :func:`tools.evaluation.plots.figure` (Agg canvas), rendered to pixels and encoded as JPEG by
OpenCV (:func:`tools.detection.annotate.write_image`; matplotlib's own JPEG writer needs Pillow).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tools.evaluation.plots import figure
from tools.evaluation.runfigures import DPI

from .annotate import class_colour, write_image

__all__ = ["plot_labels", "save_figure_jpg"]


def save_figure_jpg(fig: Any, path: str | os.PathLike[str], dpi: int = DPI) -> Path:
    """Render ``fig`` at ``dpi`` and write it as JPEG (OpenCV encoder, atomic write)."""
    import cv2

    fig.set_dpi(dpi)
    fig.canvas.draw()
    rgba = np.asarray(fig.canvas.buffer_rgba())
    return write_image(path, cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGR))


def count_title(cls: np.ndarray, n_images: int) -> str:
    """``labels.jpg``'s headline: the boxes (class >= 0) and, apart, the ignore regions (class -1 rows)."""
    n_ignore = int((cls < 0).sum())
    ignored = f" (+ {n_ignore} ignore regions)" if n_ignore else ""
    return f"{int((cls >= 0).sum())} boxes{ignored} in {n_images} images"


def plot_labels(labels: Sequence[np.ndarray], names: Sequence[str], path: str | os.PathLike[str]) -> Path:
    """``labels.jpg``: instances per class, up to 1000 boxes drawn centred, box centres and box sizes.

    ``labels``: per image ``[n, 5]`` ``cls, cx, cy, w, h`` normalised to the image (a dataset's ``.labels``).
    """
    from matplotlib.colors import LogNorm
    from matplotlib.patches import Rectangle

    rows = [np.asarray(lb, dtype=np.float64).reshape(-1, 5) for lb in labels]
    lab = np.concatenate(rows) if rows else np.zeros((0, 5))
    nc = len(names)
    cls = lab[:, 0].astype(np.int64)
    fig = figure((10, 10))
    (a_hist, a_box), (a_xy, a_wh) = fig.subplots(2, 2)
    obj = cls[cls >= 0]  # class -1 rows are ignore regions, not instances
    counts = np.bincount(obj, minlength=nc)[:nc] if len(obj) else np.zeros(nc, dtype=np.int64)
    colours = [tuple(v / 255 for v in class_colour(c)[::-1]) for c in range(nc)]
    a_hist.bar(range(nc), counts, color=colours)
    a_hist.set_xticks(range(nc), list(names), rotation=90 if nc > 6 else 0, fontsize=7 if nc > 20 else 9)
    a_hist.set(ylabel="instances", title=count_title(cls, len(rows)))
    for c, _, _, w, h in lab[:1000]:
        a_box.add_patch(Rectangle((0.5 - w / 2, 0.5 - h / 2), w, h, fill=False, linewidth=0.6,
                                  edgecolor=colours[int(c)] if 0 <= c < nc else "gray", alpha=0.6))  # fmt: skip
    a_box.set(xlim=(0, 1), ylim=(1, 0), aspect="equal", title="box shapes (up to 1000, centred)")
    for ax, (i, j), (xl, yl) in ((a_xy, (1, 2), ("x", "y")), (a_wh, (3, 4), ("width", "height"))):
        if len(lab):
            # log colour scale from dark (1 box) to bright: single boxes stay visible next to dense cells
            ax.hist2d(lab[:, i], lab[:, j], bins=50, range=[[0, 1], [0, 1]], cmap="viridis", cmin=1, norm=LogNorm())
        ax.set(xlabel=xl, ylabel=yl, xlim=(0, 1), ylim=(1, 0) if i == 1 else (0, 1), aspect="equal")
    a_xy.set_title("box centres (fraction of the image)")
    a_wh.set_title("box sizes (fraction of the image)")
    return save_figure_jpg(fig, Path(path))
