"""Image caches: every image decoded and resized (long side = ``imgsz``) once, for all epochs.

- ``"ram"``: the resized BGR ``uint8`` images in ONE contiguous buffer plus offsets (:class:`RamCache`), shared
  copy-on-write with forked dataloader workers without one Python object per image. The memory needed is
  printed; more than :data:`MAX_FRACTION` of the available RAM is refused with a ``ValueError`` naming the
  figure (train with ``--cache disk``, ``--no-cache`` or a smaller ``--imgsz``).
- ``"disk"`` (yolov5's ``--cache disk``): each resized image as a ``.npy`` beside its original (under the
  detloss cache folder when that folder is read-only), written the first time it is read and checked against
  the expected size on every read (another ``--imgsz`` rewrites it).

The uncached reader resizes with the same rule (:func:`fit_size`, the letterbox's own rounding and
interpolation), so a cached sample equals an uncached one bit for bit. :func:`auto_cache` is the choice made
when the user names none: ``ram`` when it fits.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from .store import Column

CACHE_CHOICES = ("ram", "disk")
MAX_FRACTION = 0.6


def cache_root() -> Path:
    """The detloss cache folder: ``$DETLOSS_CACHE``, else ``~/.cache/detloss``."""
    env = os.environ.get("DETLOSS_CACHE")
    return (Path(env) if env else Path.home() / ".cache" / "detloss").expanduser()


def check_cache(cache: object) -> str | None:
    """``None``/``False``/``""`` (no cache), ``"ram"`` or ``"disk"``; ``True`` is ``"ram"`` (a bare ``--cache``)."""
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


def shape_array(shapes: Sequence | np.ndarray) -> np.ndarray:
    """``int64 [n, 2] (h0, w0)`` of a dataset's ``shapes`` (a :class:`data.store.Column` read without a copy per item,
    or any sequence of ``(h, w)``)."""
    return np.asarray(shapes.values if isinstance(shapes, Column) else shapes, np.int64).reshape(-1, 2)


def fitted_shapes(shapes: np.ndarray, imgsz: int) -> np.ndarray:
    """``int64 [n, 2] (h, w)`` of ``shapes [n, 2] (h0, w0)`` after :func:`fit_size` (vectorised, same rounding)."""
    shapes = np.asarray(shapes, np.int64).reshape(-1, 2)
    r = imgsz / np.maximum(shapes.max(1), 1)
    # fit_size rounds with Python's round (half to even), as np.round does
    out = np.maximum(np.round(shapes * r[:, None]), 1).astype(np.int64)
    out[shapes.min(1) <= 0] = 0
    return out


def ram_bytes(shapes: np.ndarray, imgsz: int) -> int:
    """Bytes a RAM cache of images of ``shapes`` at ``imgsz`` needs."""
    hw = fitted_shapes(shapes, imgsz)
    return int((hw[:, 0] * hw[:, 1]).sum() * 3)


def auto_cache(need: int, avail: int | None = None) -> str | None:
    """``"ram"`` when ``need`` bytes are at most :data:`MAX_FRACTION` of the available memory, else ``None``."""
    avail = available_bytes() if avail is None else avail
    return "ram" if avail is not None and need <= MAX_FRACTION * avail else None


class RamCache:
    """Resized images in one ``uint8`` buffer: image ``i`` is ``buf[off[i]:off[i+1]]`` shaped ``hw[i] x 3``."""

    def __init__(self, hw: np.ndarray):
        self.hw = np.asarray(hw, np.int64)
        sizes = self.hw[:, 0] * self.hw[:, 1] * 3
        self.off = np.zeros(len(sizes) + 1, np.int64)
        np.cumsum(sizes, out=self.off[1:])
        self.buf = np.empty(int(self.off[-1]), np.uint8)
        self.filled = np.zeros(len(sizes), bool)

    def put(self, i: int, img: np.ndarray) -> None:
        h, w = self.hw[i]
        if img.shape != (h, w, 3):
            raise ValueError(f"image {i} is {img.shape}, the cache slot ({h}, {w}, 3)")
        self.buf[self.off[i] : self.off[i + 1]] = img.reshape(-1)
        self.filled[i] = True

    def get(self, i: int) -> np.ndarray | None:
        if not self.filled[i]:
            return None
        h, w = self.hw[i]
        return self.buf[self.off[i] : self.off[i + 1]].reshape(h, w, 3)


def fill_ram(shapes: Sequence, imgsz: int, load: Callable[[int], np.ndarray | None], source: str) -> RamCache:
    """Decode and resize every image with ``load(i)`` (BGR uint8, ``None`` when unreadable) into a :class:`RamCache`."""
    shp = shape_array(shapes)
    need = ram_bytes(shp, imgsz)
    avail = available_bytes()
    if avail is not None and need > MAX_FRACTION * avail:
        raise ValueError(
            f"{source}: --cache ram needs {need / 2**30:.1f} GiB for {len(shp)} images at imgsz {imgsz}, more "
            f"than {MAX_FRACTION:.0%} of the {avail / 2**30:.1f} GiB available; train with --cache disk or "
            "--no-cache, or lower --imgsz"
        )
    cache = RamCache(fitted_shapes(shp, imgsz))

    def one(i: int) -> None:
        img = load(i)
        if img is not None:
            cache.put(i, fit_image(img, imgsz))

    workers = max(1, min(8, os.cpu_count() or 1))
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, range(len(shp))))
    print(f"{source}: cached {int(cache.filled.sum())} images in RAM ({need / 2**20:.0f} MiB)")
    return cache


def npy_path(img_path: str) -> str:
    """The ``--cache disk`` file of an image: ``<stem>.npy`` beside it, or under :func:`cache_root` if read-only."""
    folder = os.path.dirname(img_path)
    stem = os.path.splitext(os.path.basename(img_path))[0]
    if os.access(folder, os.W_OK):
        return os.path.join(folder, stem + ".npy")
    key = hashlib.blake2b(os.fsencode(folder), digest_size=8).hexdigest()
    return str(cache_root() / "npy" / key / (stem + ".npy"))


def read_npy(path: str, h: int, w: int) -> np.ndarray | None:
    """The cached ``[h, w, 3] uint8`` image at ``path``; ``None`` when absent, unreadable or of another size."""
    try:
        img = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    return img if img.shape == (h, w, 3) and img.dtype == np.uint8 else None


def write_npy(path: str, img: np.ndarray) -> None:
    """Save ``img`` to ``path`` through a temporary sibling and a rename (readers never see half a file).

    A cache: failures (read-only, disk full) are ignored; no fsync (losing one costs a decode)."""
    tmp = f"{path}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(tmp, "xb") as f:
            np.save(f, np.ascontiguousarray(img), allow_pickle=False)
        os.replace(tmp, path)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass
