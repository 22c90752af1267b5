"""Box-aware augmentations on BGR ``uint8 [H, W, 3]`` images with labels ``[n, 5] (cls, x1, y1, x2, y2)`` in pixels.

Every random choice comes from the ``numpy.random.Generator`` passed in (no global RNG), so a
sample is reproducible from its seed. Hyperparameters use yolov5's hyp keys and meanings
(``data/hyps/hyp.scratch-low.yaml``): HSV gains are fractions, ``degrees``/``shear`` in degrees,
``translate`` a fraction of the output size, ``scale`` a +/- gain, ``fliplr``/``flipud``/``mosaic``
probabilities. Boxes are transformed with the image, clipped to it and dropped when they become
smaller than :data:`BOX_MIN_PX`, keep less than :data:`BOX_MIN_AREA_FRAC` of their (scaled) area, or
get thinner than :data:`BOX_MAX_ASPECT` (the yolov5 ``box_candidates`` rule).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, fields

import cv2
import numpy as np

from detloss.checks import check_number

BOX_MIN_PX = 2.0
BOX_MIN_AREA_FRAC = 0.1
BOX_MAX_ASPECT = 20.0
FILL = 114
UNSUPPORTED = ("perspective", "mixup", "copy_paste")


@dataclass(frozen=True)
class AugConfig:
    """Augmentation hyperparameters; defaults are yolov5's ``hyp.scratch-low.yaml`` values."""

    hsv_h: float = 0.015
    hsv_s: float = 0.7
    hsv_v: float = 0.4
    degrees: float = 0.0
    translate: float = 0.1
    scale: float = 0.5
    shear: float = 0.0
    perspective: float = 0.0
    flipud: float = 0.0
    fliplr: float = 0.5
    mosaic: float = 1.0
    mixup: float = 0.0
    copy_paste: float = 0.0

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            check_number(v, f"hyp '{f.name}'", lo=0.0)
        for k in ("flipud", "fliplr", "mosaic", "mixup", "copy_paste", "hsv_h", "hsv_s", "hsv_v", "translate"):
            if getattr(self, k) > 1:
                raise ValueError(f"hyp '{k}' must be in [0, 1], got {getattr(self, k)}")
        if self.scale >= 1:
            raise ValueError(f"hyp 'scale' must be in [0, 1) (the image is scaled by 1 +/- scale), got {self.scale}")
        if self.degrees > 180 or self.shear >= 90:
            raise ValueError(f"hyp 'degrees' must be <= 180 and 'shear' < 90, got {self.degrees}, {self.shear}")

    @classmethod
    def from_hyp(cls, hyp: dict | None, warn: bool = True) -> AugConfig:
        """Take the augmentation keys of a yolov5 hyp dict (other keys, e.g. ``lr0``, are ignored).

        Keys it cannot apply (``perspective``, ``mixup``, ``copy_paste`` > 0) give a warning if ``warn``.
        """
        if hyp is None:
            return cls()
        if not isinstance(hyp, dict):
            raise ValueError(f"hyp must be a dict of yolov5 hyperparameters, got {type(hyp).__name__}")
        cfg = cls(**{f.name: hyp[f.name] for f in fields(cls) if f.name in hyp})
        off = {k: getattr(cfg, k) for k in UNSUPPORTED if getattr(cfg, k)}
        if off and warn:
            warnings.warn(f"hyp {off} not implemented by detloss data/ and ignored", UserWarning, stacklevel=2)
        return cfg


def augment_hsv(img: np.ndarray, rng: np.random.Generator, hgain: float, sgain: float, vgain: float) -> np.ndarray:
    """Random hue/saturation/value gains in ``1 +/- gain`` applied through lookup tables (yolov5's method).

    Hue is rotated modulo OpenCV's 180, saturation and value multiplied and clipped. Boxes unchanged.
    """
    if not (hgain or sgain or vgain):
        return img
    r = rng.uniform(-1, 1, 3) * np.array([hgain, sgain, vgain]) + 1
    hue, sat, val = cv2.split(cv2.cvtColor(img, cv2.COLOR_BGR2HSV))
    x = np.arange(256, dtype=np.float64)
    lut_h = np.mod(x * r[0], 180).astype(np.uint8)
    lut_s = np.clip(x * r[1], 0, 255).astype(np.uint8)
    lut_v = np.clip(x * r[2], 0, 255).astype(np.uint8)
    hsv = cv2.merge((cv2.LUT(hue, lut_h), cv2.LUT(sat, lut_s), cv2.LUT(val, lut_v)))
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)


def flip_lr(img: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror left-right; ``x -> W - x`` with x1/x2 swapped."""
    w = img.shape[1]
    out = labels.copy()
    out[:, 1], out[:, 3] = w - labels[:, 3], w - labels[:, 1]
    return np.ascontiguousarray(img[:, ::-1]), out


def flip_ud(img: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror up-down; ``y -> H - y`` with y1/y2 swapped."""
    h = img.shape[0]
    out = labels.copy()
    out[:, 2], out[:, 4] = h - labels[:, 4], h - labels[:, 2]
    return np.ascontiguousarray(img[::-1]), out


def box_keep(before: np.ndarray, after: np.ndarray, gain: float = 1.0) -> np.ndarray:
    """Boolean ``[n]``: boxes ``after`` (xyxy) still worth training on, compared with ``before`` scaled by ``gain``."""
    w0, h0 = (before[:, 2] - before[:, 0]) * gain, (before[:, 3] - before[:, 1]) * gain
    w1, h1 = after[:, 2] - after[:, 0], after[:, 3] - after[:, 1]
    aspect = np.maximum(w1 / np.maximum(h1, 1e-9), h1 / np.maximum(w1, 1e-9))
    area_frac = (w1 * h1) / np.maximum(w0 * h0, 1e-9)
    return (w1 > BOX_MIN_PX) & (h1 > BOX_MIN_PX) & (area_frac > BOX_MIN_AREA_FRAC) & (aspect < BOX_MAX_ASPECT)


def clip_labels(labels: np.ndarray, region: tuple[float, float, float, float], gain: float = 1.0) -> np.ndarray:
    """Clip boxes to ``region = (x1, y1, x2, y2)`` and drop those that :func:`box_keep` rejects."""
    x1, y1, x2, y2 = region
    out = labels.copy()
    out[:, [1, 3]] = out[:, [1, 3]].clip(x1, x2)
    out[:, [2, 4]] = out[:, [2, 4]].clip(y1, y2)
    return out[box_keep(labels[:, 1:5], out[:, 1:5], gain)]


def affine_matrix(
    in_shape: tuple[int, int], out_shape: tuple[int, int], rng: np.random.Generator, cfg: AugConfig
) -> tuple[np.ndarray, float]:
    """A random 3x3 affine map: centre the input, rotate+scale, shear, move to the output centre +/- translate.

    Returns ``(M, s)`` with ``s`` the isotropic scale drawn (for the area test of dropped boxes).
    """
    hi, wi = in_shape
    ho, wo = out_shape
    centre = np.array([[1, 0, -wi / 2], [0, 1, -hi / 2], [0, 0, 1]], np.float64)
    angle = rng.uniform(-cfg.degrees, cfg.degrees)
    s = rng.uniform(1 - cfg.scale, 1 + cfg.scale)
    rot = np.eye(3)
    rot[:2] = cv2.getRotationMatrix2D((0.0, 0.0), angle, s)
    shear = np.eye(3)
    shear[0, 1] = math.tan(math.radians(rng.uniform(-cfg.shear, cfg.shear)))
    shear[1, 0] = math.tan(math.radians(rng.uniform(-cfg.shear, cfg.shear)))
    move = np.eye(3)
    move[0, 2] = rng.uniform(0.5 - cfg.translate, 0.5 + cfg.translate) * wo
    move[1, 2] = rng.uniform(0.5 - cfg.translate, 0.5 + cfg.translate) * ho
    return move @ shear @ rot @ centre, s


def transform_boxes(boxes: np.ndarray, m: np.ndarray, width: float, height: float) -> np.ndarray:
    """Boxes ``[n, 4]`` xyxy mapped by the 3x3 affine ``m`` and clipped to ``[0, width] x [0, height]``.

    Each result encloses the part of the warped box (a parallelogram) inside the image: where a
    rotated or sheared box crosses the border, the parallelogram itself is clipped (Sutherland-Hodgman)
    rather than its enclosing box, which would overstate a cut-off corner. Empty results have zero size.
    """
    n = len(boxes)
    quads = (boxes[:, [0, 1, 2, 1, 2, 3, 0, 3]].reshape(n * 4, 2) @ m[:2, :2].T + m[:2, 2]).reshape(n, 4, 2)
    out = np.concatenate([quads.min(1), quads.max(1)], axis=1)
    skewed = abs(m[0, 1]) > 1e-9 or abs(m[1, 0]) > 1e-9
    if skewed:
        crossing = (out[:, 0] < 0) | (out[:, 1] < 0) | (out[:, 2] > width) | (out[:, 3] > height)
        for j in np.flatnonzero(crossing):
            out[j] = _clip_polygon_extent(quads[j], width, height)
    out[:, [0, 2]] = out[:, [0, 2]].clip(0, width)
    out[:, [1, 3]] = out[:, [1, 3]].clip(0, height)
    return out


def _clip_polygon_extent(poly: np.ndarray, width: float, height: float) -> np.ndarray:
    """Enclosing xyxy box of a convex polygon ``[k, 2]`` clipped to the image (zeros if nothing is left)."""
    pts = [tuple(p) for p in poly]
    # half-planes as (axis, bound, keep_greater): x >= 0, x <= width, y >= 0, y <= height
    for axis, bound, greater in ((0, 0.0, True), (0, width, False), (1, 0.0, True), (1, height, False)):
        if not pts:
            break
        kept = []
        for k, cur in enumerate(pts):
            prev = pts[k - 1]
            cur_in = cur[axis] >= bound if greater else cur[axis] <= bound
            prev_in = prev[axis] >= bound if greater else prev[axis] <= bound
            if cur_in != prev_in:  # the edge crosses the line: add the crossing point
                t = (bound - prev[axis]) / (cur[axis] - prev[axis])
                kept.append((prev[0] + t * (cur[0] - prev[0]), prev[1] + t * (cur[1] - prev[1])))
            if cur_in:
                kept.append(cur)
        pts = kept
    if not pts:
        return np.zeros(4)
    arr = np.array(pts)
    return np.concatenate([arr.min(0), arr.max(0)])


def random_affine(
    img: np.ndarray, labels: np.ndarray, rng: np.random.Generator, cfg: AugConfig, border: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Random rotation/scale/shear/translation of an image and its boxes.

    The output is ``(H + 2*border, W + 2*border)``; mosaic passes ``border = -s/2`` to crop its
    ``2s x 2s`` canvas to ``s x s``. Boxes become the enclosing box of their warped corners within
    the output (:func:`transform_boxes`), then are filtered (:func:`box_keep`).
    """
    hi, wi = img.shape[:2]
    out_shape = (hi + 2 * border, wi + 2 * border)
    m, s = affine_matrix((hi, wi), out_shape, rng, cfg)
    out = cv2.warpAffine(img, m[:2], (out_shape[1], out_shape[0]), flags=cv2.INTER_LINEAR, borderValue=(FILL,) * 3)
    if not len(labels):
        return out, labels.reshape(0, 5)
    moved = labels.copy()
    moved[:, 1:5] = transform_boxes(labels[:, 1:5], m, out_shape[1], out_shape[0])
    # the area test compares with the input boxes scaled by s (the warped box of a rotated one is larger)
    return out, moved[box_keep(labels[:, 1:5], moved[:, 1:5], gain=s)]
