"""The demo dataset with crowd regions, and the count of false positives inside them.

``make``: copies the built-in demo (``data.demo.ensure_demo``) into ``--out`` twice, as two yolov5-layout
datasets that share their images (hard links) and differ only in what the training labels say about crowds:

* in a fraction ``--frac`` of the images (train and val) the largest cluster of nearby shapes (centres closer
  than ``--radius``, at least 2 shapes) is covered by a "group" box; the shapes mostly inside it lose their own
  label rows, as in a crowd annotation where nobody labels the individuals;
* ``ignore/``: the group box is a label row of class -1 (an ignore region); ``noignore/``: it is left out, so
  the unlabelled shapes are plain background.

Both data YAMLs name one val ground truth, ``annotations/instances_val.json``, whose group boxes are COCO crowd
annotations (``iscrowd: 1``, one per category): COCO matching ignores detections inside them.

``count``: infers a checkpoint on the val split (``conf >= --conf``) and counts the false positives (no
same-class ground truth at IoU >= 0.5, greedy by score) and those of them inside a crowd region (intersection
over the detection's area >= 0.5).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import yaml  # noqa: E402

from data.convert import yolo_to_coco  # noqa: E402
from data.demo import ensure_demo  # noqa: E402
from data.sources import write_labels  # noqa: E402
from fileio import link_or_copy  # noqa: E402
from tools.evaluation.boxes import box_overlap, xywh_to_xyxy  # noqa: E402


def _xyxy(rows: np.ndarray) -> np.ndarray:
    return np.concatenate([rows[:, 1:3] - rows[:, 3:5] / 2, rows[:, 1:3] + rows[:, 3:5] / 2], 1)


def group_rows(rows: np.ndarray, radius: float) -> np.ndarray | None:
    """The crowd version of one image's rows ``[n, 5]``: the largest cluster's boxes replaced by a class -1 box."""
    if len(rows) < 2:
        return None
    d = np.linalg.norm(rows[:, None, 1:3] - rows[None, :, 1:3], axis=2)
    near = d < radius
    seed = int(near.sum(1).argmax())
    members = np.flatnonzero(near[seed])
    if len(members) < 2:
        return None
    b = _xyxy(rows[members])
    x1, y1 = np.clip(b[:, :2].min(0) - 0.01, 0, 1)
    x2, y2 = np.clip(b[:, 2:].max(0) + 0.01, 0, 1)
    inside = box_overlap(_xyxy(rows), [[x1, y1, x2, y2]], over="first")[:, 0] >= 0.5  # mostly inside the group
    group = np.array([[-1, (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1]])
    return np.concatenate([rows[~inside], group])


def make(out: Path, frac: float = 0.5, radius: float = 0.3, seed: int = 0) -> dict[str, Path]:
    """Write ``out/{ignore,noignore}/`` and ``out/annotations/instances_val.json``; returns the two data YAMLs."""
    demo = ensure_demo()
    src = demo.parent
    meta = yaml.safe_load(demo.read_text())
    rng = np.random.default_rng(seed)
    out = Path(out)
    counts = {"images": 0, "groups": 0, "hidden": 0}
    for split in ("train", "val"):
        for img in sorted((src / "images" / split).iterdir()):
            text = (src / "labels" / split / f"{img.stem}.txt").read_text().split()
            rows = np.array(text, dtype=np.float64).reshape(-1, 5)
            crowd = group_rows(rows, radius) if rng.random() < frac else None
            counts["images"] += 1
            if crowd is not None:
                counts["groups"] += 1
                counts["hidden"] += len(rows) - (len(crowd) - 1)
                rows = crowd
            for variant in ("ignore", "noignore"):
                link_or_copy(img, out / variant / "images" / split / img.name)
                kept = rows if variant == "ignore" else rows[rows[:, 0] >= 0]
                write_labels(out / variant / "labels" / split / f"{img.stem}.txt", kept, atomic=False)
    gt = out / "annotations" / "instances_val.json"
    base = {"names": meta["names"], "train": "images/train", "val": "images/val"}
    yolo_to_coco({**base, "path": str(out / "ignore")}, "val", gt)  # class -1 rows -> crowd annotations
    paths = {}
    for variant in ("ignore", "noignore"):
        paths[variant] = out / f"{variant}.yaml"
        paths[variant].write_text(yaml.safe_dump({**base, "path": str(out / variant), "val_json": str(gt)}))
    print(f"{out}: {counts['groups']} crowd groups in {counts['images']} images, {counts['hidden']} shapes inside")
    return paths


def count_false_positives(results: list[dict], gt: dict, conf: float = 0.25) -> dict[str, int]:
    """True and false positives of COCO ``results`` at ``score >= conf``, and the false positives in crowd regions."""
    out = {"detections": 0, "tp": 0, "fp": 0, "fp_in_crowd": 0}
    by_img: dict[int, list[dict]] = {}
    for a in gt["annotations"]:
        by_img.setdefault(a["image_id"], []).append(a)
    for image_id in {r["image_id"] for r in results}:
        dets = [r for r in results if r["image_id"] == image_id and r["score"] >= conf]
        dets.sort(key=lambda r: -r["score"])
        anns = by_img.get(image_id, [])
        crowd = xywh_to_xyxy([a["bbox"] for a in anns if a["iscrowd"]])
        taken: set[int] = set()
        for d in dets:
            out["detections"] += 1
            box = xywh_to_xyxy([d["bbox"]])
            cands = [
                a for a in anns if not a["iscrowd"] and a["category_id"] == d["category_id"] and a["id"] not in taken
            ]
            ious = box_overlap(box, xywh_to_xyxy([a["bbox"] for a in cands]))[0] if cands else np.zeros(0)
            if len(ious) and ious.max() >= 0.5:
                taken.add(cands[int(ious.argmax())]["id"])
                out["tp"] += 1
                continue
            out["fp"] += 1
            if len(crowd) and box_overlap(box, crowd, over="first").max() >= 0.5:
                out["fp_in_crowd"] += 1
    return out


def count(weights: Path, data: Path, conf: float = 0.25, imgsz: int = 128) -> dict[str, float]:
    """mAP (pycocotools, against the crowd-aware val JSON) and :func:`count_false_positives` of a checkpoint."""
    import torch

    from data.datasets import build_dataset, collate_fn
    from models.checkpoint import load_model
    from tools.evaluation.config import EvalConfig
    from tools.evaluation.evaluate import evaluate_results
    from tools.inference.loop import infer

    d = yaml.safe_load(Path(data).read_text())
    ds = build_dataset(data, "val", imgsz)
    loader = torch.utils.data.DataLoader(ds, batch_size=16, collate_fn=collate_fn)
    res = infer(load_model(weights), loader, "cpu", EvalConfig(conf_thres=0.001))
    gt = json.loads(Path(d["val_json"]).read_text())
    stats = evaluate_results(gt, res.results, EvalConfig(backend="pycocotools"))
    return {"mAP50": stats.map50, "mAP50-95": stats.map, **count_false_positives(res.results, gt, conf)}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make", help="write the crowd demo datasets")
    m.add_argument("--out", type=Path, required=True)
    m.add_argument("--frac", type=float, default=0.5, help="fraction of images that get a crowd group")
    m.add_argument("--radius", type=float, default=0.3, help="shapes closer than this (normalised) form a group")
    m.add_argument("--seed", type=int, default=0)
    c = sub.add_parser("count", help="mAP and false positives inside crowd regions of a checkpoint")
    c.add_argument("--weights", type=Path, required=True)
    c.add_argument("--data", type=Path, required=True)
    c.add_argument("--conf", type=float, default=0.25)
    c.add_argument("--imgsz", type=int, default=128)
    a = p.parse_args(argv)
    if a.cmd == "make":
        if not 0.0 <= a.frac <= 1.0 or a.radius <= 0:
            raise ValueError(f"--frac must be in [0, 1] and --radius > 0, got {a.frac}, {a.radius}")
        return make(a.out, a.frac, a.radius, a.seed)
    out = count(a.weights, a.data, a.conf, a.imgsz)
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
