"""The built-in demo dataset: generated once, cached, in both the yolov5 layout and COCO JSON.

Layout of ``ensure_demo()``'s folder::

    demo.yaml                                  data YAML (absolute ``path``; keys train/val, train_json/val_json)
    images/{train,val}/000000.jpg ...          256x256 JPEG, quality 95 (byte-deterministic for one
                                               OpenCV/libjpeg build; why not PNG: docs/notes.md)
    labels/{train,val}/000000.txt ...          yolov5 rows "cls cx cy w h", normalised, 6 decimals
    annotations/instances_{train,val}.json     COCO: image id = file index (= YoloDataset index),
                                               category id = class index, annotation ids from 1,
                                               bbox [x, y, w, h] integer pixels, area = w*h, iscrowd 0
    .complete                                  marker written last (version, seed, counts)

Generation writes into a temporary sibling folder and renames it into place, so a concurrent caller
either finds a complete folder or builds its own and discards it. Image ``i`` of a split is drawn
from ``numpy.random.default_rng([seed, split_number, i])`` (no global RNG state). See
:mod:`data.demo_draw` for what is drawn.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import cv2
import numpy as np
import yaml

from .cache import cache_root
from .demo_draw import DEMO_NAMES, draw_image
from .report import DatasetError
from .sources import write_labels

DEMO_IMGSZ = 256
DEMO_TRAIN = 600
DEMO_VAL = 150
DEMO_VERSION = 1
JPEG_QUALITY = 95
MARKER = ".complete"
YAML_NAME = "demo.yaml"
SPLITS = ("train", "val")

__all__ = ["DEMO_IMGSZ", "DEMO_NAMES", "DEMO_TRAIN", "DEMO_VAL", "ensure_demo", "generate_demo"]


def default_root() -> Path:
    """``$DETLOSS_CACHE/demo`` if the variable is set, else ``~/.cache/detloss/demo``."""
    return cache_root() / "demo"


def ensure_demo(
    root: str | os.PathLike | None = None, seed: int = 0, *, n_train: int = DEMO_TRAIN, n_val: int = DEMO_VAL
) -> Path:
    """Path of the demo data YAML, generating the dataset first if it is not cached.

    ``root``: the folder (default :func:`default_root`); a seed other than 0 uses the sibling
    ``<root>-seed<seed>``, and non-default sizes ``<root>-<n_train>-<n_val>``. A folder that exists
    without a completion marker is not touched: :class:`data.report.DatasetError` says so.
    """
    final = (Path(root).expanduser() if root is not None else default_root()).resolve()
    if seed != 0:
        final = final.with_name(f"{final.name}-seed{seed}")
    if (n_train, n_val) != (DEMO_TRAIN, DEMO_VAL):
        final = final.with_name(f"{final.name}-{n_train}-{n_val}")
    want = _marker(seed, n_train, n_val)
    state = _state(final, want)
    if state == "ok":
        return final / YAML_NAME
    if state == "foreign":
        raise DatasetError(
            f"{final} exists but is not a complete demo dataset (no {MARKER}); remove it or pick another root"
        )
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        generate_demo(tmp, seed, n_train, n_val, yaml_path=final)
        _install(tmp, final, want)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    if _state(final, want) != "ok":
        raise DatasetError(f"{final}: demo generation did not leave a complete dataset")
    return final / YAML_NAME


def _marker(seed: int, n_train: int, n_val: int) -> dict:
    return {"version": DEMO_VERSION, "seed": seed, "train": n_train, "val": n_val, "imgsz": DEMO_IMGSZ}


def _state(final: Path, want: dict) -> str:
    """``missing``, ``ok`` (complete and matching), ``stale`` (complete, other version) or ``foreign``."""
    if not final.exists():
        return "missing"
    if final.is_dir() and not any(final.iterdir()):
        return "missing"
    try:
        have = json.loads((final / MARKER).read_text())
    except (OSError, ValueError):
        return "foreign"
    return "ok" if have == want else "stale"


def _install(tmp: Path, final: Path, want: dict) -> None:
    """Rename the finished ``tmp`` into ``final``; if another process got there first, keep theirs."""
    state = _state(final, want)
    if state == "ok":
        return
    old = None
    if state == "stale":  # replace an older generator's output
        old = final.with_name(f".{final.name}.old-{os.getpid()}-{tmp.name[-8:]}")
        try:
            os.replace(final, old)
        except OSError:
            old = None
    elif state == "missing" and final.is_dir():
        try:
            final.rmdir()  # an empty folder: renaming over it needs it gone on some systems
        except OSError:
            pass
    try:
        os.replace(tmp, final)
    except OSError:
        if _state(final, want) != "ok":  # not a lost race: a real failure
            raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def generate_demo(
    out_dir: str | os.PathLike,
    seed: int = 0,
    n_train: int = DEMO_TRAIN,
    n_val: int = DEMO_VAL,
    yaml_path: str | os.PathLike | None = None,
) -> Path:
    """Write the demo dataset into ``out_dir`` (not atomic; :func:`ensure_demo` wraps it) and return its YAML.

    ``yaml_path``: the folder the YAML's ``path`` should name (default ``out_dir``), for writing into
    a temporary folder that is renamed afterwards.
    """
    out = Path(out_dir)
    for split, n in zip(SPLITS, (n_train, n_val)):
        if n < 1:
            raise ValueError(f"demo split '{split}' needs at least 1 image, got {n}")
    counts = {}
    for k, (split, n) in enumerate(zip(SPLITS, (n_train, n_val))):
        counts[split] = _write_split(out, split, k, n, seed)
    root = Path(yaml_path) if yaml_path is not None else out.resolve()
    data = {
        "path": str(root),
        "train": "images/train",
        "val": "images/val",
        "train_json": "annotations/instances_train.json",
        "val_json": "annotations/instances_val.json",
        "nc": len(DEMO_NAMES),
        "names": list(DEMO_NAMES),
    }
    header = f"# detloss built-in demo dataset (data/demo.py, seed {seed}); {counts}\n"
    (out / YAML_NAME).write_text(header + yaml.safe_dump(data, sort_keys=False))
    (out / MARKER).write_text(json.dumps(_marker(seed, n_train, n_val)))
    return out / YAML_NAME


def _write_split(out: Path, split: str, split_no: int, n: int, seed: int) -> dict:
    img_dir, lab_dir, ann_dir = out / "images" / split, out / "labels" / split, out / "annotations"
    for d in (img_dir, lab_dir, ann_dir):
        d.mkdir(parents=True, exist_ok=True)
    images: list[dict] = []
    anns: list[dict] = []
    s = DEMO_IMGSZ
    for i in range(n):
        img, boxes = draw_image(s, np.random.default_rng([seed, split_no, i]))
        name = f"{i:06d}.jpg"
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            raise OSError(f"OpenCV could not encode {img_dir / name}")
        (img_dir / name).write_bytes(buf.tobytes())
        rows = [[c, (x + w / 2) / s, (y + h / 2) / s, w / s, h / s] for c, x, y, w, h in boxes]
        write_labels(lab_dir / f"{i:06d}.txt", rows, atomic=False)  # the folder is moved into place when complete
        images.append({"id": i, "file_name": name, "width": s, "height": s})
        for c, x, y, w, h in boxes:
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": i,
                    "category_id": c,
                    "bbox": [x, y, w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
    coco = {
        "info": {"description": f"detloss demo dataset, split {split}, seed {seed}", "version": str(DEMO_VERSION)},
        "images": images,
        "annotations": anns,
        "categories": [{"id": k, "name": nm, "supercategory": "shape"} for k, nm in enumerate(DEMO_NAMES)],
    }
    (ann_dir / f"instances_{split}.json").write_text(json.dumps(coco))
    return {"images": n, "boxes": len(anns)}
