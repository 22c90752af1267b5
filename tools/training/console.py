"""What the trainer prints, in yolov5's layout: the column header of the progress bar, one ``all`` line after
each validation, and the final summary (per-class table, best epoch, where the weights are)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

TRAIN_COLS = ("Epoch", "Mem", "box_loss", "obj_loss", "cls_loss", "Instances", "Size")
VAL_COLS = ("Class", "Images", "Instances", "P", "R", "mAP50", "mAP50-95")
W = 11  # column width


def train_header() -> str:
    return "\n" + "".join(f"{c:>{W}}" for c in TRAIN_COLS)


def train_desc(epoch: int, epochs: int, mem: str, mloss: Any, n_inst: int, size: int) -> str:
    """The progress bar's description under :func:`train_header`."""
    losses = "".join(f"{float(v):>{W}.4g}" for v in mloss)
    return f"{f'{epoch}/{epochs - 1}':>{W}}{mem:>{W}}{losses}{n_inst:>{W}}{size:>{W}}"


def val_header() -> str:
    return f"{VAL_COLS[0]:>{W + 11}}" + "".join(f"{c:>{W}}" for c in VAL_COLS[1:])


def val_line(name: str, images: int, instances: int, p: float, r: float, map50: float, map_: float) -> str:
    nums = "".join(f"{v:>{W}.3g}" for v in (p, r, map50, map_))
    return f"{name:>{W + 11}}{images:>{W}}{instances:>{W}}{nums}"


def per_class_pr(precision: np.ndarray) -> list[tuple[float, float]]:
    """Per class ``(P, R)`` at the best-F1 point of COCO's IoU-0.5 precision/recall curve (``[T, R, K]``);
    ``(nan, nan)`` for a class without ground truth."""
    out = []
    if precision.ndim != 3:
        return out
    recall = np.linspace(0.0, 1.0, precision.shape[1])
    for k in range(precision.shape[2]):
        p = precision[0, :, k]
        if (p < 0).all():
            out.append((float("nan"), float("nan")))
            continue
        p = np.clip(p, 0.0, None)
        f1 = 2 * p * recall / np.maximum(p + recall, 1e-12)
        j = int(f1.argmax())
        out.append((float(p[j]), float(recall[j])) if f1[j] > 0 else (0.0, 0.0))
    return out


def mean_pr(pr: list[tuple[float, float]]) -> tuple[float, float]:
    """Mean ``(P, R)`` over the classes of :func:`per_class_pr` that have ground truth (``(0, 0)`` if none)."""
    valid = [x for x in pr if x[0] == x[0]]
    if not valid:
        return 0.0, 0.0
    return float(np.mean([x[0] for x in valid])), float(np.mean([x[1] for x in valid]))


def precision_recall(precision: np.ndarray) -> tuple[float, float]:
    """Mean over classes of precision and recall at each class's best-F1 point of COCO's IoU-0.5 curve.

    ``precision`` is COCOeval's interpolated ``[T, R=101, K]`` array (-1 where undefined); classes without ground
    truth are left out. yolov5 reports P and R at the max-F1 confidence of its own curve; this is the same idea
    read off COCO's curve.
    """
    return mean_pr(per_class_pr(precision))


def class_table(res: Any, n_images: int) -> str:
    """The ``all`` line and one line per class from an :class:`tools.evaluation.EvalResult`."""
    per = res.coco.per_class
    pr = per_class_pr(res.coco.precision)
    p_all, r_all = mean_pr(pr)
    inst = sum(int(c["instances"]) for c in per)
    lines = [val_header(), val_line("all", n_images, inst, p_all, r_all, res.map50, res.map)]
    by_cat = dict(zip(res.coco.cat_ids, pr))
    for c in per:
        p, r = by_cat.get(c["category_id"], (float("nan"), float("nan")))
        lines.append(val_line(str(c["name"]), n_images, int(c["instances"]), p, r, max(c["ap50"], 0.0),
                              max(c["ap"], 0.0)))  # fmt: skip
    return "\n".join(lines)


def final_summary(epochs_done: int, seconds: float, best_epoch: int, best: dict[str, float] | None,
                  save_dir: Path, table: str | None) -> str:  # fmt: skip
    """The closing block: time, the per-class table of the final model, the best epoch and the paths."""
    lines = [f"\n{epochs_done} epochs completed in {seconds / 60:.1f} min ({seconds / 3600:.3f} hours)."]
    if table:
        lines += ["final model (EMA weights, last epoch) on the val split:", table]
    if best is not None and best_epoch >= 0:
        lines.append(
            f"best epoch {best_epoch}: mAP50-95 {best['metrics/mAP_0.5:0.95']:.4f}, mAP50 {best['metrics/mAP_0.5']:.4f}"
        )
    w = save_dir / "weights"
    lines.append(f"weights: {w / 'best.pt'} (best), {w / 'last.pt'} (last)")
    lines.append(f"results saved to {save_dir} (results.csv, results.png)")
    return "\n".join(lines)
