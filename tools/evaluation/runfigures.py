"""The matplotlib figures of a run folder: confusion matrix, P/R/F1-confidence curves, label statistics.

Drawn with :func:`tools.evaluation.plots.figure` (Agg canvas, matplotlib imported lazily); PNGs are written
with :func:`tools.evaluation.plots.save_figure`, JPEGs (``labels.jpg``) rendered to pixels and encoded by
OpenCV (matplotlib's own JPEG writer needs Pillow). 100 dpi, and fixed margins for the curves instead of
``tight_layout`` (which draws twice): the trainer writes these after every run, so they should be cheap.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .confusion import ConfusionMatrix
from .curves import ConfidenceCurves
from .plots import figure, save_figure

__all__ = ["plot_confidence_curve", "plot_confusion_matrix", "plot_labels", "save_figure_jpg"]

_MAX_LABELLED = 20  # above this many classes, per-class curves are unlabelled
_MAX_ANNOTATED = 30  # above this many classes, confusion cells carry no numbers
_YLABEL = {"precision": "Precision", "recall": "Recall", "f1": "F1"}


DPI = 100


def save_figure_jpg(fig: Any, path: str | os.PathLike[str], dpi: int = DPI) -> Path:
    """Render ``fig`` at ``dpi`` and write it as JPEG (OpenCV encoder, atomic write)."""
    import cv2

    from tools.detection.annotate import write_image

    fig.set_dpi(dpi)
    fig.canvas.draw()
    rgba = np.asarray(fig.canvas.buffer_rgba())
    return write_image(path, cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGR))


def _matrix_panel(fig: Any, ax: Any, values: np.ndarray, labels: list[str], title: str, fmt: str) -> None:
    n = len(labels)
    im = ax.imshow(values, cmap="Blues", vmin=0.0, vmax=max(float(values.max()), 1e-9))
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(n), labels, rotation=90, fontsize=7 if n > 10 else 9)
    ax.set_yticks(range(n), labels, fontsize=7 if n > 10 else 9)
    ax.set(xlabel="True", ylabel="Predicted", title=title)
    if n <= _MAX_ANNOTATED:
        thresh = values.max() / 2.0
        for i in range(n):
            for j in range(n):
                v = values[i, j]
                if v:
                    colour = "white" if v > thresh else "black"
                    ax.text(j, i, format(v, fmt), ha="center", va="center", fontsize=6 if n > 12 else 8, color=colour)


def plot_confusion_matrix(cm: ConfusionMatrix, path: str | os.PathLike[str]) -> Path:
    """Two panels: raw counts and column-normalised fractions; last row/column "background"."""
    labels = [*cm.names, "background"]
    side = max(5.0, 0.45 * len(labels) + 2.5)
    fig = figure((2 * side + 1, side))
    ax_raw, ax_norm = fig.subplots(1, 2)
    rule = f"conf >= {cm.conf_thres:g}, IoU >= {cm.iou_thres:g}"
    _matrix_panel(fig, ax_raw, cm.matrix.astype(np.float64), labels, f"Confusion matrix (counts; {rule})", ".0f")
    _matrix_panel(fig, ax_norm, cm.normalised(), labels, "Normalised per true class (columns sum to 1)", ".2f")
    return save_figure(fig, Path(path), dpi=DPI)


def plot_confidence_curve(curves: ConfidenceCurves, which: str, path: str | os.PathLike[str]) -> Path:
    """One thin line per class with ground truth, the class mean in bold with its maximum and where it is."""
    ylabel = _YLABEL.get(which)
    if ylabel is None:
        raise ValueError(f"which must be one of {sorted(_YLABEL)}, got {which!r}")
    fig = figure((9, 6))
    fig.set_layout_engine("none")
    fig.subplots_adjust(left=0.08, right=0.76, bottom=0.1, top=0.93)  # room for the legend on the right
    ax = fig.add_subplot(1, 1, 1)
    values = getattr(curves, which)
    valid = curves.valid
    labelled = len(valid) <= _MAX_LABELLED
    for k in valid:
        ax.plot(curves.conf, values[k], linewidth=1, label=curves.names[k] if labelled else None)
    if len(valid):
        mean = curves.mean(which)
        best = int(np.argmax(mean))
        ax.plot(curves.conf, mean, linewidth=3, color="blue",
                label=f"all classes {mean[best]:.2f} at {curves.conf[best]:.3f}")  # fmt: skip
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=7 if labelled else 9)
    else:
        ax.text(0.5, 0.5, "no ground truth", ha="center", va="center")
    ax.set(xlabel="Confidence", ylabel=ylabel, xlim=(0, 1), ylim=(0, 1.02),
           title=f"{ylabel}-Confidence Curve (IoU {curves.iou_thres:g})")  # fmt: skip
    ax.grid(alpha=0.3)
    return save_figure(fig, Path(path), dpi=DPI)


def plot_labels(labels: Sequence[np.ndarray], names: Sequence[str], path: str | os.PathLike[str]) -> Path:
    """``labels.jpg``: instances per class, up to 1000 boxes drawn centred, box centres and box sizes.

    ``labels``: per image ``[n, 5]`` ``cls, cx, cy, w, h`` normalised to the image (a dataset's ``.labels``).
    """
    from matplotlib.colors import LogNorm
    from matplotlib.patches import Rectangle

    from tools.detection.annotate import class_colour

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
    a_hist.set(ylabel="instances", title=f"{len(lab)} boxes in {len(rows)} images")
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
