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

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from torch.utils.data import Dataset

from detloss.checks import check_int

from .augment import AugConfig, augment_hsv, flip_lr, flip_ud, random_affine
from .cache import check_cache, fill_cache, fit_image
from .letterbox import letterbox
from .mosaic import mosaic4
from .report import DatasetError, DatasetReport
from .sources import read_image


class DetectionDataset(Dataset):
    """Base class; subclasses fill ``im_files``, ``labels``, ``image_ids``, ``names``, ``cat_ids`` then call
    :meth:`_verify_images` and :meth:`_finish`.

    Attributes:
        labels: per image ``float32 ndarray[n, 5]`` ``(cls, cx, cy, w, h)`` normalised to the original image;
            rows of class -1 are ignore regions (they go through letterbox and augmentation like boxes).
        shapes: per image ``(h0, w0)``.
        report: the :class:`data.report.DatasetReport` of what was skipped, dropped or clipped.
    """

    def __init__(self, imgsz: int, augment: bool, hyp: dict | None, strict: bool, seed: int, source: str):
        self.imgsz = check_int(imgsz, "imgsz", lo=1)
        self.augment = bool(augment)
        self.aug = AugConfig.from_hyp(hyp, warn=self.augment)
        self.strict = bool(strict)
        self.seed = int(seed)
        self.epoch = 0
        self.report = DatasetReport(source=source, strict=self.strict)
        self.im_files: list[str] = []
        self.labels: list[np.ndarray] = []
        self.shapes: list[tuple[int, int]] = []
        self.image_ids: list[int] = []
        self.names: list[str] = []
        self.cat_ids: list[int] = []
        self.multi_label = False  # set from the data YAML by data.datasets.build_dataset

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
        """Decode every image once; record its shape; report unreadable ones (and size mismatches)."""
        workers = max(1, min(8, os.cpu_count() or 1))
        with ThreadPoolExecutor(workers) as pool:
            results = list(pool.map(read_image, self.im_files))
        ok = []
        self.shapes = []
        for k, (path, (img, why)) in enumerate(zip(self.im_files, results)):
            shape = (0, 0) if img is None else (img.shape[0], img.shape[1])
            if img is None:
                self.report.add("bad_image", path, None, why)
            elif expected is not None and tuple(expected[k]) != shape:
                img = None
                eh, ew = expected[k]
                why = f"annotation says {ew}x{eh} but the image is {shape[1]}x{shape[0]}"
                self.report.add("bad_image", path, None, why)
            ok.append(img is not None)
            self.shapes.append(shape)
        return ok

    def _finish(self) -> None:
        """Fill the report totals, refuse an empty dataset, emit the one summary warning."""
        r = self.report
        r.images = len(self.im_files)
        r.boxes = int(sum(int((lb[:, 0] >= 0).sum()) for lb in self.labels))
        r.ignore_regions = int(sum(len(lb) for lb in self.labels)) - r.boxes
        r.backgrounds = sum(1 for lb in self.labels if not (lb[:, 0] >= 0).any())
        if not self.im_files:
            raise DatasetError(f"{r.source}: no usable images ({r.images_found} found)\n{r.summary()}")
        r.warn_if_needed(stacklevel=4)

    # --- samples -------------------------------------------------------------------------------
    def load_image(self, i: int) -> np.ndarray:
        """The BGR ``uint8 [h0, w0, 3]`` image ``i``; :class:`DatasetError` if it became unreadable."""
        img, why = read_image(self.im_files[i])
        if img is None:
            raise DatasetError(f"{self.im_files[i]}: {why} (it was readable when the dataset was built)")
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
        """Keep every image decoded and resized in RAM (:mod:`data.cache`); ``None`` drops the cache."""
        kind = check_cache(cache)
        self._cache = fill_cache(self.shapes, self.imgsz, self.load_image, self.report.source) if kind else None

    def _fit(self, i: int) -> np.ndarray:
        """Image ``i`` resized so its long side is ``imgsz`` (ratio kept, no padding), from the cache if any."""
        cached = getattr(self, "_cache", None)
        return cached[i] if cached is not None else fit_image(self.load_image(i), self.imgsz)

    def _load_fit(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`_fit` and the pixel labels of that image."""
        img = self._fit(i)
        return img, self.pixel_labels(i, img.shape[1], img.shape[0])

    def _letterboxed(self, i: int) -> tuple[np.ndarray, np.ndarray, tuple[float, float], tuple[float, float]]:
        """Image ``i`` letterboxed to ``imgsz x imgsz``, its pixel labels there, the ratio and the padding."""
        img, lab = self._load_fit(i)
        (h0, w0), (fh, fw) = self.shapes[i], img.shape[:2]
        img, _, pad = letterbox(img, self.imgsz, auto=False, scaleup=True)  # only pads: the image already fits
        lab[:, [1, 3]] += pad[0]
        lab[:, [2, 4]] += pad[1]
        return img, lab, (fw / w0, fh / h0), pad

    def __getitem__(self, i: int):
        if not 0 <= i < len(self):
            raise IndexError(f"index {i} out of range for a dataset of {len(self)} images")
        s = self.imgsz
        meta = {"orig_shape": self.shapes[i], "image_id": self.image_ids[i], "augmented": self.augment}
        if not self.augment:
            img, lab, ratio, pad = self._letterboxed(i)
            meta.update(ratio=ratio, pad=pad)
        else:
            img, lab = self._augmented(i, np.random.default_rng([self.seed, self.epoch, i]))
            meta.update(ratio=None, pad=None)
        return _to_tensor(img), _to_targets(lab, s), self.im_files[i], meta

    def _augmented(self, i: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        s, cfg = self.imgsz, self.aug
        if rng.random() < cfg.mosaic:
            idx = [i, *(int(k) for k in rng.integers(0, len(self), 3))]
            parts = [self._load_fit(k) for k in idx]
            canvas, lab = mosaic4([p[0] for p in parts], [p[1] for p in parts], s, rng)
            img, lab = random_affine(canvas, lab, rng, cfg, border=-(s // 2))
        else:
            img, lab, _, _ = self._letterboxed(i)
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
