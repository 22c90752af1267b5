"""The shared dataset: verified images + labels in, letterboxed (optionally augmented) samples out.

A sample ``ds[i]`` is ``(img, labels, path, meta)``:

- ``img``: ``uint8 Tensor[3, imgsz, imgsz]``, RGB.
- ``labels``: ``float32 Tensor[n, 6]`` rows ``(0, cls, cx, cy, w, h)``, box centre and size normalised
  0..1 to the letterboxed (or augmented) ``imgsz x imgsz`` image; column 0 is filled by ``collate_fn``.
- ``path``: the image file.
- ``meta``: ``orig_shape=(h0, w0)``, ``ratio=(rw, rh)``, ``pad=(padw, padh)`` (the letterbox, for
  ``data.letterbox.unletterbox_boxes``; ``None`` for augmented samples, which no such map inverts),
  ``image_id`` and ``augmented``.

Augmentation draws from ``numpy.random.default_rng([seed, epoch, index])``: a sample depends only on
the seed, the epoch (:meth:`DetectionDataset.set_epoch`) and its index, not on worker count or order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from detloss.checks import check_int

from .augment import AugConfig, augment_hsv, flip_lr, flip_ud, random_affine
from .cache import RamCache, check_cache, fill_ram, fit_image, fitted_shapes, npy_path, read_npy, write_npy
from .letterbox import letterbox
from .mosaic import mosaic4
from .report import DatasetError, DatasetReport, DatasetWarning
from .sources import read_image
from .store import Column, RaggedRows, Strings
from .verify import verify_split

MISSING_LABELS_WARN = 0.5  # warn loudly when more than this fraction of a split's images has no label file


class UnreadableImageError(DatasetError):
    """An image that passed verification but cannot be decoded now (truncated pixels, a lying header)."""


class DetectionDataset(Dataset):
    """Base class; subclasses fill ``im_files``, ``labels``, ``image_ids``, ``names``, ``cat_ids`` then call
    :meth:`_finish` (which stores them compactly, :mod:`data.store`).

    Attributes:
        labels: per image ``float32 ndarray[n, 5]`` ``(cls, cx, cy, w, h)`` normalised to the original image
            (a :class:`data.store.RaggedRows`: one array plus offsets; ``labels[i]`` is a copy); rows of class
            -1 are ignore regions (they go through letterbox and augmentation like boxes).
        shapes: per image ``(h0, w0)``.
        report: the :class:`data.report.DatasetReport` of what was skipped, dropped or clipped.

    An image that cannot be decoded when a sample is made (verification reads headers only) is skipped: an
    augmented dataset gives the next readable image in its place (the batch keeps its size), a plain one gives
    ``None``, which :func:`data.datasets.collate_fn` leaves out. Its path is kept in :meth:`skipped_at_load`,
    merged across DataLoader workers (a shared-memory flag per image), and later epochs do not try it again.
    """

    def __init__(self, imgsz: int, augment: bool, hyp: dict | None, strict: bool, seed: int, source: str):
        self.imgsz = check_int(imgsz, "imgsz", lo=1)
        self.augment = bool(augment)
        self.aug = AugConfig.from_hyp(hyp, warn=self.augment)
        self.strict = bool(strict)
        self.seed = int(seed)
        self.epoch = 0
        self.report = DatasetReport(source=source, strict=self.strict)
        self.im_files: Sequence[str] = []
        self.labels: Sequence[np.ndarray] = []
        self.shapes: Sequence[tuple[int, int]] = []
        self.image_ids: Sequence[int] = []
        self.names: list[str] = []
        self.cat_ids: list[int] = []
        self.multi_label = False  # set from the data YAML by data.datasets.build_dataset
        self.cache_kind: str | None = None
        self._ram: RamCache | None = None
        self._unreadable = torch.zeros(0, dtype=torch.uint8)

    @property
    def nc(self) -> int:
        return len(self.names)

    def __len__(self) -> int:
        return len(self.im_files)

    def set_epoch(self, epoch: int) -> None:
        """Change the augmentation stream (call before each epoch; workers get it when they are re-created)."""
        self.epoch = int(epoch)

    # --- construction helpers ---------------------------------------------------------------
    def _verify_images(self, expected: list[tuple[int, int]] | None = None) -> list[bool]:
        """Read every image's size from its header (else decode it, one at a time); report bad ones and
        size mismatches with ``expected``; set :attr:`shapes`. Returns which images are good."""
        files = list(self.im_files)
        res = verify_split(files, None, None, expected)
        self.report.merge(res.report)
        self.shapes = res.shapes
        return res.keep.tolist()

    def _finish(self) -> None:
        """Store the tables compactly, fill the report totals, refuse an empty dataset, emit the summary warning."""
        if not isinstance(self.im_files, Strings):
            self.im_files = Strings.from_list(self.im_files)
        if not isinstance(self.labels, RaggedRows):
            self.labels = RaggedRows.from_arrays(self.labels)
        if not isinstance(self.shapes, Column):
            self.shapes = Column(np.asarray(list(self.shapes), np.int64).reshape(-1, 2))
        if not isinstance(self.image_ids, Column):
            self.image_ids = Column(np.asarray(list(self.image_ids), np.int64))
        r, lab = self.report, self.labels
        r.images = len(self.im_files)
        real = lab.rows[:, 0] >= 0
        r.boxes = int(real.sum())
        r.ignore_regions = len(lab.rows) - r.boxes
        per_image = np.bincount(np.repeat(np.arange(len(lab)), lab.counts())[real], minlength=len(lab))
        r.backgrounds = int((per_image == 0).sum())
        if not len(self.im_files):
            raise DatasetError(f"{r.source}: no usable images ({r.images_found} found)\n{r.summary()}")
        self._unreadable = torch.zeros(len(self.im_files), dtype=torch.uint8).share_memory_()
        r.warn_if_needed(stacklevel=4)

    def _warn_missing_labels(self, folder: str) -> None:
        """A loud warning when most images of the split have no label file (wrong layout, linked folders)."""
        missing, n = self.report.counts["missing_label"], len(self.im_files)
        if n and missing > MISSING_LABELS_WARN * n:
            import warnings

            what = "none" if missing == n else f"{n - missing}"
            warnings.warn(
                f"{self.report.source}: {missing} of {n} images have no label file and train as backgrounds "
                f"({what} found). Labels were looked up in {folder} (the last 'images' folder of each listed "
                "image path -> 'labels', as yolov5 does); check the dataset layout",
                DatasetWarning,
                stacklevel=4,
            )

    def skipped_at_load(self) -> list[str]:
        """Paths of images that could not be decoded when a sample was made (in any DataLoader worker)."""
        return [self.im_files[int(k)] for k in torch.nonzero(self._unreadable).flatten()]

    # --- samples -------------------------------------------------------------------------------
    def load_image(self, i: int) -> np.ndarray:
        """The BGR ``uint8 [h0, w0, 3]`` image ``i``; :class:`UnreadableImageError` if it cannot be decoded."""
        img, why = read_image(self.im_files[i])
        if img is None:
            raise UnreadableImageError(f"{self.im_files[i]}: {why} (it passed verification)")
        if img.shape[:2] != tuple(self.shapes[i]):
            got = f"{img.shape[1]}x{img.shape[0]}"
            raise UnreadableImageError(f"{self.im_files[i]}: decodes to {got}, its header said {self.shapes[i]}")
        return img

    def pixel_labels(self, i: int, w: float, h: float) -> np.ndarray:
        """Labels of image ``i`` as ``[n, 5] (cls, x1, y1, x2, y2)`` pixels of a ``w x h`` image."""
        lb = self.labels[i]
        out = np.empty((len(lb), 5), np.float32)
        out[:, 0] = lb[:, 0]
        out[:, 1], out[:, 3] = (lb[:, 1] - lb[:, 3] / 2) * w, (lb[:, 1] + lb[:, 3] / 2) * w
        out[:, 2], out[:, 4] = (lb[:, 2] - lb[:, 4] / 2) * h, (lb[:, 2] + lb[:, 4] / 2) * h
        return out

    def cache_images(self, cache: object = "ram") -> None:
        """``"ram"``: every image decoded and resized into one buffer now; ``"disk"``: resized ``.npy`` files
        written as images are first read (:mod:`data.cache`); ``None`` drops the cache."""
        kind = check_cache(cache)
        self.cache_kind, self._ram = kind, None
        if kind == "ram":
            self._ram = fill_ram(self.shapes, self.imgsz, self._try_load, self.report.source)
        elif kind == "disk":
            print(f"{self.report.source}: --cache disk: resized images saved as .npy beside the originals as "
                  "they are first read (under the detloss cache folder where read-only)")  # fmt: skip

    def _try_load(self, i: int) -> np.ndarray | None:
        try:
            return self.load_image(i)
        except UnreadableImageError:
            self._unreadable[i] = 1
            return None

    def _fit(self, i: int) -> np.ndarray:
        """Image ``i`` resized so its long side is ``imgsz`` (ratio kept, no padding), from the cache if any."""
        if self._unreadable[i]:
            raise UnreadableImageError(f"{self.im_files[i]}: unreadable (found earlier)")
        if self._ram is not None:
            img = self._ram.get(i)
            if img is None:
                raise UnreadableImageError(f"{self.im_files[i]}: unreadable when the RAM cache was filled")
            return img
        if self.cache_kind == "disk":
            h, w = (int(v) for v in fitted_shapes(np.asarray([self.shapes[i]]), self.imgsz)[0])
            path = npy_path(self.im_files[i])
            img = read_npy(path, h, w)
            if img is None:
                img = fit_image(self.load_image(i), self.imgsz)
                write_npy(path, img)
            return img
        return fit_image(self.load_image(i), self.imgsz)

    def _load_fit(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`_fit` and the pixel labels of that image."""
        img = self._fit(i)
        return img, self.pixel_labels(i, img.shape[1], img.shape[0])

    def _readable(self, i: int) -> tuple[int, tuple[np.ndarray, np.ndarray]]:
        """``(k, _load_fit(k))`` for the first readable image ``k`` from ``i`` on (wrapping); marks the others."""
        n = len(self)
        for step in range(n):
            k = (i + step) % n
            if self._unreadable[k]:
                continue
            try:
                return k, self._load_fit(k)
            except UnreadableImageError:
                self._unreadable[k] = 1
        raise DatasetError(f"{self.report.source}: no image of the {n} can be decoded")

    def _letterboxed(self, i: int, fitted: tuple[np.ndarray, np.ndarray] | None = None):
        """Image ``i`` letterboxed to ``imgsz x imgsz``, its pixel labels there, the ratio and the padding."""
        img, lab = self._load_fit(i) if fitted is None else fitted
        (h0, w0), (fh, fw) = self.shapes[i], img.shape[:2]
        img, _, pad = letterbox(img, self.imgsz, auto=False, scaleup=True)  # only pads: the image already fits
        lab[:, [1, 3]] += pad[0]
        lab[:, [2, 4]] += pad[1]
        return img, lab, (fw / w0, fh / h0), pad

    def __getitem__(self, i: int) -> Any:
        if not 0 <= i < len(self):
            raise IndexError(f"index {i} out of range for a dataset of {len(self)} images")
        s = self.imgsz
        if not self.augment:
            try:
                fitted = self._load_fit(i)
            except UnreadableImageError:
                self._unreadable[i] = 1
                return None  # collate_fn leaves it out: evaluation goes on without this image
            img, lab, ratio, pad = self._letterboxed(i, fitted)
            meta = {"orig_shape": self.shapes[i], "image_id": self.image_ids[i], "augmented": False}
            meta.update(ratio=ratio, pad=pad)
            return _to_tensor(img), _to_targets(lab, s), self.im_files[i], meta
        rng = np.random.default_rng([self.seed, self.epoch, i])
        k, fitted = self._readable(i)  # k != i only when image i cannot be decoded
        img, lab = self._augmented(k, fitted, rng)
        meta = {"orig_shape": self.shapes[k], "image_id": self.image_ids[k], "augmented": True}
        meta.update(ratio=None, pad=None)
        return _to_tensor(img), _to_targets(lab, s), self.im_files[k], meta

    def _augmented(self, i: int, fitted: tuple[np.ndarray, np.ndarray], rng: np.random.Generator):
        s, cfg = self.imgsz, self.aug
        if rng.random() < cfg.mosaic:
            others = [self._readable(int(k))[1] for k in rng.integers(0, len(self), 3)]
            parts = [fitted, *others]
            canvas, lab = mosaic4([p[0] for p in parts], [p[1] for p in parts], s, rng)
            img, lab = random_affine(canvas, lab, rng, cfg, border=-(s // 2))
        else:
            img, lab, _, _ = self._letterboxed(i, fitted)
            img, lab = random_affine(img, lab, rng, cfg)
        img = augment_hsv(img, rng, cfg.hsv_h, cfg.hsv_s, cfg.hsv_v)
        if rng.random() < cfg.fliplr:
            img, lab = flip_lr(img, lab)
        if rng.random() < cfg.flipud:
            img, lab = flip_ud(img, lab)
        return img, lab


def _to_tensor(img: np.ndarray) -> torch.Tensor:
    """BGR ``[H, W, 3]`` -> RGB ``uint8 Tensor[3, H, W]``."""
    return torch.from_numpy(np.ascontiguousarray(img[:, :, ::-1].transpose(2, 0, 1)))


def _to_targets(lab: np.ndarray, s: int) -> torch.Tensor:
    """Pixel ``(cls, x1, y1, x2, y2)`` on an ``s x s`` image -> ``Tensor[n, 6] (0, cls, cx, cy, w, h)`` normalised."""
    out = torch.zeros((len(lab), 6), dtype=torch.float32)
    if len(lab):
        t = torch.from_numpy(lab.astype(np.float32))
        xy = t[:, 1:5].clamp(0, s)
        out[:, 1] = t[:, 0]
        out[:, 2] = (xy[:, 0] + xy[:, 2]) / (2 * s)
        out[:, 3] = (xy[:, 1] + xy[:, 3]) / (2 * s)
        out[:, 4] = (xy[:, 2] - xy[:, 0]) / s
        out[:, 5] = (xy[:, 3] - xy[:, 1]) / s
    return out
