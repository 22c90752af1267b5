"""Dataset readers: the yolov5 layout (:class:`YoloDataset`), COCO JSON (:class:`CocoDataset`) and Pascal VOC XML
(:class:`VocDataset`), the batch
collate function, and :func:`build_dataset` which picks the reader from a data YAML split entry.

Samples and their conventions are described in :mod:`data.base`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .base import DetectionDataset
from .coco import read_coco
from .index_cache import cache_path, cached_verify, fallback_path, files_hash
from .report import DatasetError, DatasetNotFoundError
from .sources import IMG_SUFFIXES, label_files, list_images
from .store import Column, RaggedRows, Strings
from .verify import Verified, verify_split
from .voc import is_voc_source, read_voc
from .yaml_io import load_data_yaml, parse_data_dict


class YoloDataset(DetectionDataset):
    """Images and yolov5 ``labels/*.txt`` of a folder, a ``.txt`` list of images, or a list of those.

    ``names``: class names; when ``None`` they become ``"0".."k"`` for the largest class id ``k`` found
    (then class ids cannot be range-checked). ``image_id`` is the dataset index and
    ``cat_ids == list(range(nc))``. Bad rows/images/label files are skipped and summarised in one
    :class:`data.report.DatasetWarning` (``strict=True``: :class:`data.report.DatasetError`).
    """

    def __init__(
        self,
        source: str | os.PathLike | list,
        imgsz: int = 640,
        augment: bool = False,
        hyp: dict | None = None,
        strict: bool = False,
        names: list[str] | None = None,
        seed: int = 0,
    ):
        src = ", ".join(map(str, source)) if isinstance(source, list | tuple) else str(source)
        super().__init__(imgsz, augment, hyp, strict, seed, source=src)
        files = list_images(source)
        if not files:
            raise DatasetError(f"{src}: no images found (suffixes {', '.join(IMG_SUFFIXES)})")
        if names is not None and not list(names):
            raise DatasetError(f"{src}: names is empty")
        self.report.images_found = len(files)
        nc = len(names) if names is not None else None
        lab_files = label_files(files)
        res = cached_verify(
            cache_path(source if not isinstance(source, list | tuple) else None, lab_files),
            files_hash(files, lab_files, f"yolo nc={nc}"),
            lambda: verify_split(files, lab_files, nc),
            src,
        )
        self.report.merge(res.report)
        keep = np.flatnonzero(res.keep)
        self.im_files = Strings.from_list(files).take(keep)
        self.labels, self.shapes = res.labels.take(keep), res.shapes.take(keep)
        self.image_ids = Column(np.arange(len(keep)))
        if names is None:
            cls = self.labels.rows[:, 0]
            top = max(int(cls.max()) if len(cls) else 0, 0)  # only ignore regions (class -1): still one class
            names = [str(k) for k in range(top + 1)]
        self.names = [str(n) for n in names]
        self.cat_ids = list(range(self.nc))
        self._finish()
        self._warn_missing_labels(_first_missing_folder(self.report, lab_files))


def _first_missing_folder(report, label_files: list[str]) -> str:
    first = report.first("missing_label")
    return os.path.dirname(first[0].path if first else label_files[0])


class CocoDataset(DetectionDataset):
    """Images of ``img_dir`` (joined with each ``file_name``) labelled by a COCO ``instances_*.json``.

    Category ids map to class indices in sorted order (``cat_ids[cls]`` is the COCO id; names from
    ``categories``); crowd annotations become ignore rows of class -1; ``image_id`` is the COCO image id. Images whose
    size differs from the JSON's ``width``/``height`` count as bad images. The image check is cached under the detloss
    cache folder (``index/instances_x-<hash>.cache``, :mod:`data.index_cache`), keyed on the JSON and every image.
    """

    def __init__(
        self,
        ann_json: str | os.PathLike,
        img_dir: str | os.PathLike,
        imgsz: int = 640,
        augment: bool = False,
        hyp: dict | None = None,
        strict: bool = False,
        seed: int = 0,
    ):
        src = str(ann_json)
        super().__init__(imgsz, augment, hyp, strict, seed, source=src)
        root = Path(img_dir).expanduser()
        if not root.is_dir():
            raise DatasetNotFoundError(f"image folder not found: {root} (for {ann_json})")
        index = read_coco(ann_json, self.report)
        self.report.images_found = len(index.image_ids)
        files = [os.path.abspath(root / name) for name in index.file_names]

        def verify() -> Verified:  # image sizes from headers, checked against the JSON; labels for the counts
            res = verify_split(files, None, None, expected=index.shapes)
            return Verified(res.keep, res.shapes, index.labels, res.report)

        json_file = Path(os.path.abspath(Path(ann_json).expanduser()))
        where = fallback_path(json_file.with_suffix(".cache"))  # annotation folders are often shared, read-only
        res = cached_verify(where, files_hash(files, [str(json_file)], "coco"), verify, src)
        self.report.merge(res.report)
        keep = np.flatnonzero(res.keep)
        self.im_files = Strings.from_list(files).take(keep)
        self.shapes = res.shapes.take(keep)
        self.labels = index.labels.take(keep)
        self.image_ids = Column(np.asarray(index.image_ids, np.int64)[keep])
        self.names, self.cat_ids = index.names, index.cat_ids
        self._finish()


class VocDataset(DetectionDataset):
    """Images labelled by Pascal VOC XML (a VOC root, an ``ImageSets/Main/<split>.txt`` list, or a folder with an
    XML beside each image; :mod:`data.voc` has the conventions: 1-based pixel boxes, difficult -> class -1).

    ``names``: the class list (an object of another class is reported and skipped); ``None``: the sorted set
    of names found. ``name_map``: object name -> class name, applied first. ``image_id`` is the dataset
    index and ``cat_ids == list(range(nc))``. Images whose size differs from the XML's ``<size>`` are bad images.
    """

    def __init__(
        self,
        source: str | os.PathLike,
        imgsz: int = 640,
        augment: bool = False,
        hyp: dict | None = None,
        strict: bool = False,
        names: list[str] | None = None,
        name_map: dict[str, str] | None = None,
        seed: int = 0,
    ):
        super().__init__(imgsz, augment, hyp, strict, seed, source=str(source))
        index = read_voc(source, self.report, names, name_map)
        self.report.images_found = index.images_found
        res = verify_split(index.image_files, None, None, expected=index.shapes)
        self.report.merge(res.report)
        keep = np.flatnonzero(res.keep)
        self.im_files = Strings.from_list(index.image_files).take(keep)
        self.shapes = res.shapes.take(keep)
        self.labels = RaggedRows.from_arrays(index.labels).take(keep)
        self.image_ids = Column(np.arange(len(keep)))
        self.names = index.names
        self.cat_ids = list(range(self.nc))
        self._finish()


def collate_fn(batch: list) -> tuple[torch.Tensor, torch.Tensor, list[str], list[dict]]:
    """Stack samples into ``(imgs uint8 [bs, 3, H, W], targets float [n, 6], paths, metas)``.

    ``targets`` rows are ``(image index in batch, cls, cx, cy, w, h)``, boxes normalised to ``H, W``; rows of
    class -1 are ignore regions (``detloss.split_ignore(targets)`` separates them for the loss).
    A ``None`` sample (an image that could not be decoded, see :class:`data.base.DetectionDataset`) is left out;
    a batch of only such samples gives an empty batch ``[0, 3, 0, 0]``.
    """
    if not batch:
        raise ValueError("collate_fn got an empty batch")
    batch = [b for b in batch if b is not None]
    if not batch:
        return torch.zeros((0, 3, 0, 0), dtype=torch.uint8), torch.zeros((0, 6)), [], []
    imgs, labels, paths, metas = zip(*batch)
    shapes = {tuple(im.shape) for im in imgs}
    if len(shapes) != 1:
        raise ValueError(f"collate_fn needs images of one shape, got {sorted(shapes)}")
    targets = []
    for k, lb in enumerate(labels):
        lb = lb.clone()
        lb[:, 0] = k
        targets.append(lb)
    return torch.stack(imgs), torch.cat(targets, 0), list(paths), list(metas)


def _as_data(data: str | os.PathLike | dict) -> dict[str, Any]:
    if isinstance(data, dict):
        return parse_data_dict(data, source=str(data.get("yaml_file", "data dict")))
    return load_data_yaml(data)


def _split_entry(data: dict[str, Any], split: str) -> Any:
    entry = data.get(split)
    if entry is None or entry == []:
        avail = [k for k in ("train", "val", "test") if data.get(k)]
        raise DatasetError(f"{data.get('yaml_file', 'data')}: no '{split}' split (has {avail})")
    return entry


def build_dataset(
    data: str | os.PathLike | dict,
    split: str,
    imgsz: int,
    augment: bool = False,
    hyp: dict | None = None,
    strict: bool = False,
    seed: int = 0,
) -> DetectionDataset:
    """The dataset of ``split`` in a data YAML (path or dict, see :mod:`data.yaml_io`).

    The dataset's ``multi_label`` attribute is the YAML's ``multi_label`` (one box may have several classes).
    A split entry ending in ``.json`` gives a :class:`CocoDataset` whose images are in the
    ``{split}_images`` key, else ``path/images/{split}`` when that folder exists, else ``path``; a VOC source
    (:func:`data.voc.is_voc_source`: a folder with ``Annotations/`` or ``.xml`` files, or an
    ``ImageSets/Main/<split>.txt``) gives a :class:`VocDataset` with the YAML ``names`` and ``name_map``;
    anything else (folder, ``.txt`` list, list) gives a :class:`YoloDataset` with the YAML ``names``.
    """
    d = _as_data(data)
    entry = _split_entry(d, split)
    if isinstance(entry, str) and entry.lower().endswith(".json"):
        img_dir = d.get(f"{split}_images")
        if not img_dir:
            guess = Path(d["path"]) / "images" / split
            img_dir = guess if guess.is_dir() else Path(d["path"])
        ds: DetectionDataset = CocoDataset(entry, img_dir, imgsz, augment, hyp, strict, seed)
        if ds.nc != d["nc"]:
            raise DatasetError(f"{entry}: {ds.nc} categories but the data YAML has {d['nc']} names")
    elif is_voc_source(entry):
        ds = VocDataset(entry, imgsz, augment, hyp, strict, names=d["names"], name_map=d.get("name_map"), seed=seed)
    else:
        ds = YoloDataset(entry, imgsz, augment, hyp, strict, names=d["names"], seed=seed)
    ds.multi_label = bool(d.get("multi_label", False))
    return ds


def coco_gt_for(data: str | os.PathLike | dict, split: str) -> Path | None:
    """The COCO ground-truth JSON of ``split``: the split entry itself if it is a ``.json``, else the
    ``{split}_json`` key; ``None`` when there is none (make one with ``data.convert.yolo_to_coco``).

    For a :class:`YoloDataset` its image ids must be the dataset indices and its category ids the
    class indices (as in the demo and in ``yolo_to_coco`` output).
    """
    d = _as_data(data)
    entry = _split_entry(d, split)
    if isinstance(entry, str) and entry.lower().endswith(".json"):
        path = entry
    elif d.get(f"{split}_json"):
        path = d[f"{split}_json"]
    else:
        return None
    p = Path(path)
    if not p.is_file():
        raise DatasetNotFoundError(f"COCO ground truth of split '{split}' not found: {p}")
    return p
