"""The pictures of a run folder, one call per moment of a run (the trainer and ``tools/eval.py`` call these).

* :func:`write_train_start_plots` -> ``labels.jpg`` (class histogram, box shapes, centres, sizes);
* :func:`save_batch_image` -> ``train_batch0.jpg`` (the augmented first batch with its boxes);
* :func:`write_val_plots` -> ``PR_curve.png``, ``reliability.png``, ``confusion_matrix.png``,
  ``F1_curve.png``, ``P_curve.png``, ``R_curve.png``, ``val_batch0_labels.jpg``, ``val_batch0_pred.jpg``.

matplotlib is an extra: without it each function warns once and writes nothing (the run goes on).
Computation lives in ``tools.evaluation`` (``confusion``, ``curves``) and so do the figures of numbers
(``runfigures``, ``plots``); the pictures drawn on images (``batchimages``) and from labels (``labelplot``) here.
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from tools.evaluation.cocojson import class_index

from .annotate import write_image
from .batchimages import MAX_IMAGES, batch_grid, targets_to_xyxy

__all__ = ["save_batch_image", "write_train_start_plots", "write_val_plots"]

PRED_CONF = 0.25  # predictions drawn on val_batch0_pred.jpg (yolov5 plot_images draws conf > 0.25)


def _have_matplotlib(what: str) -> bool:
    if importlib.util.find_spec("matplotlib") is None:
        warnings.warn(f"matplotlib is not installed: {what} not written (pip install matplotlib)", stacklevel=3)
        return False
    return True


def write_train_start_plots(save_dir: str | os.PathLike[str], train_ds: Any, names: Any = None) -> list[Path]:
    """``labels.jpg`` of a dataset's labels (``train_ds.labels``: per image ``[n, 5]`` cls cx cy w h)."""
    from .labelplot import plot_labels

    if not _have_matplotlib("labels.jpg"):
        return []
    names = list(names if names is not None else train_ds.names)
    return [plot_labels(train_ds.labels, names, Path(save_dir) / "labels.jpg")]


def save_batch_image(imgs: Any, targets: Any, names: Any, path: str | os.PathLike[str], paths: Any = None) -> Path:
    """Write a collated batch (``imgs`` ``[bs, 3, H, W]`` uint8 or 0..1 float, ``targets`` ``[n, 6]``) as a grid."""
    h, w = imgs.shape[-2:]
    boxes = [targets_to_xyxy(targets, k, w, h) for k in range(imgs.shape[0])]
    return write_image(path, batch_grid(imgs, boxes, list(names), paths))


def _first_batch(dataset: Any, n: int) -> tuple[Any, Any, list[str], list[dict]]:
    from data.datasets import collate_fn

    return collate_fn([dataset[i] for i in range(min(n, len(dataset)))])


def _letterboxed_preds(dt: list[dict], metas: list[dict], cat_ids: list[Any]) -> list[np.ndarray]:
    """Each image's COCO results (original pixels) as ``[k, 6]`` xyxy conf cls in its letterboxed pixels."""
    from data.letterbox import letterbox_boxes

    col = class_index(cat_ids)
    by_image: dict[Any, list] = {m["image_id"]: [] for m in metas}
    for d in dt:
        if d["image_id"] in by_image:
            x, y, bw, bh = d["bbox"]
            by_image[d["image_id"]].append([x, y, x + bw, y + bh, d["score"], col[d["category_id"]]])
    out = []
    for m in metas:
        rows = np.asarray(by_image[m["image_id"]], np.float64).reshape(-1, 6)
        if len(rows):
            rows[:, :4] = letterbox_boxes(rows[:, :4], m["ratio"], m["pad"])
        out.append(rows)
    return out


def write_val_plots(
    save_dir: str | os.PathLike[str],
    result: Any,
    dataset: Any,
    conf_thres: float = 0.25,
    iou_thres: float = 0.45,
) -> list[Path]:
    """The validation pictures of an ``EvalResult`` (``tools.evaluation.evaluate``) of a model on ``dataset``.

    ``dataset``: the non-augmented dataset the model was evaluated on (``cat_ids``, ``image_ids``, samples with
    ``ratio``/``pad``). The confusion matrix uses ``conf_thres``/``iou_thres`` (see ``confusion``); the P/R/F1
    curves IoU 0.5. Returns the paths written.
    """
    from tools.evaluation.confusion import confusion_from_coco
    from tools.evaluation.curves import confidence_curves
    from tools.evaluation.plots import save_plots
    from tools.evaluation.runfigures import plot_confidence_curve, plot_confusion_matrix

    if not _have_matplotlib("validation plots"):
        return []
    gt, dt = result.ground_truth, result.detections
    if gt is None:
        raise ValueError("write_val_plots needs an EvalResult with its ground_truth (from evaluate_results)")
    out = Path(save_dir)
    cat_ids, img_ids = list(dataset.cat_ids), list(dataset.image_ids)
    paths = list(save_plots(result.coco, result.calibration, out))
    cm = confusion_from_coco(gt, dt, cat_ids, conf_thres, iou_thres, img_ids)
    paths.append(plot_confusion_matrix(cm, out / "confusion_matrix.png"))
    curves = confidence_curves(gt, dt, cat_ids, 0.5, img_ids=img_ids)
    for which, name in (("f1", "F1_curve.png"), ("precision", "P_curve.png"), ("recall", "R_curve.png")):
        paths.append(plot_confidence_curve(curves, which, out / name))
    imgs, targets, files, metas = _first_batch(dataset, MAX_IMAGES)
    names = list(dataset.names)
    paths.append(save_batch_image(imgs, targets, names, out / "val_batch0_labels.jpg", files))
    preds = _letterboxed_preds(dt, metas, cat_ids)
    grid = batch_grid(imgs, preds, names, files, show_conf=True, conf_thres=PRED_CONF)
    paths.append(write_image(out / "val_batch0_pred.jpg", grid))
    return paths
