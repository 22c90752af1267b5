"""The fast path of :func:`data.coco.read_coco`: well-typed annotations kept as numpy columns and checked at once.

``json.load`` with :meth:`Columns.hook` turns each annotation whose ``id``, ``image_id``, ``category_id``,
``iscrowd`` and ``bbox`` have the expected JSON types into a :class:`Row` (its row in a few ``array`` columns);
:func:`check_columns` applies ``data.coco._parse_ann``'s checks, in its order and with its messages, to all of
them as arrays. Issues carry their annotation position so that the report lists them in file order.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["CLIP_TOL_PX", "Columns", "Issues", "Row", "check_columns"]

CLIP_TOL_PX = 1.0  # boxes up to 1 px outside the image are clipped; further out is a bad annotation


class Row(int):
    """An annotation the JSON hook stored in :class:`Columns` (its row there); not a JSON value."""

    __slots__ = ()


class Columns:
    """``json.load(object_pairs_hook=...)``: well-typed annotations become a row of a few ``array`` columns
    (about 70 bytes) instead of a dict with lists (about 1 kB with a polygon), so a file of 800k annotations
    never holds them all as Python objects; anything else stays a dict and takes the checked slow path."""

    def __init__(self) -> None:
        self.ints = array("q")  # per row: annotation id (-1: none), image id, category id, crowd (0/1)
        self.box = array("d")  # per row: x, y, w, h

    def hook(self, pairs: list[tuple[str, Any]]) -> Any:
        d = dict(pairs)
        box = d.get("bbox")
        if type(box) is not list or len(box) != 4:
            return d
        aid, img, cat, crowd = d.get("id", -1), d.get("image_id"), d.get("category_id"), d.get("iscrowd", 0)
        if type(aid) is not int or type(img) is not int or type(cat) is not int or crowd not in (0, 1):
            return d
        for v in box:
            if type(v) is not float and type(v) is not int:
                return d
        n = len(self.ints)
        try:
            self.ints.extend((aid, img, cat, 1 if crowd else 0))
        except OverflowError:  # an id beyond int64: the per-annotation path keeps it exact
            del self.ints[n:]
            return d
        self.box.extend(box)
        return Row(n // 4)

    def columns(self) -> tuple[np.ndarray, np.ndarray]:
        """``int64 [rows, 4]`` (id, image id, category id, crowd) and ``float64 [rows, 4]`` boxes."""
        ints = np.frombuffer(self.ints, np.int64).reshape(-1, 4) if len(self.ints) else np.zeros((0, 4), np.int64)
        box = np.frombuffer(self.box, np.float64).reshape(-1, 4) if len(self.box) else np.zeros((0, 4))
        return ints, box


class Issues:
    """Issues with the annotation position they belong to, replayed into the report in file order."""

    def __init__(self) -> None:
        self.pos = 0
        self.items: list[tuple[int, int, str, str]] = []

    def add(self, kind: str, path: object, line: int | None, reason: str) -> None:
        self.items.append((self.pos, len(self.items), kind, reason))


def check_columns(cols: Columns, row: np.ndarray, pos: np.ndarray, images: dict, img_index: dict,
                   cls_of: dict, issues: Issues) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """``data.coco._parse_ann``'s checks, in its order, on the column rows ``row`` (at annotation positions ``pos``)."""
    ints, boxes = cols.columns()
    aid, img_id, cat, crowd = ints[row].T
    crowd = crowd.astype(bool)
    box = boxes[row]
    known = np.array(sorted(images), np.int64)
    at = np.clip(np.searchsorted(known, img_id), 0, max(len(known) - 1, 0))
    img_ok = (known[at] == img_id) if len(known) else np.zeros(len(row), bool)
    img_j = np.array([img_index[int(k)] for k in known], np.int64)[at] if len(known) else np.zeros(len(row), np.int64)
    cats = np.array(sorted(cls_of), np.int64)
    ca = np.clip(np.searchsorted(cats, cat), 0, len(cats) - 1)
    cat_ok = crowd | (cats[ca] == cat)
    hw = np.array([images[int(k)][1:] for k in known], np.float64).reshape(-1, 2)[at] if len(known) else box[:, :2]
    ih, iw = hw[:, 0], hw[:, 1]
    x, y, w, h = box.T
    finite = np.isfinite(box).all(1)
    with np.errstate(invalid="ignore"):
        positive = (w > 0) & (h > 0)
        x2, y2 = x + w, y + h
        inside = (x >= -CLIP_TOL_PX) & (y >= -CLIP_TOL_PX) & (x2 <= iw + CLIP_TOL_PX) & (y2 <= ih + CLIP_TOL_PX)
        clip = (x < 0) | (y < 0) | (x2 > iw) | (y2 > ih)
    bad = np.zeros(len(row), bool)
    reasons = (
        (~img_ok, lambda k: f"image_id {int(img_id[k])!r} not in 'images'"),
        (~cat_ok, lambda k: f"category_id {int(cat[k])!r} not in 'categories'"),
        (~finite, lambda k: f"bbox must be 4 finite numbers [x, y, w, h], got {_box(box[k])}"),
        (~positive, lambda k: f"bbox width/height must be > 0, got {_box(box[k])}"),
        (~inside, lambda k: f"bbox {_box(box[k])} outside the {int(iw[k])}x{int(ih[k])} image"),
    )
    for fails, why in reasons:
        _note(issues, "bad_annotation", fails & ~bad, pos, aid, why)
        bad |= fails
    good = ~bad
    _note(issues, "clipped", good & clip, pos, aid, lambda k: "bbox edge slightly outside the image clipped to it")
    _note(issues, "crowd", good & crowd, pos, aid, lambda k: "crowd region kept as an ignore region (class -1)")
    g = np.flatnonzero(good)
    x, y, x2, y2, iw, ih = x[g], y[g], x2[g], y2[g], iw[g], ih[g]
    x, y, x2, y2 = np.maximum(x, 0.0), np.maximum(y, 0.0), np.minimum(x2, iw), np.minimum(y2, ih)
    cls = np.where(crowd[g], -1.0, ca[g].astype(np.float64))  # class index = rank of the sorted category id
    rows = np.stack([cls, (x + x2) / 2 / iw, (y + y2) / 2 / ih, (x2 - x) / iw, (y2 - y) / ih], 1)
    ids = aid[g].astype(object)
    ids[aid[g] == -1] = None  # -1: the annotation had no id
    return rows.reshape(-1, 5), pos[g], img_j[g], ids


def _note(issues: Issues, kind: str, mask: np.ndarray, pos: np.ndarray, aid: np.ndarray,
          why: Callable[[int], str]) -> None:  # fmt: skip
    """An issue ``kind`` for each column row ``k`` where ``mask``, at its annotation position ``pos[k]``."""
    for k in np.flatnonzero(mask).tolist():
        issues.pos = int(pos[k])
        issues.add(kind, "", None, f"{_where(pos[k], aid[k])}: {why(k)}")


def _where(pos: Any, aid: Any) -> str:
    return f"annotations[{int(pos)}] id={None if int(aid) == -1 else int(aid)}"


def _box(b: np.ndarray) -> str:
    return "[" + ", ".join(repr(float(v)) if not float(v).is_integer() else str(int(v)) for v in b) + "]"
