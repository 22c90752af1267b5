"""RAM image cache: every image decoded and resized (long side = ``imgsz``) once, for all epochs.

``DetectionDataset(..., cache="ram")`` keeps the resized BGR ``uint8`` images in a list (shared copy-on-write
with forked dataloader workers). The uncached reader resizes with the same rule (:func:`fit_size`, the
letterbox's own rounding and interpolation), so a cached sample equals an uncached one bit for bit. The
memory needed is printed before filling; more than :data:`MAX_FRACTION` of the available RAM is refused
with a ``ValueError`` naming the figure (train with ``--cache`` off, or a smaller ``--imgsz``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np

CACHE_CHOICES = ("ram",)
MAX_FRACTION = 0.6


def check_cache(cache: object) -> str | None:
    """``None``/``False``/``""`` (no cache) or ``"ram"``; ``True`` means ``"ram"`` (yolov5's bare ``--cache``)."""
    if cache is None or cache is False or cache == "":
        return None
    if cache is True:
        return "ram"
    if cache not in CACHE_CHOICES:
        raise ValueError(f"cache must be one of {CACHE_CHOICES} or None, got {cache!r}")
    return str(cache)


def fit_size(h0: int, w0: int, imgsz: int) -> tuple[int, int, int]:
    """``(w, h, interpolation)`` of an ``h0 x w0`` image resized so its long side is ``imgsz`` (ratio kept)."""
    r = imgsz / max(h0, w0)
    size = (max(1, round(w0 * r)), max(1, round(h0 * r)))
    return size[0], size[1], cv2.INTER_AREA if r < 1 else cv2.INTER_LINEAR


def fit_image(img: np.ndarray, imgsz: int) -> np.ndarray:
    """``img`` resized by :func:`fit_size` (unchanged when it already fits exactly)."""
    h0, w0 = img.shape[:2]
    w, h, interp = fit_size(h0, w0, imgsz)
    return img if (w, h) == (w0, h0) else cv2.resize(img, (w, h), interpolation=interp)


def available_bytes() -> int | None:
    """Available physical memory (Linux ``/proc/meminfo`` MemAvailable), None where unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def fill_cache(shapes: list[tuple[int, int]], imgsz: int, load: Callable[[int], np.ndarray],
               source: str) -> list[np.ndarray]:  # fmt: skip
    """Decode and resize every image with ``load(i)`` (BGR uint8) in a thread pool; print the size."""
    need = sum(w * h * 3 for w, h, _ in (fit_size(h0, w0, imgsz) for h0, w0 in shapes))
    avail = available_bytes()
    if avail is not None and need > MAX_FRACTION * avail:
        raise ValueError(
            f"{source}: --cache ram needs {need / 2**30:.1f} GiB for {len(shapes)} images at imgsz {imgsz}, more "
            f"than {MAX_FRACTION:.0%} of the {avail / 2**30:.1f} GiB available; train without --cache or lower --imgsz"
        )
    workers = max(1, min(8, os.cpu_count() or 1))
    with ThreadPoolExecutor(workers) as pool:
        images = list(pool.map(lambda i: fit_image(load(i), imgsz), range(len(shapes))))
    print(f"{source}: cached {len(images)} images in RAM ({need / 2**20:.0f} MiB)")
    return images
