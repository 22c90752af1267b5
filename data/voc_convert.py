"""Convert between Pascal VOC XML and the yolov5 layout (the command line is ``python -m data.convert``).

``voc_to_yolo``: a VOC source (see :mod:`data.voc`) to ``out/images/<split>/`` (images hard-linked or copied)
and ``out/labels/<split>/*.txt``; difficult objects become class ``-1`` rows (ignore regions); ``out/data.yaml``
gets the split and ``names``.

``yolo_to_voc``: one split of a data YAML to ``out/Annotations/<stem>.xml`` + ``out/JPEGImages/``. Boxes are
written 1-based (``xmin = x1 + 1``, ``xmax = x2``: the inverse of :mod:`data.voc`'s reading), with two decimals
at most (whole pixels print as integers); a class ``-1`` row becomes an object named :data:`IGNORE_NAME` with
``<difficult>1</difficult>`` (read back as an ignore region). VOC keeps images in one flat folder, so two
images of the split with the same file name are an error.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from fileio import atomic_write, link_or_copy

from .datasets import VocDataset, build_dataset
from .report import DatasetError
from .sources import label_path, write_labels

IGNORE_NAME = "ignore"  # the <name> of a written ignore region (difficult=1; its class is not read back)


def write_yolo_labels(image_dst: str | os.PathLike, rows: np.ndarray) -> Path:
    """Write ``rows`` ``[n, 5]`` ``(cls, cx, cy, w, h)`` normalised (class -1: an ignore region) as the yolov5
    label file of ``image_dst`` through :func:`data.sources.write_labels`; returns its path."""
    return write_labels(label_path(image_dst), np.asarray(rows, np.float64).reshape(-1, 5))


def voc_to_yolo(source: str | os.PathLike, out_dir: str | os.PathLike, split: str = "train",
                names: list[str] | None = None, name_map: dict[str, str] | None = None, link: bool = True,
                strict: bool = False) -> Path:  # fmt: skip
    """Write a VOC source as split ``split`` of a yolov5-layout dataset under ``out_dir``; returns ``data.yaml``.

    ``names`` / ``name_map`` as in :class:`data.datasets.VocDataset` (``None``: the sorted names found).
    """
    from .convert import _update_yaml

    ds = VocDataset(source, names=names, name_map=name_map, strict=strict)
    out = Path(out_dir).resolve()
    for f, lab in zip(ds.im_files, ds.labels):
        dst = out / "images" / split / Path(f).name
        link_or_copy(f, dst, link)
        write_yolo_labels(dst, lab)
    return _update_yaml(out, split, ds.names, None)


def yolo_to_voc(data_yaml: str | os.PathLike | dict, split: str, out_dir: str | os.PathLike, link: bool = True,
                strict: bool = False) -> Path:  # fmt: skip
    """Write one split of a data YAML as VOC (``Annotations/`` + ``JPEGImages/``) under ``out_dir``; returns it."""

    ds = build_dataset(data_yaml, split, 32, strict=strict)
    out = Path(out_dir).resolve()
    seen: dict[str, str] = {}
    for f in ds.im_files:
        name = Path(f).name
        if name in seen:
            raise DatasetError(f"{f}: same file name as {seen[name]}; VOC's JPEGImages/ is one flat folder")
        seen[name] = f
    for f, (h, w), lab in zip(ds.im_files, ds.shapes, ds.labels):
        dst = out / "JPEGImages" / Path(f).name
        link_or_copy(f, dst, link)
        xml = voc_xml(dst.name, (int(h), int(w)), lab, ds.names)
        atomic_write(out / "Annotations" / f"{dst.stem}.xml", xml)
    return out


def voc_xml(filename: str, shape: tuple[int, int], labels: np.ndarray, names: list[str]) -> str:
    """The VOC XML text of one image of ``shape = (h, w)`` with rows ``(cls, cx, cy, w, h)`` normalised."""
    h, w = shape
    root = ET.Element("annotation")
    ET.SubElement(root, "filename").text = filename
    size = ET.SubElement(root, "size")
    for tag, v in (("width", w), ("height", h), ("depth", 3)):
        ET.SubElement(size, tag).text = str(v)
    for c, cx, cy, bw, bh in np.asarray(labels, np.float64).reshape(-1, 5):
        obj = ET.SubElement(root, "object")
        ET.SubElement(obj, "name").text = IGNORE_NAME if c < 0 else names[int(c)]
        ET.SubElement(obj, "truncated").text = "0"
        ET.SubElement(obj, "difficult").text = "1" if c < 0 else "0"
        box = ET.SubElement(obj, "bndbox")
        x1, y1, x2, y2 = (cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h
        for tag, v in (("xmin", x1 + 1), ("ymin", y1 + 1), ("xmax", x2), ("ymax", y2)):  # 0-based -> 1-based
            ET.SubElement(box, tag).text = _pixel(v)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode") + "\n"


def _pixel(v: float) -> str:
    """A coordinate with at most two decimals; whole numbers (within 0.005) without any."""
    return f"{round(v, 2):.2f}".rstrip("0").rstrip(".")
