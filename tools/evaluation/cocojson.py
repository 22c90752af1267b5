"""COCO JSON in and out: read and check ground truth and detection results, write results files.

Everything that reaches a COCO evaluator passes through here first, so that bad input fails with a
``CocoFormatError`` (a ``ValueError``) naming the file and what is wrong, instead of an ``AssertionError``
or ``KeyError`` from deep inside pycocotools.

Conventions (the COCO results format, https://cocodataset.org/#format-results):

* a detection is ``{"image_id": int, "category_id": int, "bbox": [x, y, w, h], "score": float}`` with the
  box in original-image pixels, top-left corner plus width and height;
* category ids are COCO's, not class indices: map with an explicit ``cat_ids`` list (``cat_ids[cls]``), for
  COCO's 80 training classes ``coco80_to_91()``.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fileio import atomic_write

__all__ = [
    "CocoFormatError",
    "atomic_write_json",
    "check_detections",
    "check_ground_truth",
    "class_index",
    "class_indices",
    "coco80_to_91",
    "detections_to_coco",
    "read_json",
]

# COCO 2014/2017 detection uses 80 of the 91 category ids of the original paper; these 11 were never annotated.
_COCO_UNUSED_IDS = frozenset({12, 26, 29, 30, 45, 66, 68, 69, 71, 83})


class CocoFormatError(ValueError):
    """A COCO ground-truth or results file (or the equivalent in-memory object) is malformed."""


def coco80_to_91() -> list[int]:
    """COCO category ids for the 80 training classes: ``coco80_to_91()[cls]`` is the id of class index ``cls``.

    Class indices follow the usual 80-class order (person=0 -> id 1, ..., toothbrush=79 -> id 90).
    """
    return [i for i in range(1, 91) if i not in _COCO_UNUSED_IDS]


def class_index(cat_ids: Sequence[Any]) -> dict[Any, int]:
    """The inverse of ``cat_ids`` (class index -> COCO category id): ``{category_id: class index}``.

    Raises ``ValueError`` when a category id repeats (two classes cannot share one id).
    """
    index = {c: k for k, c in enumerate(cat_ids)}
    if len(index) != len(cat_ids):
        raise ValueError(f"cat_ids repeat a category id: {list(cat_ids)}")
    return index


def class_indices(dt: Sequence[dict], cat_ids: Sequence[Any]) -> np.ndarray:
    """``int64 [len(dt)]``: the class index of each COCO result's ``category_id`` (see :func:`class_index`).

    Raises ``ValueError`` naming the ids that are not in ``cat_ids``.
    """
    index = class_index(cat_ids)
    unknown = {d["category_id"] for d in dt} - index.keys()
    if unknown:
        raise ValueError(f"category ids not in cat_ids {_few(list(cat_ids), 10)}: {_few(unknown)}")
    return np.array([index[d["category_id"]] for d in dt], dtype=np.int64)


def read_json(path: str | os.PathLike) -> Any:
    """Parse a JSON file; malformed or truncated content raises ``CocoFormatError`` naming the file."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise CocoFormatError(f"{path}: not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})") from e
    except UnicodeDecodeError as e:
        raise CocoFormatError(f"{path}: not a UTF-8 text file ({e.reason} at byte {e.start})") from e


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int | None = None) -> Path:
    """Write ``obj`` as JSON to ``path`` through a temporary file and ``os.replace``: never a half-written file.

    Non-finite floats are refused (``ValueError``) rather than written as the non-JSON ``NaN``.
    """
    return atomic_write(path, json.dumps(obj, indent=indent, allow_nan=False))


def _few(items: Sequence[Any] | set[Any], n: int = 5) -> str:
    if isinstance(items, set):
        try:
            items = sorted(items)
        except TypeError:  # mixed types (e.g. 1 and '1')
            items = sorted(items, key=repr)
    items = list(items)
    head = ", ".join(repr(x) for x in items[:n])
    return f"[{head}{', ...' if len(items) > n else ''}] ({len(items)} in all)"


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _check_box(box: Any, where: str) -> None:
    if not isinstance(box, (list, tuple)) or len(box) != 4 or not all(_is_number(v) for v in box):
        raise CocoFormatError(f"{where}: 'bbox' must be 4 finite numbers [x, y, w, h], got {box!r}")
    if box[2] < 0 or box[3] < 0:
        raise CocoFormatError(f"{where}: 'bbox' [x, y, w, h] has a negative width or height: {box!r}")


def _check_record(rec: Any, keys: Sequence[str], where: str) -> None:
    """An object with every one of ``keys`` and a valid ``bbox``; else ``CocoFormatError`` naming ``where``."""
    if not isinstance(rec, dict):
        raise CocoFormatError(f"{where} is not an object")
    for key in keys:
        if key not in rec:
            raise CocoFormatError(f"{where} has no '{key}' (keys: {sorted(rec)})")
    _check_box(rec["bbox"], where)


def _unique_ids(records: list, key: str, source: str) -> set[Any]:
    """The ``id`` of every record of ``gt[key]``; a record without one or a repeated id raises."""
    seen: set[Any] = set()
    for i, rec in enumerate(records):
        if not isinstance(rec, dict) or "id" not in rec:
            raise CocoFormatError(f"{source}: {key}[{i}] is not an object with an 'id'")
        if rec["id"] in seen:
            raise CocoFormatError(f"{source}: {key}[{i}] repeats id {rec['id']!r}")
        seen.add(rec["id"])
    return seen


def _checked_annotations(records: list, ids: dict[str, set[Any]], source: str,
                         reindex_ann_ids: bool) -> tuple[list[dict], set[Any], int]:  # fmt: skip
    """``(normalised copies, annotation ids as given, how many had no area)`` of the annotations (rules in
    :func:`check_ground_truth`); ``ids``: the image and category ids."""
    anns, ann_ids, no_area = [], set(), 0
    for i, a in enumerate(records):
        where = f"{source}: annotations[{i}]"
        _check_record(a, ("id", "image_id", "category_id", "bbox"), where)
        if a["image_id"] not in ids["images"]:
            raise CocoFormatError(f"{where}: image_id {a['image_id']!r} is not in 'images'")
        if a["category_id"] not in ids["categories"]:
            raise CocoFormatError(f"{where}: category_id {a['category_id']!r} is not in 'categories'")
        if a["id"] in ann_ids and not reindex_ann_ids:
            raise CocoFormatError(f"{where} repeats annotation id {a['id']!r} (ids must be unique)")
        ann_ids.add(a["id"])
        a = dict(a)
        if reindex_ann_ids:
            a["id"] = i + 1
        a.setdefault("iscrowd", 0)
        if not _is_number(a.get("area")):
            a["area"] = float(a["bbox"][2] * a["bbox"][3])
            no_area += 1
        anns.append(a)
    return anns, ann_ids, no_area


def check_ground_truth(gt: Any, source: str = "<ground truth>", reindex_ann_ids: bool = False) -> dict:
    """Check a COCO ground-truth dict and return a normalised copy ready for pycocotools / faster-coco-eval.

    Checks: ``images``, ``annotations`` and ``categories`` lists; unique image, category and annotation ids;
    every annotation has an image and category that exist and a valid ``bbox``. Normalises: a missing
    ``iscrowd`` becomes 0; a missing ``area`` becomes ``w * h`` (with a warning: pycocotools reads the
    ``area`` field for the small/medium/large ranges and would fail without it).

    Annotation id 0: pycocotools and faster-coco-eval store the matched ground-truth *id* per detection and
    read 0 as "unmatched", so a ground truth with id 0 can never be a true positive. It is kept as is (the
    numbers then agree with pycocotools) with a warning, or with ``reindex_ann_ids=True`` all annotations
    are renumbered ``1..n`` in file order, which gives the intended result.
    """
    if not isinstance(gt, dict):
        raise CocoFormatError(f"{source}: a COCO ground truth must be a JSON object, got {type(gt).__name__}")
    for key in ("images", "annotations", "categories"):
        if not isinstance(gt.get(key), list):
            raise CocoFormatError(f"{source}: missing or non-list '{key}' (keys present: {sorted(gt)})")
    ids = {key: _unique_ids(gt[key], key, source) for key in ("images", "categories")}
    anns, ann_ids, no_area = _checked_annotations(gt["annotations"], ids, source, reindex_ann_ids)
    if no_area:
        msg = f"{source}: {no_area} annotations have no 'area'; using bbox w*h for the area ranges"
        warnings.warn(msg, stacklevel=2)
    if 0 in ann_ids and not reindex_ann_ids:
        warnings.warn(
            f"{source}: an annotation has id 0; pycocotools reads a matched ground-truth id of 0 as 'unmatched', "
            "so it can never count as a true positive. Renumber the ids from 1 (--reindex-ann-ids) to fix.",
            stacklevel=2,
        )
    out = dict(gt)
    out["annotations"] = anns
    return out


def check_detections(dt: Any, gt: dict, source: str = "<detections>", gt_source: str = "<ground truth>") -> list[dict]:
    """Check COCO bbox results against a (checked) ground truth; return a list of fresh detection dicts.

    Each detection needs ``image_id``, ``category_id``, ``bbox`` (4 finite numbers, w and h >= 0) and a
    finite ``score``. Image ids absent from the ground truth and unknown category ids raise an error listing
    a few (pycocotools fails on the former with an ``AssertionError`` and silently drops the latter).
    Only those four keys are kept, so the evaluators' in-place edits never touch the caller's objects.
    """
    if isinstance(dt, dict):
        raise CocoFormatError(
            f"{source}: expected a JSON list of detections, got an object with keys {sorted(dt)[:8]}"
            + (" (a ground-truth file?)" if "images" in dt else "")
        )
    if not isinstance(dt, list):
        raise CocoFormatError(f"{source}: expected a JSON list of detections, got {type(dt).__name__}")
    img_ids = {im["id"] for im in gt["images"]}
    cat_ids = {c["id"] for c in gt["categories"]}
    out, bad_img, bad_cat = [], set(), set()
    for i, d in enumerate(dt):
        where = f"{source}: detection {i}"
        _check_record(d, ("image_id", "category_id", "bbox", "score"), where)
        if not _is_number(d["score"]):
            raise CocoFormatError(f"{where}: 'score' must be a finite number, got {d['score']!r}")
        if d["image_id"] not in img_ids:
            bad_img.add(d["image_id"])
        if d["category_id"] not in cat_ids:
            bad_cat.add(d["category_id"])
        out.append(
            {"image_id": d["image_id"], "category_id": d["category_id"], "bbox": list(d["bbox"]), "score": d["score"]}
        )
    if bad_img:
        hint = " (ids are compared by type too: 1 and '1' differ)" if any(isinstance(x, str) for x in bad_img) else ""
        raise CocoFormatError(f"{source}: image ids not in the ground truth {gt_source}: {_few(bad_img)}{hint}")
    if bad_cat:
        raise CocoFormatError(
            f"{source}: category ids not in the ground truth {gt_source}: {_few(bad_cat)}; "
            f"known ids: {_few(sorted(cat_ids), 10)}. Map class indices with an explicit cat_ids list "
            "(coco80_to_91() for COCO's 80 classes)."
        )
    return out


def detections_to_coco(
    boxes_xyxy: Any,
    scores: Any,
    classes: Any,
    image_id: Any,
    cat_ids: Sequence[int] | None = None,
) -> list[dict]:
    """COCO results entries for the detections of one image.

    Args:
        boxes_xyxy: ``[k, 4]`` boxes ``x1, y1, x2, y2`` in original-image pixels (any sequence or array/tensor
            convertible with ``.tolist()``).
        scores: ``[k]`` confidences; rounded to 5 decimals.
        classes: ``[k]`` class indices; the category id is ``cat_ids[cls]``, or ``cls`` itself when ``cat_ids``
            is None (for ground truths whose category ids are the class indices).
        image_id: the ground truth's image id.

    Boxes are written ``[x, y, w, h]`` rounded to 3 decimals (a thousandth of a pixel).
    """
    boxes = boxes_xyxy.tolist() if hasattr(boxes_xyxy, "tolist") else list(boxes_xyxy)
    scores = scores.tolist() if hasattr(scores, "tolist") else list(scores)
    classes = classes.tolist() if hasattr(classes, "tolist") else list(classes)
    if not (len(boxes) == len(scores) == len(classes)):
        raise ValueError(f"boxes ({len(boxes)}), scores ({len(scores)}) and classes ({len(classes)}) differ in length")
    out = []
    for (x1, y1, x2, y2), s, c in zip(boxes, scores, classes):
        c = int(c)
        if cat_ids is not None and not 0 <= c < len(cat_ids):
            raise ValueError(f"class index {c} outside cat_ids (a list of {len(cat_ids)} category ids)")
        out.append(
            {
                "image_id": image_id,
                "category_id": int(cat_ids[c]) if cat_ids is not None else c,
                "bbox": [round(x1, 3), round(y1, 3), round(x2 - x1, 3), round(y2 - y1, 3)],
                "score": round(float(s), 5),
            }
        )
    return out
