"""A second small dataset, unlike the demo, for measuring the trainer on data it was not tuned on.

``python tools/make_digits.py --out datasets/digits`` writes a yolov5-layout dataset: ten classes (the
digits 0-9, drawn with OpenCV's Hershey fonts, rotated, in random colours and stroke widths) on noisy,
non-square 320x240 backgrounds with distractor lines, 500 train and 150 val images, and ``digits.yaml``.
Everything comes from ``numpy.random.default_rng([seed, split, index])``, so a seed gives the same files.
Boxes are the exact pixel extent of each drawn digit; digits may touch but keep 70 % of their pixels.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data.sources import write_labels  # noqa: E402

NAMES = [str(d) for d in range(10)]
FONTS = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX, cv2.FONT_HERSHEY_TRIPLEX)
W, H = 320, 240


def _background(rng: np.random.Generator) -> np.ndarray:
    small = rng.integers(0, 256, (6, 8, 3)).astype(np.uint8)
    img = cv2.resize(small, (W, H), interpolation=cv2.INTER_CUBIC)
    noise = rng.normal(0, 12, (H, W, 3))
    img = np.clip(img.astype(np.float64) + noise, 0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(0, 5))):
        p1 = tuple(int(v) for v in rng.integers(0, (W, H)))
        p2 = tuple(int(v) for v in rng.integers(0, (W, H)))
        cv2.line(img, p1, p2, tuple(int(c) for c in rng.integers(0, 256, 3)), int(rng.integers(1, 3)), cv2.LINE_AA)
    return img


def _glyph(digit: int, rng: np.random.Generator) -> np.ndarray:
    """A binary mask of one rotated digit, cropped to its extent."""
    font = FONTS[int(rng.integers(len(FONTS)))]
    scale = float(rng.uniform(0.6, 3.2))
    thick = max(1, int(round(scale * rng.uniform(1.2, 3.0))))
    (tw, th), base = cv2.getTextSize(str(digit), font, scale, thick)
    pad = thick + 4
    canvas = np.zeros((th + base + 2 * pad, tw + 2 * pad), np.uint8)
    cv2.putText(canvas, str(digit), (pad, pad + th), font, scale, 255, thick, cv2.LINE_AA)
    side = int(np.hypot(*canvas.shape)) + 2
    big = np.zeros((side, side), np.uint8)
    y0, x0 = (side - canvas.shape[0]) // 2, (side - canvas.shape[1]) // 2
    big[y0 : y0 + canvas.shape[0], x0 : x0 + canvas.shape[1]] = canvas
    rot = cv2.getRotationMatrix2D((side / 2, side / 2), float(rng.uniform(-25, 25)), 1.0)
    turned = cv2.warpAffine(big, rot, (side, side))
    ys, xs = np.nonzero(turned > 127)
    return turned[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1] > 127


def draw(rng: np.random.Generator) -> tuple[np.ndarray, list[tuple[int, int, int, int, int]]]:
    """One image and its boxes ``(cls, x, y, w, h)`` in pixels."""
    img = _background(rng)
    owner = np.full((H, W), -1, np.int32)
    placed: list[tuple[int, int, int, int, int, int]] = []  # cls, x, y, w, h, pixels
    for k in range(int(rng.integers(0, 9))):
        digit = int(rng.integers(10))
        mask = _glyph(digit, rng)
        gh, gw = mask.shape
        if gh >= H or gw >= W:
            continue
        x, y = int(rng.integers(0, W - gw)), int(rng.integers(0, H - gh))
        trial = owner.copy()
        trial[y : y + gh, x : x + gw][mask] = k
        if any((trial == j).sum() < 0.7 * p[5] for j, p in enumerate(placed) if p[5] > 0):
            continue
        owner = trial
        colour = np.array([int(c) for c in rng.integers(0, 256, 3)], np.uint8)
        img[y : y + gh, x : x + gw][mask] = colour
        placed.append((digit, x, y, gw, gh, int(mask.sum())))
    return img, [(c, x, y, w, h) for c, x, y, w, h, _ in placed]


def generate(out: Path, seed: int = 0, n_train: int = 500, n_val: int = 150) -> Path:
    """Write the dataset under ``out``; returns the data YAML path."""
    import yaml

    for s, (split, n) in enumerate((("train", n_train), ("val", n_val))):
        (out / "images" / split).mkdir(parents=True, exist_ok=True)
        (out / "labels" / split).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            img, boxes = draw(np.random.default_rng([seed, s, i]))
            cv2.imwrite(str(out / "images" / split / f"{i:06d}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 95])
            rows = [[c, (x + w / 2) / W, (y + h / 2) / H, w / W, h / H] for c, x, y, w, h in boxes]
            write_labels(out / "labels" / split / f"{i:06d}.txt", rows, atomic=False)
    path = out / "digits.yaml"
    path.write_text(yaml.safe_dump({"path": str(out.resolve()), "train": "images/train", "val": "images/val",
                                    "names": NAMES}))  # fmt: skip
    return path


def main(argv: list[str] | None = None) -> Path:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="datasets/digits")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train", type=int, default=500)
    p.add_argument("--val", type=int, default=150)
    a = p.parse_args(argv)
    path = generate(Path(a.out), a.seed, a.train, a.val)
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    main()
