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
from typing import Any

import numpy as np

from .coco_columns import CLIP_TOL_PX, Columns, Issues, Row, check_columns
from .report import DatasetError, DatasetNotFoundError, DatasetReport
from .store import RaggedRows


@dataclass
class CocoIndex:
    """The usable content of a COCO file: parallel per-image lists and the category mapping."""

    image_ids: list[int]
    file_names: list[str]
    shapes: list[tuple[int, int]]  # (height, width) from the JSON
    labels: RaggedRows  # per image float32 [n, 5] (cls, cx, cy, w, h) normalised to the image
    cat_ids: list[int]
    names: list[str]


def load_json(path: str | os.PathLike, hook: Any = None) -> dict:
    """Load a COCO annotation file as a mapping; clear errors for missing, unreadable or bad JSON."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise DatasetNotFoundError(f"COCO annotation file not found: {p}")
    try:
        with open(p, encoding="utf-8") as f:
            data = json.load(f, object_pairs_hook=hook)
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
    """Parse and validate ``path``; bad images/annotations are reported (raised under ``report.strict``).

    Well-typed annotations are checked as numpy columns; the report lists issues in file order as before.
    """
    src = str(Path(path).expanduser())
    cols = Columns()
    data = load_json(path, cols.hook)
    cats = _categories(data["categories"], src)
    cat_ids = sorted(cats)
    cls_of = {cid: i for i, cid in enumerate(cat_ids)}
    images = _images(data["images"], src, report)
    anns = data.get("annotations", [])
    del data
    issues = Issues()
    rows, pos, img_idx, aid = _annotation_rows(anns, cols, images, cls_of, src, issues)
    del anns, cols
    keep = _drop_duplicates(rows, pos, img_idx, aid, src, issues)
    for _, _, kind, reason in sorted(issues.items):
        report.add(kind, src, None, reason)
    ids = list(images)
    return CocoIndex(
        image_ids=ids,
        file_names=[images[k][0] for k in ids],
        shapes=[(images[k][1], images[k][2]) for k in ids],
        labels=_per_image(rows[keep], img_idx[keep], len(images)),
        cat_ids=cat_ids,
        names=[cats[c] for c in cat_ids],
    )


def _categories(entries: list, src: str) -> dict[int, str]:
    """``{category id: name}`` in file order; a missing/non-integer/repeated id or no category at all raises."""
    cats: dict[int, str] = {}
    for i, c in enumerate(entries):
        if not isinstance(c, dict) or not _is_int(c.get("id")):
            raise DatasetError(f"{src}: categories[{i}] needs an integer 'id'")
        if c["id"] in cats:
            raise DatasetError(f"{src}: categories[{i}] repeats id {c['id']}")
        cats[c["id"]] = str(c.get("name", c["id"]))
    if not cats:
        raise DatasetError(f"{src}: no categories")
    return cats


def _images(entries: list, src: str, report: DatasetReport) -> dict[int, tuple[str, int, int]]:
    """``{image id: (file name, height, width)}`` in file order; malformed or repeated entries are reported."""
    images: dict[int, tuple[str, int, int]] = {}
    for i, im in enumerate(entries):
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
    return images


def _per_image(rows: np.ndarray, img_idx: np.ndarray, n_images: int) -> RaggedRows:
    """Rows ``[m, 5]`` of images ``img_idx [m]`` grouped per image (file order kept within an image)."""
    order = np.argsort(img_idx, kind="stable")
    counts = np.bincount(img_idx, minlength=n_images)
    offsets = np.zeros(n_images + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    return RaggedRows(rows[order].astype(np.float32), offsets)


def _annotation_rows(anns: list, cols: Columns, images: dict, cls_of: dict, src: str, issues: Issues):
    """``(rows float64 [m, 5], annotation position [m], image index [m], annotation id [m])`` of those that pass."""
    img_index = {k: j for j, k in enumerate(images)}
    fast_pos, fast_row, slow = [], [], []
    for i, a in enumerate(anns):
        if type(a) is Row:
            fast_pos.append(i)
            fast_row.append(int(a))
        else:
            slow.append(i)
    rows_f, pos_f, img_f, aid_f = check_columns(cols, np.array(fast_row, np.int64), np.array(fast_pos, np.int64),
                                          images, img_index, cls_of, issues)  # fmt: skip
    slow_rows, slow_pos, slow_img, slow_aid = [], [], [], []
    for i in slow:
        a = anns[i]
        issues.pos = i
        aid = a.get("id") if isinstance(a, dict) else None
        r = _parse_ann(a, images, cls_of, src, f"annotations[{i}] id={aid}", issues)
        if r is not None:
            slow_rows.append(r[1])
            slow_pos.append(i)
            slow_img.append(img_index[r[0]])
            slow_aid.append(aid)
    rows = np.concatenate([rows_f, np.array(slow_rows, np.float64).reshape(-1, 5)])
    pos = np.concatenate([pos_f, np.array(slow_pos, np.int64)])
    img = np.concatenate([img_f, np.array(slow_img, np.int64)])
    aids = np.concatenate([aid_f.astype(object), np.array(slow_aid, dtype=object)])
    order = np.argsort(pos, kind="stable")
    return rows[order], pos[order], img[order], aids[order]


def _drop_duplicates(rows: np.ndarray, pos: np.ndarray, img: np.ndarray, aid: np.ndarray, src: str,
                     issues: Issues) -> np.ndarray:  # fmt: skip
    """Keep mask: exact repeats of ``(image, row)`` after the first are dropped (reported, crowd ones quietly)."""
    if not len(rows):
        return np.ones(0, bool)
    order = np.lexsort((pos, rows[:, 4], rows[:, 3], rows[:, 2], rows[:, 1], rows[:, 0], img))
    r, m = rows[order], img[order]
    same = np.zeros(len(r), bool)
    same[1:] = (m[1:] == m[:-1]) & (r[1:] == r[:-1]).all(1)
    first = order[np.maximum.accumulate(np.where(same, 0, np.arange(len(r))))]
    keep = np.ones(len(rows), bool)
    for k in np.flatnonzero(same):
        j = order[k]
        keep[j] = False
        if rows[j, 0] >= 0:
            issues.pos = int(pos[j])
            what = f"annotations[{int(pos[j])}] id={aid[j]}: duplicate of annotations[{int(pos[first[k]])}] dropped"
            issues.add("duplicate", src, None, what)
    return keep


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_finite(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _parse_ann(a, images, cls_of, src: str, where: str, report: Issues):
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
