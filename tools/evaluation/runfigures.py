"""The matplotlib figures of a run folder's numbers: confusion matrix and P/R/F1-confidence curves.

Drawn with :func:`tools.evaluation.plots.figure` (Agg canvas, matplotlib imported lazily) and written with
:func:`tools.evaluation.plots.save_figure`. 100 dpi, and fixed margins for the curves instead of
``tight_layout`` (which draws twice): the trainer writes these after every run, so they should be cheap.
The pictures drawn on images and from dataset labels are ``tools.detection.runplots``'s.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from .confusion import ConfusionMatrix
from .curves import ConfidenceCurves
from .plots import figure, save_figure

__all__ = ["DPI", "plot_confidence_curve", "plot_confusion_matrix"]

_MAX_LABELLED = 20  # above this many classes, per-class curves are unlabelled
_MAX_ANNOTATED = 30  # above this many classes, confusion cells carry no numbers
_YLABEL = {"precision": "Precision", "recall": "Recall", "f1": "F1"}


DPI = 100


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
