"""Draw one image of the demo dataset: coloured shapes on a cluttered background.

Six classes in three look-alike pairs: circle / ellipse (axis ratio 1.5-2.3), square / rectangle
(side ratio 1.6-2.4), triangle / trapezoid (a triangle with its apex cut at 30-55% of the base).
Object colours are random (colour says nothing about the class). Objects may overlap: a new object
is placed only if every earlier one keeps at least :data:`MIN_VISIBLE` of its pixels. Object size
``d`` (about the square root of the box area) is log-uniform in ``[MIN_SIZE, MAX_SIZE]``, so boxes
fall in all three COCO size ranges (small < 32^2 px, medium < 96^2, large), with at most
:data:`MAX_LARGE` large objects per image. Boxes are the exact pixel extent of each whole shape
(occluded parts included), ``[x, y, w, h]`` integers. Everything is drawn from the generator passed
in; OpenCV drawing is deterministic, so a seed gives the same pixels. About :data:`BACKGROUND_FRAC`
of the images have no objects (backgrounds, as real datasets have).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

DEMO_NAMES = ["circle", "ellipse", "square", "rectangle", "triangle", "trapezoid"]
MIN_SIZE, MAX_SIZE = 9.0, 170.0
MAX_OBJECTS = 8
MAX_LARGE = 2
LARGE = 96.0
MIN_VISIBLE = 0.6
BACKGROUND_FRAC = 0.04  # images with no objects, as real datasets have
SHIFT = 4  # fixed-point bits for sub-pixel polygon vertices in cv2.fillPoly
TRIES = 25


def _rotate(pts: np.ndarray, angle_deg: float) -> np.ndarray:
    a = math.radians(angle_deg)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    return pts @ rot.T


def shape_polygon(cls: int, d: float, rng: np.random.Generator) -> np.ndarray:
    """Vertices ``float [k, 2]`` of a class-``cls`` shape of size ``d`` centred on the origin."""
    name = DEMO_NAMES[cls]
    if name in ("circle", "ellipse"):
        q = 1.0 if name == "circle" else rng.uniform(1.5, 2.3)
        a, b = d * math.sqrt(q) / 2, d / math.sqrt(q) / 2
        t = np.linspace(0, 2 * math.pi, 72, endpoint=False)
        return _rotate(np.stack([a * np.cos(t), b * np.sin(t)], 1), rng.uniform(0, 180))
    if name in ("square", "rectangle"):
        q = 1.0 if name == "square" else rng.uniform(1.6, 2.4)
        a, b = d * math.sqrt(q) / 2, d / math.sqrt(q) / 2
        pts = np.array([[-a, -b], [a, -b], [a, b], [-a, b]])
        return _rotate(pts, rng.choice([0.0, 90.0]) + rng.uniform(-20, 20))
    half = d * 0.62
    if name == "triangle":
        pts = np.array([[-half, half * 0.8], [half, half * 0.8], [0.0, -half * 0.95]])
    else:
        top = half * rng.uniform(0.3, 0.55)
        pts = np.array([[-half, half * 0.8], [half, half * 0.8], [top, -half * 0.6], [-top, -half * 0.6]])
    return _rotate(pts, rng.uniform(-35, 35))


def _colour(rng: np.random.Generator) -> np.ndarray:
    hsv = np.array([[[rng.integers(0, 180), rng.integers(90, 256), rng.integers(80, 256)]]], np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0].astype(np.float64)


def draw_background(size: int, rng: np.random.Generator) -> np.ndarray:
    """Gradient between two colours + low-frequency texture + distractor lines and arcs; ``float32 [s, s, 3]``."""
    # gradient + texture on a coarse grid, upsampled once (bicubic keeps a linear ramp linear)
    c1, c2 = rng.uniform(20, 235, 3).astype(np.float32), rng.uniform(20, 235, 3).astype(np.float32)
    a = rng.uniform(0, 2 * math.pi)
    cells = int(rng.integers(4, 17))
    ramp = np.linspace(-0.5, 0.5, cells, dtype=np.float32)
    t = np.clip(0.5 + ramp[None, :] * math.cos(a) + ramp[:, None] * math.sin(a), 0, 1)[..., None]
    tex = rng.standard_normal((cells, cells, 3), dtype=np.float32) * np.float32(rng.uniform(8, 35))
    grid = c1 + (c2 - c1) * t + tex
    img = cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC)  # float32; saturated to uint8 at the end
    for _ in range(int(rng.integers(0, 7))):
        p1, p2 = rng.integers(0, size, 2), rng.integers(0, size, 2)
        col = tuple(int(v) for v in rng.integers(0, 256, 3))
        cv2.line(img, (int(p1[0]), int(p1[1])), (int(p2[0]), int(p2[1])), col, int(rng.integers(1, 3)), cv2.LINE_AA)
    for _ in range(int(rng.integers(0, 3))):  # open arcs look a little like circles and ellipses
        c = tuple(int(v) for v in rng.integers(0, size, 2))
        axes = tuple(int(v) for v in rng.integers(6, size // 3, 2))
        start = float(rng.uniform(0, 360))
        col = tuple(int(v) for v in rng.integers(0, 256, 3))
        cv2.ellipse(img, c, axes, float(rng.uniform(0, 180)), start, start + rng.uniform(60, 200), col, 1, cv2.LINE_AA)
    return img


def draw_image(size: int, rng: np.random.Generator) -> tuple[np.ndarray, list[tuple[int, int, int, int, int]]]:
    """One demo image ``uint8 [size, size, 3]`` (BGR) and its objects ``(cls, x, y, w, h)`` in pixels."""
    img = draw_background(size, rng)
    owner = np.full((size, size), -1, np.int16)  # index of the object on top at each pixel
    areas: list[int] = []
    visible: list[int] = []
    boxes: list[tuple[int, int, int, int, int]] = []
    n_large = 0
    n_objects = 0 if rng.random() < BACKGROUND_FRAC else int(rng.integers(1, MAX_OBJECTS + 1))
    for _ in range(n_objects):
        cls = int(rng.integers(0, len(DEMO_NAMES)))
        hi = MAX_SIZE if n_large < MAX_LARGE else LARGE - 1
        d = math.exp(rng.uniform(math.log(MIN_SIZE), math.log(hi)))
        poly = shape_polygon(cls, d, rng)
        if (poly.max(0) - poly.min(0) > size - 4).any():
            continue
        for _try in range(TRIES):
            placed = _place(img, owner, poly, rng, areas, visible, size)
            if placed is not None:
                x, y, w, h = placed
                boxes.append((cls, x, y, w, h))
                n_large += math.sqrt(w * h) > LARGE
                break
    # sensor noise: uniform, std 1.5..6 grey levels (uniform bytes are much cheaper to draw than normals)
    u = rng.integers(0, 256, img.shape, dtype=np.uint8).astype(np.float32)
    noise = (u - np.float32(127.5)) * np.float32(rng.uniform(1.5, 6.0) / 73.9)
    return cv2.add(img, noise, dtype=cv2.CV_8U), boxes


def _place(img, owner, poly, rng, areas: list[int], visible: list[int], size: int):
    """Try one random position for ``poly``; paint it and return its box ``(x, y, w, h)`` if every
    earlier object stays at least MIN_VISIBLE visible, else ``None``. Works on the shape's window only."""
    centre = rng.uniform(-poly.min(0) + 1, size - 1 - poly.max(0))
    pts = poly + centre
    x0, y0 = (int(v) - 1 for v in np.floor(pts.min(0)))
    x1, y1 = (int(v) + 2 for v in np.ceil(pts.max(0)))
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, size), min(y1, size)
    local = np.round((pts - [x0, y0]) * (1 << SHIFT)).astype(np.int32)
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.fillPoly(mask, [local], 1, cv2.LINE_8, SHIFT)
    m = mask.view(bool)
    win = owner[y0:y1, x0:x1]
    under = win[m]
    covered = np.bincount(under[under >= 0], minlength=len(areas))
    if any(visible[k] - covered[k] < MIN_VISIBLE * areas[k] for k in range(len(areas))):
        return None
    area = int(np.count_nonzero(mask))
    if area < 12:
        return None
    for k in range(len(areas)):
        visible[k] -= int(covered[k])
    win[m] = len(areas)
    areas.append(area)
    visible.append(area)
    _paint(img[y0:y1, x0:x1], m, local, rng)
    x, y, w, h = cv2.boundingRect(mask)
    return x + x0, y + y0, w, h


def _paint(img: np.ndarray, m: np.ndarray, pts: np.ndarray, rng: np.random.Generator) -> None:
    """Fill the shape with a colour that stands out from the background under it; maybe an outline."""
    under = img[m].reshape(-1, 3).mean(0)
    col = _colour(rng)
    for _ in range(6):
        if np.abs(col - under).sum() > 120:
            break
        col = _colour(rng)
    fill = tuple(float(v) for v in col)
    img[m] = col  # exact pixels of the mask, then an anti-aliased edge
    cv2.polylines(img, [pts], True, fill, 1, cv2.LINE_AA, SHIFT)
    if rng.random() < 0.4:
        edge = tuple(float(v) * 0.5 for v in col)
        cv2.polylines(img, [pts], True, edge, 1, cv2.LINE_AA, SHIFT)
