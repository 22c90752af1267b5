"""Label-smoothing targets.

Two conventions exist and they are *not* the same:

* YOLO / darknet (per-class sigmoid BCE), :func:`smooth_BCE`: positive target ``1 - eps/2``,
  negative ``eps/2``, whatever the number of classes K (yolov5 ``utils/loss.py``; with eps = 0.1:
  0.95 / 0.05).
* Softmax (Szegedy et al. 2016, torch ``cross_entropy(label_smoothing=eps)``, timm): the target
  distribution ``(1 - eps) * onehot + eps / K``, i.e. positive ``1 - eps + eps/K``, negative
  ``eps/K``. :func:`smooth_BCE_k` gives that pair for a BCE head that wants it.

The two agree only at K = 2.
"""

from __future__ import annotations

import math


def _check_eps(eps: float, name: str = "eps") -> float:
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not math.isfinite(eps):
        raise ValueError(f"{name} must be a finite number in [0, 1), got {eps!r}")
    if not 0.0 <= eps < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {eps}")
    return float(eps)


def smooth_BCE(eps: float = 0.1) -> tuple[float, float]:  # noqa: N802 - the name users know from yolov5
    """Positive and negative BCE targets ``(1 - 0.5*eps, 0.5*eps)`` (YOLO convention).

    Args:
        eps: smoothing in ``[0, 1)``. ``0`` gives the hard targets ``(1.0, 0.0)``.

    Returns:
        ``(cp, cn)``: the target for the true class and for every other class.
    """
    eps = _check_eps(eps)
    return 1.0 - 0.5 * eps, 0.5 * eps


def smooth_BCE_k(eps: float, num_classes: int) -> tuple[float, float]:  # noqa: N802
    """Softmax-convention pair ``(1 - eps + eps/K, eps/K)`` for a K-class BCE head."""
    eps = _check_eps(eps)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
    return 1.0 - eps + eps / num_classes, eps / num_classes
