"""Convert between the yolov5 layout and COCO JSON.

``yolo_to_coco``: :func:`data.coco_gt.coco_from_labels` of the split's :class:`data.datasets.YoloDataset`:
image ids are the dataset indices and category ids the class indices (so the JSON is the ground truth for
that dataset's predictions); annotation ids start at 1 (pycocotools treats id 0 as unmatched);
``bbox = [x, y, w, h]`` float pixels; ``area = w*h``.

``coco_to_yolo``: sorted category ids become class indices ``0..nc-1``; crowd annotations are left
out (they are not objects to detect); images are hard-linked (or copied) to ``out/images/<split>/``
and labels written to ``out/labels/<split>/``; ``out/data.yaml`` gets the split, ``names`` and
``coco_cat_ids`` (class index -> original category id).

Command line::

    python -m data.convert yolo2coco data.yaml --split val --out instances_val.json
    python -m data.convert coco2yolo instances_val2017.json --images val2017/ --out coco_yolo/
    python -m data.convert voc2yolo VOCdevkit/VOC2007 --split train --out voc_yolo/
    python -m data.convert yolo2voc data.yaml --split val --out voc_val/

The VOC conversions live in :mod:`data.voc_convert`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import yaml

from fileio import atomic_write, link_or_copy

from .coco_gt import coco_from_labels
from .datasets import CocoDataset, YoloDataset
from .report import DatasetError
from .sources import label_path, write_labels
from .yaml_io import load_data_yaml, parse_data_dict


def yolo_to_coco(
    data_yaml: str | os.PathLike | dict, split: str, out_json: str | os.PathLike, strict: bool = False
) -> Path:
    """Write the COCO JSON of one split of a yolov5-layout dataset; returns ``out_json``.

    ``file_name`` is relative to the split folder when the split is one folder (pass that folder as
    ``img_dir`` to ``CocoDataset``), else relative to the dataset ``path``. An ignore region (class -1 row)
    becomes a crowd annotation of every category (read back as one ignore region).
    """
    d = load_data_yaml(data_yaml) if not isinstance(data_yaml, dict) else parse_data_dict(data_yaml)
    entry = d.get(split)
    if not entry:
        raise DatasetError(f"{d.get('yaml_file', 'data')}: no '{split}' split")
    ds = YoloDataset(entry, names=d["names"], strict=strict)
    base = Path(entry) if isinstance(entry, str) and Path(entry).is_dir() else Path(d["path"])
    info = {"description": f"converted from {d.get('yaml_file', 'data')} split {split} by detloss data.convert"}
    coco = {"info": info, **coco_from_labels(ds, root=base)}
    atomic_write(out_json, json.dumps(coco))
    return Path(out_json)


def coco_to_yolo(
    ann_json: str | os.PathLike,
    img_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    split: str | None = None,
    link: bool = True,
    strict: bool = False,
) -> Path:
    """Write a COCO split as a yolov5-layout dataset under ``out_dir``; returns ``out_dir/data.yaml``.

    ``split`` defaults to the JSON name without ``instances_`` (``instances_val2017.json`` -> ``val2017``).
    ``link``: hard-link images when possible (else copy). Existing label files are replaced.
    """
    ds = CocoDataset(ann_json, img_dir, strict=strict)
    split = split or Path(ann_json).stem.removeprefix("instances_")
    out = Path(out_dir).resolve()
    src_root = Path(img_dir).resolve()
    for f, lab in zip(ds.im_files, ds.labels):
        src = Path(f)
        rel = src.relative_to(src_root) if src.is_relative_to(src_root) else Path(src.name)
        dst = out / "images" / split / rel
        link_or_copy(src, dst, link)
        write_labels(label_path(dst), lab)
    return _update_yaml(out, split, ds.names, ds.cat_ids)


def _update_yaml(out: Path, split: str, names: list[str], cat_ids: list[int] | None) -> Path:
    """Create or update ``out/data.yaml`` with this split; a split named like train/val/test fills that key.
    ``cat_ids``: the COCO category ids (``None`` for a source without them, e.g. VOC)."""
    path = out / "data.yaml"
    data: dict = {}
    if path.exists():
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(data, dict):
            raise DatasetError(f"{path}: exists but is not a mapping; will not overwrite it")
        if data.get("names") and list(data["names"]) != list(names):
            raise DatasetError(f"{path}: has names {data['names']} but this split has {names}")
        if data.get("coco_cat_ids") and cat_ids is not None and list(data["coco_cat_ids"]) != list(cat_ids):
            raise DatasetError(f"{path}: has coco_cat_ids {data['coco_cat_ids']} but this split has {cat_ids}")
    key = next((k for k in ("train", "val", "test") if k in split.lower()), split)
    data.update(path=str(out), names=list(names), nc=len(names))
    if cat_ids is not None:
        data["coco_cat_ids"] = list(cat_ids)
    data[key] = f"images/{split}"
    for k in ("train", "val"):  # the YAML needs both; a split converted later replaces the stand-in
        data.setdefault(k, f"images/{split}")
    atomic_write(path, yaml.safe_dump(data, sort_keys=False))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m data.convert", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("yolo2coco", help="yolov5 layout split -> COCO JSON")
    a.add_argument("data", help="data YAML")
    a.add_argument("--split", default="val", help="split key in the YAML (default: val)")
    a.add_argument("--out", required=True, help="output JSON file")
    a.add_argument("--strict", action="store_true", help="fail on the first bad label or image")
    b = sub.add_parser("coco2yolo", help="COCO JSON + images -> yolov5 layout")
    b.add_argument("ann_json", help="COCO annotation file (instances_*.json)")
    b.add_argument("--images", required=True, help="folder the file_names are relative to")
    b.add_argument("--out", required=True, help="output dataset folder")
    b.add_argument("--split", default=None, help="split name (default: from the JSON name)")
    b.add_argument("--copy", action="store_true", help="copy images instead of hard-linking")
    b.add_argument("--strict", action="store_true", help="fail on the first bad annotation or image")
    _voc_parsers(sub)
    args = parser.parse_args(argv)
    try:
        if args.cmd == "yolo2coco":
            print(yolo_to_coco(args.data, args.split, args.out, strict=args.strict))
        elif args.cmd == "coco2yolo":
            print(coco_to_yolo(args.ann_json, args.images, args.out, args.split, not args.copy, args.strict))
        else:
            print(_run_voc(args))
    except DatasetError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


def _voc_parsers(sub) -> None:
    c = sub.add_parser("voc2yolo", help="Pascal VOC (root, ImageSets/Main/<split>.txt or XML folder) -> yolov5 layout")
    c.add_argument("source", help="VOC root (Annotations/ + JPEGImages/), split list, or folder of images + XML")
    c.add_argument("--out", required=True, help="output dataset folder")
    c.add_argument("--split", default="train", help="split name (default: train)")
    c.add_argument("--names", nargs="+", default=None, help="class list (default: the sorted names found)")
    c.add_argument("--map", nargs="+", default=[], metavar="FROM=TO", help="rename object names, e.g. Dead=tree")
    c.add_argument("--copy", action="store_true", help="copy images instead of hard-linking")
    c.add_argument("--strict", action="store_true", help="fail on the first bad annotation or image")
    d = sub.add_parser("yolo2voc", help="yolov5 layout split -> Pascal VOC (Annotations/ + JPEGImages/)")
    d.add_argument("data", help="data YAML")
    d.add_argument("--split", default="val", help="split key in the YAML (default: val)")
    d.add_argument("--out", required=True, help="output VOC folder")
    d.add_argument("--copy", action="store_true", help="copy images instead of hard-linking")
    d.add_argument("--strict", action="store_true", help="fail on the first bad label or image")


def _run_voc(args: argparse.Namespace) -> Path:
    from .voc_convert import voc_to_yolo, yolo_to_voc

    if args.cmd == "yolo2voc":
        return yolo_to_voc(args.data, args.split, args.out, not args.copy, args.strict)
    bad = [m for m in args.map if m.count("=") != 1 or not m.split("=")[1]]
    if bad:
        raise DatasetError(f"--map entries must be FROM=TO, got {bad}")
    name_map = dict(m.split("=") for m in args.map)
    return voc_to_yolo(args.source, args.out, args.split, args.names, name_map, not args.copy, args.strict)


if __name__ == "__main__":
    sys.exit(main())
