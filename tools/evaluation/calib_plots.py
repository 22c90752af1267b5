"""Reliability diagrams at an operating threshold: overall and one panel per class (PNG, matplotlib Agg).

Each panel shows, per confidence bin, the fraction of true positives (IoU >= 0.5; bars), the mean IoU-weighted
accuracy that LaECE compares against (dots), the diagonal of perfect calibration, and the detection count.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from .calibration import binned_gaps, reliability
from .matching import DetectionTable
from .plots import figure, save_figure

__all__ = ["plot_reliability_grid", "save_reliability_plots"]


_COUNT_LABELS_UP_TO = 21  # panels; above, the per-bin detection counts are not written (text is slow to draw)


def _panel(
    ax, table: DetectionTable, conf_thres: float, bins: int, cls: int | None, title: str, counts: bool = True
) -> None:
    cal = reliability(table, conf_thres, bins, cls)
    keep = table.above(conf_thres) if cls is None else table.above(conf_thres) & (table.cls == cls)
    iou_acc = binned_gaps(table.score[keep], table.iou[keep], bins)[2]
    left, width = cal.edges[:-1], np.diff(cal.edges)
    filled = cal.counts > 0
    ax.bar(left, np.where(filled, cal.accuracy, 0.0), width=width, align="edge", edgecolor="black",
           color="tab:blue", alpha=0.8, label="precision")  # fmt: skip
    centers = left + width / 2
    ax.plot(centers[filled], iou_acc[filled], "o", color="tab:orange", markersize=4, label="precision x IoU")
    ax.plot([0, 1], [0, 1], "k--", linewidth=1)
    for x, c in zip(centers[filled], cal.counts[filled]) if counts else ():
        ax.text(x, 0.02, str(int(c)), ha="center", fontsize=6, rotation=90)
    ax.set(xlim=(0, 1), ylim=(0, 1), title=f"{title}: D-ECE {cal.ece:.3f}, n={cal.n}")
    ax.title.set_fontsize(8)


def plot_reliability_grid(
    table: DetectionTable, path: str | os.PathLike, conf_thres: float = 0.25, bins: int = 10
) -> Path:
    """One figure: the overall diagram and one per class, for detections with ``score >= conf_thres``.

    Classes without a detection above the threshold get no panel (the title says how many); with many panels
    the per-bin counts are left out and the layout is fixed rather than tight (an 80-class grid drew in ~40 s).
    """
    present = set(np.unique(table.cls[table.above(conf_thres)]).astype(int).tolist())
    panels = [(None, "all classes")] + [(k, n) for k, n in enumerate(table.names) if k in present]
    cols = min(4 if len(panels) <= 16 else 8, len(panels))
    rows = math.ceil(len(panels) / cols)
    many = len(panels) > _COUNT_LABELS_UP_TO
    w, h = (2.4, 2.2) if many else (3.2, 3.0)
    fig = figure((w * cols, h * rows), tight=not many)
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    if many:  # tick labels on the outer panels only, few ticks: tick text dominates the drawing time
        for i, ax in enumerate(axes):  # (shared axes would be slower: every limit update visits all siblings)
            ax.set_xticks([0, 0.5, 1])
            ax.set_yticks([0, 0.5, 1])
            ax.tick_params(labelbottom=i + cols >= len(panels), labelleft=i % cols == 0, labelsize=7)
        fig.subplots_adjust(left=0.03, right=0.99, bottom=0.02, top=1 - 0.6 / (h * rows), wspace=0.25, hspace=0.35)
    for ax, (cls, name) in zip(axes, panels):
        _panel(ax, table, conf_thres, bins, cls, name, counts=not many)
    for ax in axes[len(panels) :]:
        ax.axis("off")
    axes[0].legend(loc="upper left", fontsize=7)
    missing = len(table.names) - len(panels) + 1
    note = f"; {missing} class(es) without detections not shown" if missing else ""
    what = f"x: confidence, y: precision at IoU {table.iou_thres:g}"
    fig.suptitle(f"Reliability at conf >= {conf_thres:g} ({what}){note}")
    return save_figure(fig, Path(path), dpi=80 if many else 100)


def save_reliability_plots(
    table: DetectionTable, out_dir: str | os.PathLike, thresholds: tuple[float, ...] = (0.25, 0.001)
) -> list[Path]:
    """``reliability_conf<t>.png`` per operating threshold into ``out_dir``."""
    out = Path(out_dir)
    return [plot_reliability_grid(table, out / f"reliability_conf{t:g}.png", t) for t in thresholds]
