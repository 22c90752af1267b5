"""Read and validate a yolov5-style data YAML.

Format (yolov5 ``data/coco128.yaml``, ultralytics docs "Dataset YAML")::

    path: ../datasets/coco128     # dataset root; relative paths resolve against the YAML's folder
    train: images/train2017       # folder of images, .txt list of image paths, or a list of those
    val: images/train2017
    test:                         # optional
    names: {0: person, 1: bicycle}  # or a list: [person, bicycle]
    nc: 2                         # optional; must equal len(names)
    val_json: annotations/instances_val.json  # detloss extra: COCO ground truth of a split
    multi_label: true             # detloss extra (default false): one box may carry several classes
    name_map: {Alive: tree}       # detloss extra, VOC splits: object name -> class name, applied before names
    val_full: images/val_full     # detloss extra: any key ending in _full is a path (the whole images of a tiled split)

Differences from yolov5: a relative ``path`` is resolved against the YAML file's folder (yolov5
resolves it against its own checkout); when no such folder exists, the first that does of the current
directory and the checkout (yolov5's rule, so a yolov5 YAML with ``path: ../datasets/x`` still finds it) is
taken. A missing ``path`` means the YAML's folder. Paths are made
absolute without resolving symbolic links (yolov5's ``check_dataset`` resolves them), so a split folder
that links to another dataset's images still reads this dataset's labels.
Split entries ending in ``.json`` name COCO annotation files (read by ``CocoDataset``); a folder holding
``Annotations/`` or ``.xml`` files, or an ``ImageSets/Main/<split>.txt``, names Pascal VOC (``VocDataset``).
``multi_label: true`` says rows with the same box and different classes are one object with several classes
(the readers keep such rows either way; the trainer then builds the loss with ``LossConfig(multi_label=True)``).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import yaml

from .report import DatasetError, DatasetNotFoundError, DatasetWarning

REQUIRED_KEYS = ("train", "val", "names")
SPLIT_KEYS = ("train", "val", "test")
CHECKOUT = Path(__file__).resolve().parents[1]  # the checkout's root, where yolov5 anchors a relative path
# Extra keys holding paths that are resolved like the split entries (e.g. val_json, val_images).
PATH_SUFFIXES = ("_json", "_images", "_full")


def load_data_yaml(path: str | os.PathLike) -> dict[str, Any]:
    """Read a data YAML and return it validated, with absolute paths.

    Returns:
        a dict with ``path`` (absolute str), ``train``/``val``/``test`` (absolute str or list of str,
        ``None`` when absent), ``names`` (list[str]), ``nc`` (int), ``multi_label`` (bool), ``imgsz`` (int,
        only when given: the image size the data is made for, the trainer's default ``--imgsz``), ``yaml_file``
        (absolute str), and every other key kept (paths under ``*_json`` / ``*_images`` / ``*_full`` keys made
        absolute).

    Raises:
        DatasetNotFoundError: the file does not exist.
        DatasetError: bad YAML (with line), not a mapping, missing key, empty or malformed names.
    """
    file = Path(path).expanduser()
    if not file.is_file():
        raise DatasetNotFoundError(f"data YAML not found: {file}")
    try:
        text = file.read_text(encoding="utf-8")
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{file}:{mark.line + 1}" if mark is not None else str(file)
        problem = getattr(e, "problem", None) or str(e)
        raise DatasetError(f"{where}: invalid YAML: {problem}") from e
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"{file}: cannot read data YAML: {e}") from e
    return parse_data_dict(raw, base_dir=file.resolve().parent, source=str(file))


def parse_data_dict(raw: Any, base_dir: str | os.PathLike | None = None, source: str = "data dict") -> dict[str, Any]:
    """Validate a data mapping (as read from YAML) and resolve its paths; idempotent.

    ``base_dir`` anchors a relative ``path`` (default: the current directory).
    """
    if not isinstance(raw, dict):
        kind = type(raw).__name__
        raise DatasetError(f"{source}: a data YAML must be a mapping with keys {list(REQUIRED_KEYS)}, got {kind}")
    missing = [k for k in REQUIRED_KEYS if k not in raw or raw[k] is None]
    if missing:
        raise DatasetError(f"{source}: missing key(s) {missing} (required: {list(REQUIRED_KEYS)})")
    data = dict(raw)
    data["names"] = _parse_names(raw["names"], source)
    if raw.get("nc") is not None:
        nc = raw["nc"]
        if isinstance(nc, bool) or not isinstance(nc, int) or nc != len(data["names"]):
            raise DatasetError(f"{source}: key 'nc' is {nc!r} but 'names' has {len(data['names'])} entries")
    data["nc"] = len(data["names"])
    multi_label = raw.get("multi_label", False)
    if not isinstance(multi_label, bool):
        raise DatasetError(f"{source}: key 'multi_label' must be true or false, got {multi_label!r}")
    data["multi_label"] = multi_label
    imgsz = raw.get("imgsz")  # the training image size the data is made for (tiles at native resolution)
    if imgsz is not None and (isinstance(imgsz, bool) or not isinstance(imgsz, int) or imgsz <= 0):
        raise DatasetError(f"{source}: key 'imgsz' must be a positive integer (pixels), got {imgsz!r}")

    base = Path(base_dir) if base_dir is not None else Path.cwd()
    root = raw.get("path")
    if root is None or root == "":
        root_path = base
    elif isinstance(root, str | os.PathLike):
        root_path = _find_root(Path(root).expanduser(), base, source)
    else:
        raise DatasetError(f"{source}: key 'path' must be a string, got {type(root).__name__}")
    data["path"] = os.path.abspath(root_path)  # links kept: labels sit beside the images as listed

    for key in list(data):
        if key in SPLIT_KEYS or key.endswith(PATH_SUFFIXES):
            data[key] = _resolve_entry(data[key], Path(data["path"]), source, key)
    for key in SPLIT_KEYS:
        data.setdefault(key, None)
    if source != "data dict" and "yaml_file" not in data:
        data["yaml_file"] = str(Path(source).resolve())
    return data


def _find_root(root: Path, base: Path, source: str) -> Path:
    """A relative dataset root: ``base / root`` when it exists, else the first existing of ``cwd / root`` and
    ``<checkout> / root`` (yolov5's anchor), said in a :class:`DatasetWarning` since it is a guess, else
    ``base / root`` (the split check then names it)."""
    if root.is_absolute() or (base / root).is_dir():
        return base / root
    for anchor, what in ((Path.cwd(), "the current directory"), (CHECKOUT, "the checkout")):
        if (anchor / root).is_dir():
            warnings.warn(
                f"{source}: 'path: {root}' is not a folder beside the YAML ({base / root}); using "
                f"{os.path.abspath(anchor / root)} (relative to {what})",
                DatasetWarning,
                stacklevel=4,
            )
            return anchor / root
    return base / root


def _parse_names(names: Any, source: str) -> list[str]:
    if isinstance(names, dict):
        keys = list(names)
        if not keys:
            raise DatasetError(f"{source}: key 'names' is empty")
        if not all(isinstance(k, int) and not isinstance(k, bool) for k in keys):
            raise DatasetError(f"{source}: key 'names' as a mapping needs integer class ids, got {keys[:5]}")
        if sorted(keys) != list(range(len(keys))):
            want = f"0..{len(keys) - 1}"
            raise DatasetError(f"{source}: class ids in 'names' must be {want} without gaps, got {sorted(keys)}")
        out = [names[i] for i in range(len(keys))]
    elif isinstance(names, list | tuple):
        if not names:
            raise DatasetError(f"{source}: key 'names' is empty")
        out = list(names)
    else:
        raise DatasetError(f"{source}: key 'names' must be a list or a mapping, got {type(names).__name__}")
    for i, n in enumerate(out):
        if not isinstance(n, str | int | float) or isinstance(n, bool) or str(n).strip() == "":
            raise DatasetError(f"{source}: names[{i}] must be a non-empty string, got {n!r}")
    return [str(n) for n in out]


def _resolve_entry(value: Any, root: Path, source: str, key: str) -> Any:
    if value is None or value == "":
        return None
    if isinstance(value, list | tuple):
        return [_resolve_one(v, root, source, f"{key}[{i}]") for i, v in enumerate(value)]
    return _resolve_one(value, root, source, key)


def _resolve_one(value: Any, root: Path, source: str, key: str) -> str:
    if not isinstance(value, str | os.PathLike):
        raise DatasetError(f"{source}: key '{key}' must be a path string, got {type(value).__name__}")
    p = Path(value).expanduser()
    return os.path.abspath(p if p.is_absolute() else root / p)
