"""Builders shared by several test files: loss inputs (anchors, yolov5 hyp, targets, predictions), a
forward+backward step and its comparison, and coloured-box scenes for the augmentation tests."""

from __future__ import annotations

import cv2
import numpy as np
import torch

# --- loss inputs ---

ANCHORS3 = [[10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119], [116, 90, 156, 198, 373, 326]]
ANCHORS2 = [[10, 14, 23, 27, 37, 58], [81, 82, 135, 169, 344, 319]]
# yolov5 hyp.scratch-low.yaml, whole file (non-loss keys must be accepted and ignored)
HYP = dict(
    lr0=0.01, lrf=0.01, momentum=0.937, weight_decay=0.0005, warmup_epochs=3.0, warmup_momentum=0.8,
    warmup_bias_lr=0.1, box=0.05, cls=0.5, cls_pw=1.0, obj=1.0, obj_pw=1.0, iou_t=0.20, anchor_t=4.0,
    fl_gamma=0.0, hsv_h=0.015, hsv_s=0.7, hsv_v=0.4, degrees=0.0, translate=0.1, scale=0.5, shear=0.0,
    perspective=0.0, flipud=0.0, fliplr=0.5, mosaic=1.0, mixup=0.0, copy_paste=0.0,
)  # fmt: skip


def make_targets(bs: int, n: int, nc: int, gen: torch.Generator, images=None) -> torch.Tensor:
    if images is None:
        img = torch.randint(0, bs, (n,), generator=gen)
    else:
        img = torch.tensor(images)[torch.randint(0, len(images), (n,), generator=gen)]
    cls = torch.randint(0, nc, (n,), generator=gen)
    wh = torch.rand(n, 2, generator=gen) * 0.5 + 0.01
    xy = wh / 2 + torch.rand(n, 2, generator=gen) * (1 - wh)
    return torch.cat((img[:, None].float(), cls[:, None].float(), xy, wh), 1)


def edge_targets(bs: int, nc: int) -> torch.Tensor:
    """Boxes on image borders, exactly on cell boundaries and half-cells, tiny and image-sized."""
    rows = [
        [0, 0, 0.05, 0.05, 0.1, 0.1],  # touches the top-left corner
        [0, 1 % nc, 0.95, 0.95, 0.1, 0.1],  # touches the bottom-right corner
        [0, 0, 0.5, 0.5, 1.0, 1.0],  # the whole image
        [1 % bs, 0, 0.25, 0.75, 0.001, 0.001],  # tiny
        [1 % bs, 2 % nc, 0.5, 0.25, 0.3, 0.2],  # centre exactly on a cell corner for even grids
        [1 % bs, 0, 0.0625 + 1 / 320, 0.5 + 1 / 160, 0.05, 0.08],  # frac exactly 0.5 on the 80-grid
        [0, 3 % nc, 0.5, 0.5, 0.3, 0.3],  # duplicate cell with the next row: last write wins
        [0, 4 % nc, 0.5, 0.5, 0.31, 0.29],
        [0, 0, 0.0125, 0.5, 0.025, 0.2],  # gx < 1 on the 80-grid: no left neighbour
    ]
    return torch.tensor(rows, dtype=torch.float32)


def preds_for(bs, shapes, nc, gen, na=3):
    return [torch.randn(bs, na, ny, nx, 5 + nc, generator=gen) for ny, nx in shapes]


SHAPES3 = [(80, 80), (40, 40), (20, 20)]
SHAPES3_RECT = [(48, 80), (24, 40), (12, 20)]
STRIDES3 = (8, 16, 32)


# --- one loss step and its comparison ---


def step(loss, preds, targets):
    """(total, items, grads) of one forward+backward on fresh leaf copies of ``preds``."""
    ps = [p.detach().clone().requires_grad_(True) for p in preds]
    total, items = loss(ps, targets.clone())
    total.backward()
    return total, items, [p.grad for p in ps]


def assert_same(a, b):
    """(total, items, grads) equal to 1e-5 relative (gradients: relative to the level's largest)."""
    torch.testing.assert_close(a[0], b[0], rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(a[1], b[1], rtol=1e-5, atol=1e-7)
    for ga, gb in zip(a[2], b[2]):
        scale = gb.abs().max().item()
        torch.testing.assert_close(ga, gb, rtol=1e-5, atol=1e-5 * scale + 1e-12)


# --- coloured-box scenes (augmentation tests) ---

COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (255, 0, 255), (0, 255, 255), (255, 128, 0)]
COLOURS += [(128, 0, 255), (0, 128, 255), (255, 255, 255), (128, 255, 0), (255, 0, 128)]


def iou(a, b):
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def colour_mask(img, col, tol=40):
    return (np.abs(img.astype(int) - np.array(col)).max(-1) < tol).astype(np.uint8)


def pixel_box(mask):
    x, y, w, h = cv2.boundingRect(mask)
    return (x, y, x + w, y + h) if w and h else None


def scene(rng, h=160, w=200, k=4, first=0):
    """A black image with k filled rectangles of colours first..first+k-1; labels (cls, x1, y1, x2, y2)."""
    img = np.zeros((h, w, 3), np.uint8)
    labels = []
    for c in range(first, first + k):
        for _ in range(100):  # non-overlapping, so each colour's pixels are its whole box
            bw, bh = rng.integers(20, 60, 2)
            x, y = rng.integers(0, w - bw), rng.integers(0, h - bh)
            if not (colour_mask(img, (0, 0, 0), 1)[y : y + bh, x : x + bw] == 0).any():
                break
        img[y : y + bh, x : x + bw] = COLOURS[c]
        labels.append([c, x, y, x + bw, y + bh])
    return img, np.array(labels, np.float32)


def write_scenes(root, n, draw, seed=0):
    """A yolov5-layout folder ``root/{images,labels}`` of ``n`` PNG scenes ``draw(rng, i) -> (img, labels)`` with
    pixel labels ``(cls, x1, y1, x2, y2)``; returns ``root / "images"``."""
    from data.sources import write_labels

    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    for i in range(n):
        img, lab = draw(rng, i)
        cv2.imwrite(str(root / "images" / f"{i}.png"), img)
        h, w = img.shape[:2]
        rows = [[c, (x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w, (y2 - y1) / h] for c, x1, y1, x2, y2 in lab]
        write_labels(root / "labels" / f"{i}.txt", rows)
    return root / "images"


def check_boxes(img, labels, originals=None, margin=4):
    """Each label covers its colour (found inside the label box + margin); no clearly visible colour lost."""
    for c, *box in labels:
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        region = np.zeros(img.shape[:2], np.uint8)
        region[max(y1 - margin, 0) : y2 + margin, max(x1 - margin, 0) : x2 + margin] = 1
        pb = pixel_box(colour_mask(img, COLOURS[int(c)]) * region)
        assert pb is not None, f"class {c}: no pixels of its colour near its box {box}"
        # IoU > 0.8, or for small boxes every edge within 2 px (blended border pixels miss the colour test)
        close = max(abs(a - b) for a, b in zip(pb, box)) <= 2.0
        assert iou(pb, box) > 0.8 or close, f"class {c}: box {box} vs pixels {pb}, IoU {iou(pb, box):.3f}"
    if originals is not None:  # a box may only be dropped once most of its object is gone
        kept = {int(c) for c in labels[:, 0]}
        for c, x1, y1, x2, y2 in originals:
            if int(c) not in kept:
                visible = colour_mask(img, COLOURS[int(c)]).sum()
                assert visible < 0.35 * (x2 - x1) * (y2 - y1), f"class {c} dropped with {visible} px visible"


# --- trainer tests (tiny runs on the conftest ``tiny_data`` fixture) ------------------------------------------
def train_args(data, project, *extra: str) -> list[str]:
    """tools/train.py flags for a tiny CPU run: 64 px, batch 8, 1 epoch, no workers, no pictures (test_runplots
    checks those), fp32 (``--no-amp``: the same on every CPU; test_precision runs bf16)."""
    return ["--data", str(data), "--project", str(project), "--imgsz", "64", "--batch-size", "8", "--epochs", "1",
            "--workers", "0", "--device", "cpu", "--noplots", "--no-amp", *extra]  # fmt: skip


def make_trainer(data, project, *extra: str):
    """A :class:`tools.training.trainer.Trainer` built from :func:`train_args` in ``project/exp``."""
    from tools import train
    from tools.training import dist
    from tools.training.hyp import load_hyp
    from tools.training.trainer import Trainer

    opt = train.parse_opt(train_args(data, project, *extra))
    save_dir = project / "exp"
    save_dir.mkdir(parents=True, exist_ok=True)
    return Trainer(opt, load_hyp(None), save_dir, dist.DistInfo(), torch.device("cpu"))
