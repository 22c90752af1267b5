"""A seeded held-out part of a split: the images a post-hoc calibrator is fitted on and no model trains on."""

from __future__ import annotations

import numpy as np

__all__ = ["holdout_split"]


def holdout_split(n: int, fraction: float, seed: int = 0) -> tuple[list[int], list[int]]:
    """``(kept, held_out)`` sorted index lists: ``round(fraction * n)`` indices held out, drawn with ``seed``."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"the held-out fraction must be in (0, 1), got {fraction}")
    k = round(fraction * n)
    if k < 1 or k >= n:
        raise ValueError(f"holding out {fraction:g} of {n} images leaves {k} held out and {n - k} kept; need both >= 1")
    perm = np.random.default_rng(seed).permutation(n)
    return sorted(perm[k:].tolist()), sorted(perm[:k].tolist())
