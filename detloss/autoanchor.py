"""Anchors fitted to a dataset's box shapes: best possible recall, k-means and a genetic refinement.

The metric is the one yolov5's target assignment uses (``anchor_t``, see ``docs/loss.md``): a box of size
``(w, h)`` can be matched to an anchor ``(aw, ah)`` when ``max(w/aw, aw/w, h/ah, ah/h) < thr``. For each box
``r = min(w/aw, aw/w, h/ah, ah/h)`` (its worst side ratio, in ``(0, 1]``) is taken against every anchor:

* best possible recall (BPR): the fraction of boxes whose best anchor has ``r > 1/thr``;
* fitness: the mean over boxes of the best ``r``, counting 0 for boxes no anchor can take.

The procedure follows the idea of yolov5's ``utils/autoanchor.py`` (Jocher et al.): check the BPR of the
current anchors and, below a threshold (0.98), run k-means on the box shapes (whitened by their standard
deviation, as scipy's ``kmeans`` does) and refine the result by random multiplicative mutation, keeping a
mutation only when it raises the fitness. New anchors replace the old ones only when their BPR is higher.
Everything here is plain torch on the CPU and seeded; no global RNG state is touched.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["AnchorCheck", "anchor_fitness", "best_possible_recall", "check_anchors", "kmean_anchors", "label_wh"]

MIN_BOX_PX = 2.0  # boxes smaller than this on either side are left out of the fit (yolov5 too)


def _ratio(wh: Tensor, anchors: Tensor) -> Tensor:
    """Worst side ratio ``Tensor[n, k]`` of every box ``wh [n, 2]`` against every anchor ``[k, 2]``."""
    r = wh[:, None, :] / anchors[None, :, :]
    return torch.minimum(r, 1.0 / r).min(2).values


def _check_wh(wh: Tensor, name: str) -> Tensor:
    wh = torch.as_tensor(wh, dtype=torch.float64)
    if wh.dim() != 2 or wh.shape[1] != 2:
        raise ValueError(f"{name} must be Tensor[n, 2] of (w, h) in pixels, got shape {tuple(wh.shape)}")
    if not torch.isfinite(wh).all() or (wh <= 0).any():
        raise ValueError(f"{name} must be finite and > 0 (pixels)")
    return wh


def best_possible_recall(wh: Tensor, anchors: Tensor, thr: float = 4.0) -> float:
    """Fraction of boxes ``wh [n, 2]`` that at least one anchor (``[..., 2]``, any leading shape) can take."""
    wh, a = _check_wh(wh, "wh"), _check_wh(torch.as_tensor(anchors).reshape(-1, 2), "anchors")
    if thr <= 1:
        raise ValueError(f"thr (anchor_t) must be > 1, got {thr}")
    if len(wh) == 0:
        return 1.0
    return float((_ratio(wh, a).max(1).values > 1.0 / thr).double().mean())


def anchor_fitness(wh: Tensor, anchors: Tensor, thr: float = 4.0) -> float:
    """Mean best side ratio over boxes, 0 for a box no anchor can take (higher is better, at most 1)."""
    wh, a = _check_wh(wh, "wh"), _check_wh(torch.as_tensor(anchors).reshape(-1, 2), "anchors")
    return _fitness(wh, a, thr) if len(wh) else 1.0


def _fitness(wh: Tensor, a: Tensor, thr: float) -> float:
    best = _ratio(wh, a).max(1).values
    return float((best * (best > 1.0 / thr)).mean())


def _kmeans(x: Tensor, k: int, gen: torch.Generator, iters: int = 30) -> Tensor:
    """Lloyd's k-means on ``x [n, d]`` from k-means++ seeds; an emptied cluster is re-seeded at the farthest point."""
    n = len(x)
    centres = x[torch.randint(n, (1,), generator=gen)]
    for _ in range(1, k):  # k-means++: next seed drawn with probability proportional to squared distance
        d2 = torch.cdist(x, centres).min(1).values ** 2
        p = d2 / d2.sum() if d2.sum() > 0 else torch.full_like(d2, 1.0 / n)
        centres = torch.cat((centres, x[torch.multinomial(p, 1, generator=gen)]))
    for _ in range(iters):
        assign = torch.cdist(x, centres).argmin(1)
        new = centres.clone()
        for j in range(k):
            members = x[assign == j]
            if len(members):
                new[j] = members.mean(0)
            else:
                new[j] = x[torch.cdist(x, centres).min(1).values.argmax()]
        if torch.allclose(new, centres):
            break
        centres = new
    return centres


def kmean_anchors(wh: Tensor, n: int = 6, thr: float = 4.0, generations: int = 300, seed: int = 0) -> Tensor:
    """``n`` anchors ``Tensor[n, 2]`` (pixels, sorted by area) fitted to the box shapes ``wh [m, 2]`` (pixels).

    k-means on the shapes divided by their per-axis standard deviation, then ``generations`` rounds of
    mutation (each anchor scaled by ``exp`` of a clipped normal, 90 % of entries mutated, sigma 0.1) kept
    when :func:`anchor_fitness` improves. Boxes under :data:`MIN_BOX_PX` are left out.
    """
    wh = _check_wh(wh, "wh")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n (number of anchors) must be an int >= 1, got {n!r}")
    keep = (wh >= MIN_BOX_PX).all(1)
    wh = wh[keep]
    if len(wh) < n:
        raise ValueError(f"kmean_anchors needs at least n={n} boxes of >= {MIN_BOX_PX} px, got {len(wh)}")
    gen = torch.Generator().manual_seed(int(seed))
    std = wh.std(0).clamp_min(1e-6) if len(wh) > 1 else torch.ones(2, dtype=wh.dtype)
    anchors = _kmeans(wh / std, n, gen) * std
    best = _fitness(wh, anchors, thr)
    for _ in range(generations):
        mask = torch.rand(anchors.shape, generator=gen, dtype=wh.dtype) < 0.9
        step = (torch.randn(anchors.shape, generator=gen, dtype=wh.dtype) * 0.1).clamp(-0.3, 0.3)
        cand = (anchors * torch.exp(step * mask)).clamp_min(MIN_BOX_PX)
        f = _fitness(wh, cand, thr)
        if f > best:
            anchors, best = cand, f
    return anchors[anchors.prod(1).argsort()]


def label_wh(shapes: list[tuple[int, int]], labels: list, imgsz: int, seed: int = 0) -> Tensor:
    """Box sizes ``Tensor[m, 2]`` in pixels of the training input: each image scaled so its long side is
    ``imgsz`` (letterbox), boxes from normalised ``[n, 5] (cls, cx, cy, w, h)`` rows, with a seeded random
    0.9-1.1 scale per box standing in for scale augmentation. Rows with a negative class (ignore regions) are
    left out."""
    gen = torch.Generator().manual_seed(int(seed))
    out = []
    for (h0, w0), lab in zip(shapes, labels):
        t = torch.as_tensor(lab, dtype=torch.float64).reshape(-1, 5)
        t = t[t[:, 0] >= 0]
        if len(t) == 0 or h0 <= 0 or w0 <= 0:
            continue
        r = imgsz / max(h0, w0)
        out.append(t[:, 3:5] * torch.tensor([w0 * r, h0 * r], dtype=torch.float64))
    if not out:
        return torch.zeros((0, 2), dtype=torch.float64)
    wh = torch.cat(out)
    wh = wh * torch.empty(len(wh), 1, dtype=wh.dtype).uniform_(0.9, 1.1, generator=gen)
    return wh[(wh > 0).all(1)]


@dataclass(frozen=True)
class AnchorCheck:
    """What :func:`check_anchors` found: BPR and anchors-above-threshold before/after, and the anchors to use."""

    bpr_before: float
    bpr_after: float
    fitness_before: float
    fitness_after: float
    anchors: Tensor  # [nl, na, 2] pixels, the ones to use (new or unchanged)
    changed: bool

    def message(self) -> str:
        if not self.changed:
            return f"autoanchor: best possible recall {self.bpr_before:.4f}, anchors kept"
        flat = ", ".join(f"{w:.0f},{h:.0f}" for w, h in self.anchors.reshape(-1, 2).tolist())
        return (
            f"autoanchor: best possible recall {self.bpr_before:.4f} -> {self.bpr_after:.4f} (fitness "
            f"{self.fitness_before:.4f} -> {self.fitness_after:.4f}); new anchors {flat}"
        )


def check_anchors(
    wh: Tensor, anchors: Tensor, thr: float = 4.0, min_bpr: float = 0.98, generations: int = 300, seed: int = 0
) -> AnchorCheck:
    """Keep ``anchors [nl, na, 2]`` when their BPR on ``wh`` is at least ``min_bpr``; else fit new ones with
    :func:`kmean_anchors` and use them when they raise the BPR (ties: when they raise the fitness).

    New anchors are sorted by area and dealt to the levels in order, smallest to the finest level.
    """
    a = torch.as_tensor(anchors, dtype=torch.float64)
    if a.dim() != 3 or a.shape[2] != 2:
        raise ValueError(f"anchors must be Tensor[nl, na, 2], got shape {tuple(a.shape)}")
    wh = _check_wh(wh, "wh")
    bpr, fit = best_possible_recall(wh, a, thr), anchor_fitness(wh, a, thr)
    unchanged = AnchorCheck(bpr, bpr, fit, fit, a.float(), False)
    n_fit = int((wh >= MIN_BOX_PX).all(1).sum())
    if bpr >= min_bpr or n_fit < a.shape[0] * a.shape[1] or not math.isfinite(bpr):
        return unchanged
    new = kmean_anchors(wh, a.shape[0] * a.shape[1], thr, generations, seed).view_as(a)
    bpr2, fit2 = best_possible_recall(wh, new, thr), anchor_fitness(wh, new, thr)
    if bpr2 > bpr or (bpr2 == bpr and fit2 > fit):
        return AnchorCheck(bpr, bpr2, fit, fit2, new.float(), True)
    return unchanged
