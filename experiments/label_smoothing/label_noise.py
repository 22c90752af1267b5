"""Seeded class-label noise for studies: flip a stated fraction of box labels, and write a labelled copy of a split.

:func:`flip_labels` works on the ``labels`` of any :class:`data.base.DetectionDataset` (per image
``float32 [n, 5]`` ``cls, cx, cy, w, h``): of the rows that *can* flip (class >= 0, and listed in ``flip_map``
when one is given), exactly ``round(fraction * n_eligible)`` are drawn without replacement with
``numpy.random.default_rng(seed)`` and get a new class: ``flip_map[cls]`` (e.g. the look-alike class), or
else a uniformly drawn *other* class. Ignore-region rows (class -1) never flip. Boxes are untouched.

:func:`write_yolo_copy` writes images (hard links, else copies) and labels in the yolov5 layout under a new
folder, so a noisy (or a subset of a) split can be trained on through a data YAML like any other split,
without changing the readers: ``train: <copy>/images/train``.

:data:`DEMO_LOOKALIKE` is the demo's pairing (circle/ellipse, square/rectangle, triangle/trapezoid).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from data.demo_draw import DEMO_NAMES
from data.sources import write_labels
from fileio import link_or_copy

__all__ = ["DEMO_LOOKALIKE", "FlipReport", "flip_labels", "lookalike_map", "parse_flip_map", "write_yolo_copy"]

DEMO_LOOKALIKE = {0: 1, 1: 0, 2: 3, 3: 2, 4: 5, 5: 4}


@dataclass(frozen=True)
class FlipReport:
    """``flipped`` of ``eligible`` rows changed class (``total`` rows, ignore regions included)."""

    flipped: int
    eligible: int
    total: int

    @property
    def fraction(self) -> float:
        return self.flipped / self.eligible if self.eligible else 0.0


def parse_flip_map(text: str, nc: int) -> dict[int, int]:
    """``"0:1,1:0,2:3"`` -> ``{0: 1, 1: 0, 2: 3}``; classes in ``[0, nc)``, no class mapped to itself."""
    out: dict[int, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        src, sep, dst = part.partition(":")
        if not sep or not src.strip().isdigit() or not dst.strip().isdigit():
            raise ValueError(f"flip map entry {part!r} is not 'from:to' with class indices (map {text!r})")
        a, b = int(src), int(dst)
        if not (0 <= a < nc and 0 <= b < nc) or a == b:
            raise ValueError(f"flip map entry {part!r}: classes must differ and lie in [0, {nc})")
        if a in out:
            raise ValueError(f"flip map {text!r} lists class {a} twice")
        out[a] = b
    if not out:
        raise ValueError(f"flip map {text!r} is empty")
    return out


def lookalike_map(names: Sequence[str]) -> dict[int, int] | None:
    """The demo's look-alike pairs when ``names`` are the demo's classes, else None (flip to a random class)."""
    return dict(DEMO_LOOKALIKE) if list(names) == list(DEMO_NAMES) else None


def flip_labels(
    labels: Sequence[np.ndarray], fraction: float, nc: int, seed: int = 0, flip_map: dict[int, int] | None = None
) -> tuple[list[np.ndarray], FlipReport]:
    """Copies of ``labels`` with ``round(fraction * eligible)`` class labels flipped (see the module docstring)."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"the flip fraction must be in [0, 1], got {fraction}")
    if nc < 2:
        raise ValueError(f"flipping class labels needs at least 2 classes, got {nc}")
    out = [np.array(lb, dtype=np.float32, copy=True).reshape(-1, 5) for lb in labels]
    where = [(i, r) for i, lb in enumerate(out) for r in range(len(lb))]
    cls = np.array([int(out[i][r, 0]) for i, r in where], dtype=np.int64)
    if cls.size and cls.max() >= nc:
        raise ValueError(f"label class {int(cls.max())} is outside [0, {nc}) (nc = {nc})")
    ok = cls >= 0 if flip_map is None else np.isin(cls, list(flip_map))
    eligible = np.flatnonzero(ok)
    rng = np.random.default_rng(seed)
    k = round(fraction * len(eligible))
    chosen = np.sort(rng.choice(eligible, size=k, replace=False)) if k else np.zeros(0, np.int64)
    for j in chosen.tolist():
        i, r = where[j]
        c = int(cls[j])
        if flip_map is not None:
            new = flip_map[c]
        else:
            new = int(rng.integers(0, nc - 1))
            new += new >= c  # a uniformly drawn class other than c
        out[i][r, 0] = new
    return out, FlipReport(int(k), int(len(eligible)), int(len(cls)))


def write_yolo_copy(
    im_files: Sequence[str], labels: Sequence[np.ndarray], out_dir: str | os.PathLike, split: str
) -> Path:
    """Write ``out_dir/images/<split>/`` (links or copies of ``im_files``) and ``out_dir/labels/<split>/*.txt``.

    Files are renamed ``000000<suffix>`` ... in the given order (sources may share names). Returns the images
    folder, usable as a split entry of a data YAML. An existing folder is replaced.
    """
    if len(im_files) != len(labels):
        raise ValueError(f"{len(im_files)} images but {len(labels)} label arrays")
    root = Path(out_dir)
    img_dir, lab_dir = root / "images" / split, root / "labels" / split
    for d in (img_dir, lab_dir):
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
    for k, (src, lb) in enumerate(zip(im_files, labels)):
        stem = f"{k:06d}"
        link_or_copy(src, img_dir / f"{stem}{Path(src).suffix.lower()}")
        write_labels(lab_dir / f"{stem}.txt", np.asarray(lb).reshape(-1, 5), atomic=False)
    return img_dir
