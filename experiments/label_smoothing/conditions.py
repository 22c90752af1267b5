"""The data of one study condition: a training part, a held-out ``calib`` part, the clean val split.

The train split of the data YAML is split with :func:`data.split.holdout_split` (seed ``--split-seed``) into a
training part and a held-out part (``--holdout``) that no setting trains on; condition ``clean`` keeps the labels,
``noisy`` flips a fraction ``--noise`` of the box class labels of both parts (:mod:`.label_noise`). Both parts are
written in the yolov5 layout under ``<out>/data/<condition>`` with a ``data.yaml`` and a ``noise.json`` report.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import yaml

from data.split import holdout_split
from fileio import atomic_write

from .label_noise import flip_labels, lookalike_map, parse_flip_map, write_yolo_copy

__all__ = ["prepare_data"]


def prepare_data(args: argparse.Namespace, condition: str, out: Path) -> Path:
    """Write the condition's data folder (train part, held-out ``calib`` part, clean val); returns its YAML.

    The val split keeps its COCO JSON; a split without one gets one written beside the data (``val_json``).
    A folder already written (its ``data.yaml`` exists) is reused as it is.
    """
    from data.convert import yolo_to_coco
    from data.datasets import build_dataset
    from tools.inference.datasets import resolve_data

    folder = out / "data" / condition
    done = folder / "data.yaml"
    if done.is_file():
        return done
    data, _ = resolve_data(args.data)
    base = build_dataset(data, "train", 32, augment=False)  # only the file list and labels are used
    kept, held = holdout_split(len(base), args.holdout, args.split_seed)
    fmap = parse_flip_map(args.flip_map, base.nc) if args.flip_map else lookalike_map(base.names)
    fraction = args.noise if condition == "noisy" else 0.0
    report: dict[str, Any] = {"condition": condition, "fraction": fraction, "flip_map": fmap, "seed": args.noise_seed}
    entries = {}
    for part, idx, seed in (("train", kept, args.noise_seed), ("calib", held, args.noise_seed + 1)):
        labels, rep = flip_labels([base.labels[i] for i in idx], fraction, base.nc, seed, fmap)
        entries[part] = str(write_yolo_copy([base.im_files[i] for i in idx], labels, folder, part).resolve())
        report[part] = {"images": len(idx), "boxes_flipped": rep.flipped, "boxes_eligible": rep.eligible}
    doc = {"path": str(folder.resolve()), "train": entries["train"], "calib": entries["calib"], "val": data["val"],
           "names": list(data["names"])}  # fmt: skip
    for key in ("val_json", "val_images", "multi_label"):
        if data.get(key) is not None:
            doc[key] = str(data[key]) if key != "multi_label" else data[key]
    if "val_json" not in doc:
        doc["val_json"] = str(yolo_to_coco(data, "val", folder / "val_coco.json").resolve())
    atomic_write(folder / "noise.json", json.dumps(report, indent=2))
    atomic_write(done, yaml.safe_dump(doc, sort_keys=False))
    return done
