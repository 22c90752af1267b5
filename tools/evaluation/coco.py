"""COCO bbox evaluation with a choice of backend: ``pycocotools`` (the reference) or ``faster`` (faster-coco-eval).

Both backends run COCO's own matching and accumulation; this module only prepares their input (already
checked by ``cocojson``), keeps them quiet, and reads the accumulated precision/recall arrays into the 12
standard numbers, the per-class table and the curves for plots. The summary is computed here from those
arrays with COCO's rule (the mean over entries that are not -1, or -1 when all are), so the two backends
are read identically.

Empty detection list: pycocotools fails on ``loadRes([])``. Here no backend is called; every number is 0
where the ground truth has (non-crowd) objects in that area range and -1 where it has none, which is what
COCO's accumulation gives for zero detections.

P and R as yolov5 prints them are read off the same IoU-0.50 curves: each class at its best-F1 point
(:func:`best_f1_pr`), then the mean over classes with ground truth (:func:`mean_pr`).
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .cocojson import class_index

__all__ = ["BACKENDS", "STAT_NAMES", "CocoStats", "best_f1_pr", "coco_evaluate", "mean_pr"]

BACKENDS = ("pycocotools", "faster")

# The 12 numbers of COCOeval.summarize() for bbox, in its order.
STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
AREA_RANGES = {"all": (0.0, 1e10), "small": (0.0, 32.0**2), "medium": (32.0**2, 96.0**2), "large": (96.0**2, 1e10)}
IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
RECALL_THRESHOLDS = np.linspace(0.0, 1.0, 101)


@dataclass
class CocoStats:
    """Result of a COCO bbox evaluation.

    Attributes:
        stats: the 12 COCOeval summary numbers in ``STAT_NAMES`` order (-1: no ground truth in that range).
        per_class: one dict a category: ``category_id``, ``name``, ``ap`` (IoU .50:.95), ``ap50``, ``instances``
            (non-crowd ground truths), ``detections``; ap values are -1 for a category without ground truth.
        precision: ``[T=10, R=101, K]`` interpolated precision at IoU ``IOU_THRESHOLDS``, recall
            ``RECALL_THRESHOLDS``, area "all", maxDets 100 (-1 where undefined); for PR curves.
        cat_ids: the K category ids of ``precision``'s last axis (sorted, as COCOeval orders them).
        backend: which backend produced the numbers (``"none"`` for an empty detection list).
    """

    stats: list[float]
    per_class: list[dict] = field(default_factory=list)
    precision: np.ndarray = field(default_factory=lambda: np.zeros((10, 101, 0)))
    cat_ids: list[Any] = field(default_factory=list)
    backend: str = "none"
    max_dets: int = 100  # COCOeval's largest maxDets: AP and AR100 rank this many detections an image


def _summary_mean(s: np.ndarray) -> float:
    valid = s[s > -1]
    return float(np.mean(valid)) if valid.size else -1.0


def _stats_from_arrays(precision: np.ndarray, recall: np.ndarray) -> list[float]:
    """The 12 summary numbers from COCOeval ``eval`` arrays: precision ``[T,R,K,A,M]``, recall ``[T,K,A,M]``.

    Areas are ordered all/small/medium/large and maxDets 1/10/100, as in COCOeval's default params.
    """
    t50, t75 = 0, 5  # indices of IoU 0.50 and 0.75 in IOU_THRESHOLDS
    ap = [
        _summary_mean(precision[:, :, :, 0, 2]),
        _summary_mean(precision[t50, :, :, 0, 2]),
        _summary_mean(precision[t75, :, :, 0, 2]),
    ]
    ap += [_summary_mean(precision[:, :, :, a, 2]) for a in (1, 2, 3)]
    ar = [_summary_mean(recall[:, :, 0, m]) for m in (0, 1, 2)]
    ar += [_summary_mean(recall[:, :, a, 2]) for a in (1, 2, 3)]
    return ap + ar


def _run_backend(
    backend: str, gt: dict, dt: list[dict], img_ids: Sequence[Any] | None, max_dets: int = 100
) -> tuple[Any, Any]:
    """Run evaluate + accumulate with one backend (``maxDets = [1, 10, max_dets]``); return (precision, recall)."""
    if backend == "pycocotools":
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress on stdout
            coco_gt = COCO()
            coco_gt.dataset = gt
            coco_gt.createIndex()
            coco_dt = coco_gt.loadRes(dt)
            ev = COCOeval(coco_gt, coco_dt, "bbox")
            _evaluate(ev, max_dets, img_ids)
    elif backend == "faster":
        from faster_coco_eval import COCO as FCOCO
        from faster_coco_eval import COCOeval_faster

        with warnings.catch_warnings():  # its own id-0 warning repeats ours from check_ground_truth
            warnings.simplefilter("ignore", UserWarning)
            coco_gt = FCOCO(gt, print_function=lambda *a, **k: None)
            coco_dt = coco_gt.loadRes(dt)
            ev = COCOeval_faster(coco_gt, coco_dt, "bbox", print_function=lambda *a, **k: None)
            _evaluate(ev, max_dets, img_ids)
    else:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    return np.asarray(ev.eval["precision"], dtype=np.float64), np.asarray(ev.eval["recall"], dtype=np.float64)


def _empty_arrays(gt: dict, cat_ids: list[Any], img_ids: set[Any]) -> tuple[np.ndarray, np.ndarray]:
    """COCOeval's arrays for zero detections: 0 where a category has non-crowd ground truth in the range, else -1."""
    col = class_index(cat_ids)
    present = np.zeros((len(cat_ids), len(AREA_RANGES)), dtype=bool)
    for a in gt["annotations"]:
        if a["image_id"] in img_ids and not a.get("iscrowd", 0) and a["category_id"] in col:
            for j, (lo, hi) in enumerate(AREA_RANGES.values()):
                present[col[a["category_id"]], j] |= lo <= a["area"] <= hi
    value = np.where(present, 0.0, -1.0)  # [K, A]
    t, r, m = len(IOU_THRESHOLDS), len(RECALL_THRESHOLDS), 3
    precision = np.broadcast_to(value[None, None, :, :, None], (t, r, len(cat_ids), len(AREA_RANGES), m)).copy()
    recall = np.broadcast_to(value[None, :, :, None], (t, len(cat_ids), len(AREA_RANGES), m)).copy()
    return precision, recall


def coco_evaluate(
    gt: dict, dt: list[dict], backend: str = "pycocotools", img_ids: Sequence[Any] | None = None, max_dets: int = 100
) -> CocoStats:
    """Evaluate checked COCO bbox results ``dt`` against a checked ground truth ``gt``.

    Args:
        gt: ground truth as returned by ``cocojson.check_ground_truth`` (not modified).
        dt: detections as returned by ``cocojson.check_detections`` (copied: the backends edit their input).
        backend: ``"pycocotools"`` or ``"faster"``; both imported only when used.
        img_ids: evaluate only these images (default: every image of ``gt``, as COCOeval does); for a model
            run over part of a split pass the ids it saw, so unseen images do not count as misses.
        max_dets: the detections an image that AP and AR100 rank (COCOeval's 100; more for crowded images).
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    cat_ids = sorted(c["id"] for c in gt["categories"])
    ids = {im["id"] for im in gt["images"]} if img_ids is None else set(img_ids)
    if dt:
        precision, recall = _run_backend(backend, gt, [dict(d) for d in dt], img_ids, max_dets)
        used = backend
    else:
        precision, recall = _empty_arrays(gt, cat_ids, ids)
        used = "none"
    names = {c["id"]: c.get("name", str(c["id"])) for c in gt["categories"]}
    instances = dict.fromkeys(cat_ids, 0)
    for a in gt["annotations"]:
        if a["image_id"] in ids and not a.get("iscrowd", 0):
            instances[a["category_id"]] += 1
    n_det = dict.fromkeys(cat_ids, 0)
    for d in dt:
        if d["image_id"] in ids:
            n_det[d["category_id"]] += 1
    pr = precision[:, :, :, 0, 2]
    per_class = [
        {
            "category_id": c,
            "name": names[c],
            "ap": _summary_mean(pr[:, :, k]),
            "ap50": _summary_mean(pr[0, :, k]),
            "instances": instances[c],
            "detections": n_det[c],
        }
        for k, c in enumerate(cat_ids)
    ]
    return CocoStats(_stats_from_arrays(precision, recall), per_class, pr.copy(), cat_ids, used, max_dets)


def best_f1_pr(precision: np.ndarray) -> list[tuple[float, float]]:
    """Per class ``(P, R)`` at the best-F1 point of COCO's IoU-0.50 precision/recall curve.

    ``precision``: :attr:`CocoStats.precision` ``[T, R, K]`` (interpolated, -1 where undefined); the curve of
    class k is ``precision[0, :, k]`` against ``RECALL_THRESHOLDS``. ``(nan, nan)`` for a class without
    ground truth, ``(0, 0)`` when its F1 is 0 everywhere. yolov5 reports P and R at the max-F1 confidence of
    its own curve; this is the same idea read off COCO's curve.
    """
    if precision.ndim != 3:
        raise ValueError(f"precision must be COCO's [T, R, K] array, got shape {precision.shape}")
    recall = np.linspace(0.0, 1.0, precision.shape[1])
    out = []
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
    """Mean ``(P, R)`` over the classes of :func:`best_f1_pr` that have ground truth (``(0, 0)`` if none)."""
    valid = [x for x in pr if x[0] == x[0]]
    if not valid:
        return 0.0, 0.0
    return float(np.mean([x[0] for x in valid])), float(np.mean([x[1] for x in valid]))


def _evaluate(ev: Any, max_dets: int, img_ids: Sequence[Any] | None) -> None:
    """Run a ``COCOeval`` (pycocotools or faster-coco-eval: the same API) with ``maxDets = [1, 10, max_dets]`` on
    ``img_ids`` (``None``: every image), up to its accumulated precision/recall arrays in ``ev.eval``."""
    ev.params.maxDets = [1, 10, max_dets]
    if img_ids is not None:
        ev.params.imgIds = list(img_ids)
    ev.evaluate()
    ev.accumulate()
