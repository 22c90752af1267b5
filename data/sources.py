"""Files of a yolov5-layout split: list its images, find their label files, read and verify both.

Layout (yolov5 ``utils/dataloaders.py``, ultralytics docs "Object Detection Datasets"): every image
``.../images/<rest>/<stem>.<ext>`` has its labels at ``.../labels/<rest>/<stem>.txt`` (the last
``images`` folder in the path becomes ``labels``; without one, the ``.txt`` sits beside the image).
Each label row is ``class cx cy w h``, box centre and size normalised 0..1 to the image width and
height. A missing label file means an image with no objects. detloss extension: class ``-1``
(:data:`IGNORE_CLASS`) marks an ignore region (crowd / "don't care": no objectness loss inside it,
see ``detloss.split_ignore``), carried through augmentation like a box. :func:`write_labels` writes
such a file (with an optional confidence column, as yolov5 ``detect.py --save-conf``), :func:`read_labels`
reads one.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import cv2
import numpy as np

from fileio import atomic_write

from .report import DatasetNotFoundError, DatasetReport

IMG_SUFFIXES = (".bmp", ".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".jp2", ".pbm", ".pgm", ".ppm")
_SUFFIX_SET = frozenset(IMG_SUFFIXES)
CLIP_TOL = 0.01  # box edges up to this far outside 0..1 are clipped (a 'clipped' notice); further is a bad row
ROUND_TOL = 1e-5  # edges this close outside 0..1 are rounding of 6-decimal labels: clipped without a notice
IGNORE_CLASS = -1  # a label row of this class is an ignore region, not an object


def list_images(source: str | os.PathLike | list | tuple) -> list[str]:
    """Image paths (absolute, sorted per folder, list order kept) of a folder, a ``.txt`` list, an image, or a list.

    Paths are made absolute without resolving symbolic links (yolov5 ``LoadImagesAndLabels`` globs the path
    as given): an ``images/train`` that links to another dataset's images still finds its labels in this
    dataset's ``labels/train``. ``.txt`` lists hold one image path per line; relative lines resolve against
    the list's folder (yolov5 resolves ``./`` lines against the list's parent). Raises
    :class:`DatasetNotFoundError` naming the first missing entry.
    """
    if isinstance(source, list | tuple):
        out: list[str] = []
        for s in source:
            out.extend(list_images(s))
        return out
    p = Path(source).expanduser()
    if p.is_dir():
        return sorted(_walk_images(os.path.abspath(p)))
    if p.is_file() and p.suffix.lower() == ".txt":
        out, base = [], os.path.dirname(os.path.abspath(p))
        for line in p.read_text(encoding="utf-8", errors="replace").splitlines():
            line = line.strip()
            if line:
                q = os.path.expanduser(line)
                out.append(os.path.abspath(q if os.path.isabs(q) else os.path.join(base, q)))
        return out
    if p.is_file() and p.suffix.lower() in IMG_SUFFIXES:
        return [os.path.abspath(p)]
    if p.exists():
        raise DatasetNotFoundError(f"{p}: not an image folder, a .txt list of images, or an image")
    raise DatasetNotFoundError(f"dataset path not found: {p}")


def _walk_images(folder: str) -> list[str]:
    """Image files under ``folder`` (sub-folders that are links are not entered, linked files are kept)."""
    out, todo = [], [folder]
    while todo:
        with os.scandir(todo.pop()) as it:
            for e in it:
                if e.is_dir(follow_symlinks=False):
                    todo.append(e.path)
                elif "." + e.name.rpartition(".")[2].lower() in _SUFFIX_SET and e.is_file():
                    out.append(e.path)
    return out


def label_path(img_path: str | os.PathLike) -> Path:
    """The yolov5 label file of an image: last ``images`` folder -> ``labels``, suffix -> ``.txt``."""
    return Path(label_file(os.fspath(img_path)))


def label_file(img_path: str) -> str:
    """:func:`label_path` on a string."""
    return label_files([img_path])[0]


def label_files(img_paths: list[str]) -> list[str]:
    """:func:`label_path` of many image paths as strings (the hot path of a 100k-image split): the folder
    rule runs once per folder."""
    folders: dict[str, str] = {}
    out = []
    for s in img_paths:
        cut = max(s.rfind(os.sep), s.rfind("/"))
        folder, name = s[: cut + 1], s[cut + 1 :]
        lab = folders.get(folder)
        if lab is None:
            lab = folders[folder] = _labels_folder(folder)
        dot = name.rfind(".")
        out.append(lab + (name[:dot] if dot > 0 else name) + ".txt")
    return out


def _labels_folder(folder: str) -> str:
    """``folder`` (ending in a separator) with its last ``images`` component replaced by ``labels``."""
    for sep in {os.sep, "/"}:
        tag = f"{sep}images{sep}"
        k = folder.rfind(tag)
        if k >= 0:
            return f"{folder[:k]}{sep}labels{sep}{folder[k + len(tag) :]}"
        if folder.startswith(tag[1:]):
            return f"labels{sep}{folder[len(tag) - 1 :]}"
    return folder


def read_image(path: str | os.PathLike) -> tuple[np.ndarray | None, str]:
    """Decode an image to BGR uint8 ``[H, W, 3]``; return ``(image, "")`` or ``(None, reason)``.

    Grey and alpha images become 3-channel. A JPEG without its end-of-image marker counts as
    truncated (OpenCV would decode the missing part as grey).
    """
    try:
        buf = np.fromfile(str(path), dtype=np.uint8)
    except OSError as e:
        return None, f"cannot read image: {e.strerror or e}"
    if buf.size == 0:
        return None, "empty image file"
    if buf[:2].tobytes() == b"\xff\xd8" and not buf.tobytes().rstrip(b"\x00").endswith(b"\xff\xd9"):
        return None, "truncated JPEG (no end-of-image marker)"
    img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if img is None or img.size == 0:
        return None, "corrupt or unsupported image (OpenCV cannot decode it)"
    return img, ""


def read_labels(path: str | os.PathLike, nc: int | None, report: DatasetReport) -> np.ndarray | None:
    """Read one yolov5 label file into float32 ``[n, 5]`` rows ``(cls, cx, cy, w, h)``, normalised 0..1.

    Rows with 7+ (odd) columns are yolov5 segments ``class x1 y1 x2 y2 ...``; their box is the
    polygon's extent (as yolov5 does for detection).

    Rows of class ``-1`` are ignore regions (kept, checked as boxes). Bad rows (wrong column count,
    non-numeric, NaN/inf, non-integer class or class < -1, class >= nc,
    coordinates outside 0..1, non-positive size) are reported with file and line and skipped; box
    edges at most :data:`CLIP_TOL` outside the image are clipped; exact duplicate rows are dropped.
    Returns an empty array when the file is missing, ``None`` when it cannot be read (reported).
    """
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        report.add("missing_label", path, None, "no label file (image kept as background)")
        return np.zeros((0, 5), np.float32)
    except (OSError, UnicodeDecodeError) as e:
        report.add("bad_label_file", path, None, f"cannot read label file: {e}")
        return None
    rows: list[tuple[float, ...]] = []
    seen: dict[tuple[float, ...], int] = {}
    for ln, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        row = _parse_row(fields, nc, path, ln, report)
        if row is None:
            continue
        if row in seen:
            report.add("duplicate", path, ln, f"duplicate of line {seen[row]} dropped")
            continue
        seen[row] = ln
        rows.append(row)
    return np.array(rows, np.float32).reshape(-1, 5)


def _parse_row(fields: list[str], nc: int | None, path: object, ln: int, report: DatasetReport):
    n = len(fields)
    if n != 5 and (n < 7 or n % 2 == 0):
        why = f"expected 5 columns 'class cx cy w h' (or a polygon 'class x1 y1 x2 y2 x3 y3 ...'), got {n}"
        report.add("bad_row", path, ln, why)
        return None
    try:
        vals = [float(f) for f in fields]
    except ValueError:
        report.add("bad_row", path, ln, f"non-numeric value in {' '.join(fields)!r}")
        return None
    if not all(math.isfinite(v) for v in vals):
        report.add("bad_row", path, ln, f"NaN or infinite value in {' '.join(fields)!r}")
        return None
    c = vals[0]
    if c != int(c) or c < IGNORE_CLASS:
        report.add("bad_row", path, ln, f"class {fields[0]!r} is not a non-negative integer (or -1, an ignore region)")
        return None
    if nc is not None and c >= nc:
        report.add("bad_row", path, ln, f"class {int(c)} >= number of names ({nc})")
        return None
    if n > 5:  # a yolov5 segment row: its box is the polygon's extent
        xs, ys = vals[1::2], vals[2::2]
        if min(vals[1:]) < 0 or max(vals[1:]) > 1:
            report.add("bad_row", path, ln, "polygon coordinates outside 0..1 (must be normalised)")
            return None
        x1, y1, x2, y2 = min(xs), min(ys), max(xs), max(ys)
        if x2 <= x1 or y2 <= y1:
            report.add("bad_row", path, ln, "polygon has no area (all points on a line)")
            return None
        return (float(int(c)), (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1)
    cx, cy, w, h = vals[1:]
    if min(cx, cy, w, h) < 0 or max(cx, cy, w, h) > 1:
        report.add("bad_row", path, ln, f"coordinates {fields[1:]} outside 0..1 (must be normalised)")
        return None
    if w <= 0 or h <= 0:
        report.add("bad_row", path, ln, f"box width/height must be > 0, got {fields[3]} {fields[4]}")
        return None
    x1, y1, x2, y2 = cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
    if min(x1, y1) < -CLIP_TOL or max(x2, y2) > 1 + CLIP_TOL:
        report.add("bad_row", path, ln, f"box {fields[1:]} extends past the image edge by more than {CLIP_TOL}")
        return None
    if min(x1, y1) < 0 or max(x2, y2) > 1:
        if min(x1, y1) < -ROUND_TOL or max(x2, y2) > 1 + ROUND_TOL:
            report.add("clipped", path, ln, "box edge slightly outside the image clipped to it")
        x1, y1, x2, y2 = max(x1, 0.0), max(y1, 0.0), min(x2, 1.0), min(y2, 1.0)
        cx, cy, w, h = (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1
    return (float(int(c)), cx, cy, w, h)


def label_text(rows: np.ndarray | list, conf: np.ndarray | list | None = None, where: str = "labels") -> str:
    """The text of a yolov5 label file: one line ``cls cx cy w h`` per row (``cx cy w h`` with 6 decimals).

    ``rows``: ``[n, 5]`` ``cls, cx, cy, w, h``, box centre and size normalised 0..1; ``cls`` an integer
    (``-1``: an ignore region). ``conf``: ``[n]`` scores, written as a sixth column with 5 decimals (yolov5
    ``detect.py --save-conf``). Every line ends in a newline; no rows give an empty text. Non-integer classes,
    non-finite values or mismatched lengths raise ``ValueError`` naming ``where``.
    """
    arr = np.asarray(rows, dtype=np.float64)
    if arr.size == 0:
        arr = arr.reshape(0, 5)
    if arr.ndim != 2 or arr.shape[1] != 5:
        raise ValueError(f"{where}: label rows must be [n, 5] (cls cx cy w h), got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{where}: label rows contain NaN or infinite values")
    if (arr[:, 0] != np.round(arr[:, 0])).any():
        raise ValueError(f"{where}: classes must be integers, got {arr[arr[:, 0] != np.round(arr[:, 0]), 0][:5]}")
    lines = [f"{int(c)} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}" for c, cx, cy, w, h in arr.tolist()]
    if conf is not None:
        scores = np.asarray(conf, dtype=np.float64).reshape(-1)
        if len(scores) != len(lines):
            raise ValueError(f"{where}: {len(lines)} label rows but {len(scores)} confidences")
        lines = [f"{line} {s:.5f}" for line, s in zip(lines, scores.tolist())]
    return "".join(line + "\n" for line in lines)


def write_labels(
    path: str | os.PathLike, rows: np.ndarray | list, conf: np.ndarray | list | None = None, atomic: bool = True
) -> Path:
    """Write a yolov5 label file (:func:`label_text`); returns ``path``. Parent folders are created.

    ``atomic``: through ``fileio.atomic_write`` (a reader sees the old file or the new one; an fsync per
    file). ``atomic=False``: a plain write, no fsync, for generators that write a whole new dataset of many
    small files (the demo, which moves its folder into place when complete; the digits set; relabelled copies).

    :func:`read_labels` reads back a file written without ``conf`` (it reports 6-column rows as bad: a
    file with confidences is a detection output, not training input).
    """
    text = label_text(rows, conf, where=str(path))
    if atomic:
        return atomic_write(path, text)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
