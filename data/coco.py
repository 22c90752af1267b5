"""Read a COCO detection annotation file (``instances_*.json``) into per-image normalised labels.

Format (cocodataset.org/#format-data): ``images`` (``id``, ``file_name``, ``width``, ``height``),
``categories`` (``id``, ``name``), ``annotations`` (``id``, ``image_id``, ``category_id``,
``bbox = [x, y, w, h]`` in pixels from the top-left corner, ``iscrowd``). Category ids, sorted, map to
contiguous class indices ``0..nc-1`` (``cat_ids[cls]`` gives the id back). Crowd annotations
(``iscrowd: 1``) become ignore regions: rows of class ``-1`` (counted as ``crowd``; their box is checked
like any other, their category is not used). The evaluator reads crowd annotations from the JSON itself.
JSON has no useful line numbers, so issues name the annotation
(``annotations[index] id=...``) in place of a line.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .report import DatasetError, DatasetNotFoundError, DatasetReport

CLIP_TOL_PX = 1.0  # boxes up to 1 px outside the image are clipped; further out is a bad annotation


@dataclass
class CocoIndex:
    """The usable content of a COCO file: parallel per-image lists and the category mapping."""

    image_ids: list[int]
    file_names: list[str]
    shapes: list[tuple[int, int]]  # (height, width) from the JSON
    labels: list[np.ndarray]  # float32 [n, 5] (cls, cx, cy, w, h) normalised to the image
    cat_ids: list[int]
    names: list[str]


def load_json(path: str | os.PathLike) -> dict:
    """Load a COCO annotation file as a mapping; clear errors for missing, unreadable or bad JSON."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise DatasetNotFoundError(f"COCO annotation file not found: {p}")
    try:
        with open(p, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise DatasetError(f"{p}:{e.lineno}: invalid JSON: {e.msg}") from e
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"{p}: cannot read: {e}") from e
    if not isinstance(data, dict):
        raise DatasetError(f"{p}: a COCO file must be a JSON object, got {type(data).__name__}")
    for key in ("images", "categories"):
        if not isinstance(data.get(key), list):
            raise DatasetError(f"{p}: missing or non-list key '{key}'")
    if not isinstance(data.get("annotations", []), list):
        raise DatasetError(f"{p}: key 'annotations' must be a list")
    return data


def read_coco(path: str | os.PathLike, report: DatasetReport) -> CocoIndex:
    """Parse and validate ``path``; bad images/annotations are reported (raised under ``report.strict``)."""
    src = str(Path(path).expanduser())
    data = load_json(path)
    cats: dict[int, str] = {}
    for i, c in enumerate(data["categories"]):
        if not isinstance(c, dict) or not _is_int(c.get("id")):
            raise DatasetError(f"{src}: categories[{i}] needs an integer 'id'")
        if c["id"] in cats:
            raise DatasetError(f"{src}: categories[{i}] repeats id {c['id']}")
        cats[c["id"]] = str(c.get("name", c["id"]))
    if not cats:
        raise DatasetError(f"{src}: no categories")
    cat_ids = sorted(cats)
    cls_of = {cid: i for i, cid in enumerate(cat_ids)}

    images: dict[int, tuple[str, int, int]] = {}
    for i, im in enumerate(data["images"]):
        where = f"images[{i}]"
        ok = isinstance(im, dict) and _is_int(im.get("id")) and isinstance(im.get("file_name"), str)
        ok = ok and _is_int(im.get("width")) and _is_int(im.get("height")) and im["width"] > 0 and im["height"] > 0
        if not ok:
            report.add("bad_json", src, None, f"{where}: needs integer 'id', 'width', 'height' > 0 and a 'file_name'")
            continue
        if im["id"] in images:
            report.add("bad_json", src, None, f"{where}: repeats image id {im['id']}")
            continue
        images[im["id"]] = (im["file_name"], im["height"], im["width"])

    rows: dict[int, list[tuple[float, ...]]] = {k: [] for k in images}
    seen: dict[tuple[int, tuple[float, ...]], int] = {}
    for i, a in enumerate(data.get("annotations", [])):
        aid = a.get("id") if isinstance(a, dict) else None
        where = f"annotations[{i}] id={aid}"
        row = _parse_ann(a, images, cls_of, src, where, report)
        if row is None:
            continue
        img_id, r = row
        if r[0] < 0 and (img_id, r) in seen:  # one crowd region given for several categories: one ignore region
            continue
        if (img_id, r) in seen:
            report.add("duplicate", src, None, f"{where}: duplicate of annotations[{seen[(img_id, r)]}] dropped")
            continue
        seen[(img_id, r)] = i
        rows[img_id].append(r)

    ids = list(images)
    return CocoIndex(
        image_ids=ids,
        file_names=[images[k][0] for k in ids],
        shapes=[(images[k][1], images[k][2]) for k in ids],
        labels=[np.array(rows[k], np.float32).reshape(-1, 5) for k in ids],
        cat_ids=cat_ids,
        names=[cats[c] for c in cat_ids],
    )


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_finite(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _parse_ann(a, images, cls_of, src: str, where: str, report: DatasetReport):
    if not isinstance(a, dict):
        report.add("bad_annotation", src, None, f"{where}: not an object")
        return None
    if a.get("image_id") not in images:
        report.add("bad_annotation", src, None, f"{where}: image_id {a.get('image_id')!r} not in 'images'")
        return None
    crowd = bool(a.get("iscrowd", 0))
    if not crowd and a.get("category_id") not in cls_of:
        report.add("bad_annotation", src, None, f"{where}: category_id {a.get('category_id')!r} not in 'categories'")
        return None
    box = a.get("bbox")
    if not (isinstance(box, list) and len(box) == 4 and all(_is_finite(v) for v in box)):
        report.add("bad_annotation", src, None, f"{where}: bbox must be 4 finite numbers [x, y, w, h], got {box!r}")
        return None
    x, y, w, h = (float(v) for v in box)
    _, ih, iw = images[a["image_id"]]
    if w <= 0 or h <= 0:
        report.add("bad_annotation", src, None, f"{where}: bbox width/height must be > 0, got {box}")
        return None
    x2, y2 = x + w, y + h
    if x < -CLIP_TOL_PX or y < -CLIP_TOL_PX or x2 > iw + CLIP_TOL_PX or y2 > ih + CLIP_TOL_PX:
        report.add("bad_annotation", src, None, f"{where}: bbox {box} outside the {iw}x{ih} image")
        return None
    if x < 0 or y < 0 or x2 > iw or y2 > ih:
        report.add("clipped", src, None, f"{where}: bbox edge slightly outside the image clipped to it")
        x, y, x2, y2 = max(x, 0.0), max(y, 0.0), min(x2, float(iw)), min(y2, float(ih))
    if crowd:
        report.add("crowd", src, None, f"{where}: crowd region kept as an ignore region (class -1)")
    cls = -1.0 if crowd else float(cls_of[a["category_id"]])
    r = (cls, (x + x2) / 2 / iw, (y + y2) / 2 / ih, (x2 - x) / iw, (y2 - y) / ih)
    return a["image_id"], r
