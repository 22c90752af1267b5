"""What the trainer prints, in yolov5's layout: the column header of the progress bar, one ``all`` line after
each validation, and the final summary (per-class table, best epoch, where the weights are)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tools.evaluation import metric_names as mn

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


def all_line(res: Any) -> str:
    """The ``all`` line of an :class:`tools.evaluation.EvalResult` (P and R at the best-F1 points)."""
    inst = sum(int(c["instances"]) for c in res.coco.per_class)
    p, r = res.pr
    return val_line("all", res.n_images, inst, p, r, res.map50, res.map)


def class_table(res: Any) -> str:
    """The header, the ``all`` line and one line per class of an :class:`tools.evaluation.EvalResult`."""
    per = res.coco.per_class
    pr = res.per_class_pr()
    n_images = res.n_images
    lines = [val_header(), all_line(res)]
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
        lines.append(f"best epoch {best_epoch}: mAP50-95 {best[mn.MAP]:.4f}, mAP50 {best[mn.MAP50]:.4f}")
    w = save_dir / "weights"
    lines.append(f"weights: {w / 'best.pt'} (best), {w / 'last.pt'} (last)")
    lines.append(f"results saved to {save_dir} (results.csv, results.png)")
    return "\n".join(lines)
