"""Evaluation plots: precision-recall curves and the reliability diagram (PNG, matplotlib's Agg canvas).

matplotlib is imported only here and only when a plot is drawn; the figures are built on an Agg canvas
directly, so the global backend (``matplotlib.use``) is never touched. Files are written with
:func:`fileio.atomic_write_with`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from fileio import atomic_write_with

from .calibration import Calibration
from .coco import RECALL_THRESHOLDS, CocoStats

__all__ = ["figure", "plot_pr_curve", "plot_reliability", "save_figure", "save_plots"]

_MAX_LABELLED = 20  # above this many classes the per-class curves are drawn unlabelled


def figure(size: tuple[float, float], tight: bool = True) -> Any:
    """A matplotlib Figure on the Agg canvas (no pyplot, no global state); ``tight``: tight layout at save
    (it costs seconds on figures of many panels, which set their spacing themselves)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, tight_layout=tight)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Any, path: Path, dpi: int = 150) -> Path:
    """Write ``fig`` as PNG through a temporary sibling and ``os.replace``."""
    return atomic_write_with(path, lambda f: fig.savefig(f, dpi=dpi, format="png"))


def plot_pr_curve(coco: CocoStats, path: str | os.PathLike) -> Path:
    """Precision-recall curves at IoU 0.50: one thin line per class with ground truth, the class mean in bold.

    The curves are COCO's interpolated precision at 101 recall points (area all, 100 detections per image).
    """
    fig = figure((9, 6))
    ax = fig.add_subplot(1, 1, 1)
    p50 = coco.precision[0] if coco.precision.size else np.zeros((len(RECALL_THRESHOLDS), 0))  # [R, K]
    valid = [k for k in range(p50.shape[1]) if (p50[:, k] > -1).any()]
    names = {c["category_id"]: c["name"] for c in coco.per_class}
    labelled = len(valid) <= _MAX_LABELLED
    for k in valid:
        ap50 = coco.per_class[k]["ap50"]
        label = f"{names.get(coco.cat_ids[k], coco.cat_ids[k])} {ap50:.3f}" if labelled else None
        ax.plot(RECALL_THRESHOLDS, np.clip(p50[:, k], 0, None), linewidth=1, label=label, color=None)
    if valid:
        mean = np.clip(p50[:, valid], 0, None).mean(axis=1)
        ax.plot(RECALL_THRESHOLDS, mean, linewidth=3, color="blue", label=f"all classes {coco.stats[1]:.3f} mAP@0.5")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=7 if labelled else 9)
    else:
        ax.text(0.5, 0.5, "no ground truth", ha="center", va="center")
    ax.set(xlabel="Recall", ylabel="Precision", xlim=(0, 1), ylim=(0, 1.02), title="Precision-Recall (IoU 0.50)")
    ax.grid(alpha=0.3)
    return save_figure(fig, Path(path))


def plot_reliability(cal: Calibration, path: str | os.PathLike) -> Path:
    """Reliability diagram: per-bin accuracy against confidence with the gap to the diagonal, and the counts."""
    fig = figure((6, 7))
    ax, axc = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    width = np.diff(cal.edges)
    left = cal.edges[:-1]
    centers = left + width / 2
    filled = cal.counts > 0
    acc = np.where(filled, cal.accuracy, 0.0)
    conf = np.where(filled, cal.confidence, 0.0)
    ax.bar(left, acc, width=width, align="edge", edgecolor="black", color="tab:blue", label="accuracy")
    ax.bar(
        left[filled],
        (conf - acc)[filled],
        bottom=acc[filled],
        width=width[filled],
        align="edge",
        color="tab:red",
        alpha=0.3,
        edgecolor="tab:red",
        hatch="//",
        label="gap to mean confidence",
    )
    ax.plot([0, 1], [0, 1], "k--", linewidth=1, label="perfect calibration")
    ax.set(ylabel=f"Fraction correct (IoU >= {cal.iou_thres:.2f})", xlim=(0, 1), ylim=(0, 1))
    ax.set_title(f"Reliability diagram: D-ECE {cal.ece:.4f} ({cal.n} detections)")
    ax.legend(loc="upper left")
    axc.bar(centers, cal.counts, width=width * 0.9, color="gray")
    axc.set(xlabel="Confidence", ylabel="Detections")
    return save_figure(fig, Path(path))


def save_plots(coco: CocoStats, cal: Calibration | None, out_dir: str | os.PathLike) -> list[Path]:
    """Write ``PR_curve.png`` and (when calibration was computed) ``reliability.png`` into ``out_dir``."""
    out = Path(out_dir)
    paths = [plot_pr_curve(coco, out / "PR_curve.png")]
    if cal is not None:
        paths.append(plot_reliability(cal, out / "reliability.png"))
    return paths
