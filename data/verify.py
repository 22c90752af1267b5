"""Verify the images and label files of a split in bounded memory.

Each image's size comes from its header (:mod:`data.headers`); only where the header gives no answer is
the image decoded, one at a time per thread, and dropped at once. Nothing holds more than the current
image of each thread. Label files are read with :func:`data.sources.read_labels`. The result is compact
(:mod:`data.store`) and is what the verification cache (:mod:`data.index_cache`) stores.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from .headers import probe
from .report import DatasetReport
from .sources import read_image, read_labels
from .store import Column, RaggedRows

CHUNK = 512  # images a thread verifies before handing back its part


@dataclass
class Verified:
    """What verification found for every listed image (kept or not), in list order.

    ``keep``: ``bool [n]``; ``shapes``: ``(h, w)`` per image, ``(0, 0)`` for a bad one; ``labels``: rows per
    image (none for a dropped one); ``report``: the issues found (never strict), to replay into a dataset's
    report with :meth:`data.report.DatasetReport.merge`.
    """

    keep: np.ndarray
    shapes: Column
    labels: RaggedRows
    report: DatasetReport


def image_shape(path: str) -> tuple[tuple[int, int] | None, str]:
    """``((h, w), "")`` of a readable image, from its header or else by decoding it; ``(None, reason)`` if bad."""
    shape, why = probe(path)
    if shape is not None or why:
        return shape, why
    img, why = read_image(path)
    return (None, why) if img is None else ((int(img.shape[0]), int(img.shape[1])), "")


def verify_split(files: list[str], label_files: list[str] | None, nc: int | None,
                 expected: list[tuple[int, int]] | None = None) -> Verified:  # fmt: skip
    """Verify ``files`` (and their ``label_files``; ``None``: no label files, e.g. COCO) in a thread pool.

    ``expected``: sizes ``(h, w)`` an annotation file claims; an image of another size is a bad image.
    """
    n = len(files)
    starts = list(range(0, n, CHUNK))
    workers = max(1, min(8, os.cpu_count() or 1))

    def part(a: int) -> tuple[np.ndarray, np.ndarray, list[np.ndarray], DatasetReport]:
        b = min(a + CHUNK, n)
        rep = DatasetReport(source="")
        keep, shapes, labels = np.zeros(b - a, bool), np.zeros((b - a, 2), np.int32), []
        for k in range(a, b):
            shape, why = image_shape(files[k])
            if shape is not None and expected is not None and tuple(expected[k]) != shape:
                eh, ew = expected[k]
                why = f"annotation says {ew}x{eh} but the image is {shape[1]}x{shape[0]}"
                shape = None
            if shape is None:
                rep.add("bad_image", files[k], None, why)
                labels.append(np.zeros((0, 5), np.float32))
                continue
            shapes[k - a] = shape
            lab = read_labels(label_files[k], nc, rep) if label_files is not None else np.zeros((0, 5), np.float32)
            if lab is None:  # unreadable label file: skipping the image avoids training on it as background
                labels.append(np.zeros((0, 5), np.float32))
                continue
            keep[k - a] = True
            labels.append(lab)
        return keep, shapes, labels, rep

    report = DatasetReport(source="")
    keeps, shapes, rows = [np.zeros(0, bool)], [np.zeros((0, 2), np.int32)], []
    with ThreadPoolExecutor(workers) as pool:
        for keep, shp, labels, rep in pool.map(part, starts):  # in order: the report keeps the list order
            keeps.append(keep)
            shapes.append(shp)
            rows.append(RaggedRows.from_arrays(labels))
            report.merge(rep)
    ragged = _concat(rows)
    return Verified(np.concatenate(keeps), Column(np.concatenate(shapes)), ragged, report)


def _concat(parts: list[RaggedRows]) -> RaggedRows:
    if not parts:
        return RaggedRows(np.zeros((0, 5), np.float32), np.zeros(1, np.int64))
    rows = np.concatenate([p.rows for p in parts])
    counts = np.concatenate([p.counts() for p in parts])
    off = np.zeros(len(counts) + 1, np.int64)
    np.cumsum(counts, out=off[1:])
    return RaggedRows(rows, off)
