"""Data in and COCO numbers out for the examples: small, plain and independent of the checkout's trainer.

Images are stretched to ``imgsz x imgsz`` (no letterbox), so normalised yolo labels stay valid as they are and a
box maps back to the original image by two scale factors. The COCO ground truth is built from the yolo labels of
the same images, and ``tools/eval.py`` scores the predictions against it (its results-file mode).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tools/ comes from the checkout
from tools import eval as eval_py  # noqa: E402


def load_split(data: dict, split: str, imgsz: int, limit: int) -> tuple[torch.Tensor, list[torch.Tensor], list]:
    """uint8 ``[n, 3, imgsz, imgsz]`` RGB images, yolo labels ``[k, 5]`` per image, original ``(w, h)``."""
    root = Path(data.get("path", "."))
    src = root / data[split]
    files = [root / s for s in src.read_text().split()] if src.suffix == ".txt" else sorted(src.glob("*.[jp][pn]g"))
    imgs, labels, sizes = [], [], []
    for f in files[:limit]:
        im = cv2.imread(str(f))
        if im is None:
            raise ValueError(f"{f}: not a readable image")
        imgs.append(cv2.resize(im, (imgsz, imgsz))[:, :, ::-1].transpose(2, 0, 1))  # BGR HWC -> RGB CHW
        lab = Path("/labels/".join(str(f.with_suffix(".txt")).rsplit("/images/", 1)))  # yolov5's label path rule
        rows = np.array(lab.read_text().split() if lab.exists() else [], np.float32).reshape(-1, 5)
        labels.append(torch.from_numpy(rows[rows[:, 0] >= 0]))  # ignore regions (class -1) left out
        sizes.append(im.shape[1::-1])
    if not imgs:
        raise ValueError(f"no images in {src}")
    return torch.from_numpy(np.ascontiguousarray(np.stack(imgs))), labels, sizes


def batches(imgs: torch.Tensor, labels: list[torch.Tensor], batch_size: int) -> Iterator[tuple[torch.Tensor, ...]]:
    """Shuffled batches with random horizontal flips: images in [0, 1] and targets ``[n, 6]`` (image, class, box)."""
    for idx in torch.randperm(len(imgs)).split(batch_size):
        flip = torch.rand(len(idx)) < 0.5
        x = torch.where(flip.view(-1, 1, 1, 1), imgs[idx].flip(3), imgs[idx]).float() / 255
        rows = []
        for i, j in enumerate(idx.tolist()):
            t = torch.cat((torch.full((len(labels[j]), 1), float(i)), labels[j]), 1)
            if flip[i]:
                t[:, 2] = 1 - t[:, 2]
            rows.append(t)
        yield x, torch.cat(rows)


def coco_map(dets: list[dict], labels: list[torch.Tensor], sizes: list, names: list, out: Path) -> dict:
    """Write ``gt.json`` (from the labels; image ids 1..n) and ``predictions.json``, run ``tools/eval.py`` on them
    and return its JSON (``stats``: the 12 COCO numbers in cocoapi's order, ``calibration``: D-ECE, ...)."""
    images, anns = [], []
    for k, ((w0, h0), lab) in enumerate(zip(sizes, labels)):
        images.append({"id": k + 1, "width": int(w0), "height": int(h0), "file_name": f"{k}.jpg"})
        for c, cx, cy, w, h in lab.tolist():
            box = [(cx - w / 2) * w0, (cy - h / 2) * h0, w * w0, h * h0]
            anns.append(dict(id=len(anns) + 1, image_id=k + 1, category_id=int(c), bbox=box, area=box[2] * box[3],
                             iscrowd=0))  # fmt: skip
    cats = [{"id": i, "name": str(n)} for i, n in enumerate(names)]
    out.mkdir(parents=True, exist_ok=True)
    (out / "gt.json").write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    (out / "predictions.json").write_text(json.dumps(dets))
    args = ["--gt", out / "gt.json", "--dt", out / "predictions.json", "--json-out", out / "stats.json"]
    eval_py.main([str(a) for a in args])
    return json.loads((out / "stats.json").read_text())
