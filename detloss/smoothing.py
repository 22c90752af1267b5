"""Label-smoothing targets.

Two conventions exist and they are *not* the same:

* YOLO / darknet (per-class sigmoid BCE), :func:`smooth_BCE`: positive target ``1 - eps/2``,
  negative ``eps/2``, whatever the number of classes K (yolov5 ``utils/loss.py``; with eps = 0.1:
  0.95 / 0.05).
* Softmax (Szegedy et al. 2016, torch ``cross_entropy(label_smoothing=eps)``, timm): the target
  distribution ``(1 - eps) * onehot + eps / K``, i.e. positive ``1 - eps + eps/K``, negative
  ``eps/K``. :func:`smooth_BCE_k` gives that pair for a BCE head that wants it.

The two agree only at K = 2.

Softmax target distributions (rows of ``Tensor[N, K]``, each summing to 1) for a LongTensor ``target[N]``:

* :func:`uniform_targets`: ``q = (1 - eps) * onehot + eps / K`` (Szegedy et al. 2016, "Rethinking the
  Inception Architecture", arXiv 1512.00567; torch ``label_smoothing``, TensorFlow, fastai, timm).
* :func:`k1_targets`: true class ``1 - eps``, every other class ``eps / (K - 1)`` (the form used with a KL
  divergence loss, e.g. the Annotated Transformer; also the initial matrix of online label smoothing).
* :func:`prior_targets`: ``q = (1 - eps) * onehot + eps * u`` with a class prior ``u`` (Szegedy et al. 2016,
  section 7: "in our experiments we used the uniform distribution", any fixed ``u(k)`` is allowed);
  :func:`class_prior_from_counts` builds ``u`` from label counts.

With K = 4 and eps = 0.2: uniform 0.85 / 0.05, k1 0.8 / 0.0667.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from .checks import check_eps, check_num_classes, check_number

PRIOR_SUM_TOL = 1e-4  # |sum(prior) - 1| allowed (float32 rounding of a normalised histogram)


def smooth_BCE(eps: float = 0.1) -> tuple[float, float]:  # noqa: N802 - the name users know from yolov5
    """Positive and negative BCE targets ``(1 - 0.5*eps, 0.5*eps)`` (YOLO convention).

    Args:
        eps: smoothing in ``[0, 1)``. ``0`` gives the hard targets ``(1.0, 0.0)``.

    Returns:
        ``(cp, cn)``: the target for the true class and for every other class.
    """
    eps = check_eps(eps)
    return 1.0 - 0.5 * eps, 0.5 * eps


def smooth_BCE_k(eps: float, num_classes: int) -> tuple[float, float]:  # noqa: N802
    """Softmax-convention pair ``(1 - eps + eps/K, eps/K)`` for a K-class BCE head."""
    eps = check_eps(eps)
    check_num_classes(num_classes)
    return 1.0 - eps + eps / num_classes, eps / num_classes


def check_class_target(target: Tensor, num_classes: int) -> Tensor:
    """Validate class indices ``target[N]`` against ``num_classes``; returns them as ``torch.long``.

    Any integer dtype is accepted (converted to long); floating or bool targets are rejected because a soft
    target tensor or a mask passed by mistake would otherwise be read as indices. One host sync for the range.
    """
    if not isinstance(target, Tensor):
        raise ValueError(f"target must be a torch.Tensor of class indices, got {type(target).__name__}")
    if target.dim() != 1:
        raise ValueError(f"target must be 1-D class indices [N], got shape {tuple(target.shape)}")
    if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
        raise ValueError(f"target must hold integer class indices (torch.long), got dtype {target.dtype}")
    if target.numel() and bool(((target < 0) | (target >= num_classes)).any()):
        lo, hi = int(target.min()), int(target.max())
        raise ValueError(f"target class indices must be in [0, {num_classes}), got values in [{lo}, {hi}]")
    return target.long()


def check_prior(prior: Tensor, num_classes: int | None = None) -> Tensor:
    """Validate a class prior ``Tensor[K]``: floating, finite, non-negative, summing to 1 (within 1e-4)."""
    if not isinstance(prior, Tensor):
        raise ValueError(f"prior must be a torch.Tensor [K], got {type(prior).__name__}")
    if prior.dim() != 1:
        raise ValueError(f"prior must be 1-D [K], got shape {tuple(prior.shape)}")
    if not prior.is_floating_point():
        raise ValueError(f"prior must be a floating-point tensor, got {prior.dtype}")
    if prior.numel() < 2:
        raise ValueError(f"prior must have K >= 2 entries, got {prior.numel()}")
    if num_classes is not None and prior.numel() != num_classes:
        raise ValueError(f"prior has {prior.numel()} entries but there are {num_classes} classes")
    p = prior.detach().double()
    if not bool(torch.isfinite(p).all()):
        raise ValueError("prior has a non-finite entry (NaN or inf)")
    if bool((p < 0).any()):
        raise ValueError(f"prior must be non-negative, got min {float(p.min()):.6g}")
    total = float(p.sum())
    if abs(total - 1.0) > PRIOR_SUM_TOL:
        raise ValueError(f"prior must sum to 1, got {total:.6g}; normalise it (class_prior_from_counts does)")
    return prior


def _fill_targets(target: Tensor, k: int, on: float, off: float, dtype: torch.dtype | None) -> Tensor:
    """``Tensor[N, k]`` filled with ``off``, ``on`` at the (already validated) ``target`` column of each row."""
    q = torch.full((target.shape[0], k), off, dtype=dtype, device=target.device)
    return q.scatter_(1, target[:, None], on)


def uniform_targets(target: Tensor, num_classes: int, eps: float, dtype: torch.dtype | None = None) -> Tensor:
    """Uniform softmax smoothing ``q = (1 - eps) * onehot(target) + eps / K`` (Szegedy et al. 2016).

    True class ``1 - eps + eps/K``, others ``eps/K``; the target of ``F.cross_entropy(label_smoothing=eps)``.

    Args:
        target: ``LongTensor[N]`` class indices in ``[0, K)``.
        num_classes: ``K >= 2``.
        eps: smoothing in ``[0, 1)``.
        dtype: floating dtype of the result (default: torch's default dtype).

    Returns:
        ``Tensor[N, K]`` on ``target``'s device, rows summing to 1.
    """
    eps = check_eps(eps)
    k = check_num_classes(num_classes)
    return _fill_targets(check_class_target(target, k), k, 1.0 - eps + eps / k, eps / k, dtype)


def k1_targets(target: Tensor, num_classes: int, eps: float, dtype: torch.dtype | None = None) -> Tensor:
    """``K - 1`` smoothing: true class ``1 - eps``, every other class ``eps / (K - 1)``.

    The smoothing mass goes to the wrong classes only, so the true class keeps exactly ``1 - eps``
    (uniform smoothing gives it ``1 - eps + eps/K``). Used with KL divergence (:class:`KLDivLabelSmoothing`)
    and as the initial matrix of online label smoothing.

    Args / returns as :func:`uniform_targets`: ``target`` ``LongTensor[N]`` -> ``Tensor[N, K]``.
    """
    eps = check_eps(eps)
    k = check_num_classes(num_classes)
    return _fill_targets(check_class_target(target, k), k, 1.0 - eps, eps / (k - 1), dtype)


def prior_targets(target: Tensor, prior: Tensor, eps: float) -> Tensor:
    """Smoothing towards a class prior: ``q = (1 - eps) * onehot(target) + eps * u`` (Szegedy et al. 2016).

    True class ``1 - eps + eps * u(y)``, class ``k != y`` gets ``eps * u(k)``. ``u = 1/K`` is :func:`uniform_targets`.

    Args:
        target: ``LongTensor[N]`` class indices in ``[0, K)``.
        prior: ``Tensor[K]`` non-negative, summing to 1 (e.g. from :func:`class_prior_from_counts`).
        eps: smoothing in ``[0, 1)``.

    Returns:
        ``Tensor[N, K]`` in ``prior``'s dtype, on ``target``'s device.
    """
    eps = check_eps(eps)
    prior = check_prior(prior)
    target = check_class_target(target, prior.numel())
    u = prior.to(target.device)
    q = (eps * u).expand(target.shape[0], -1).clone()
    return q.scatter_add_(1, target[:, None], torch.full_like(q[:, :1], 1.0 - eps))


def class_prior_from_counts(
    counts: Tensor | Sequence[float], pseudo_count: float = 0.0, dtype: torch.dtype | None = None
) -> Tensor:
    """Class frequencies ``u(k) = (c_k + a) / (sum_j c_j + K * a)`` from per-class label counts.

    Zero-count classes: by default (``a = 0``) they get prior 0, which is harmless for the cross entropy
    (a ``q_k = 0`` term contributes nothing and such a class never is a target) and keeps the prior equal to
    the observed label distribution. Pass ``pseudo_count > 0`` (additive / Laplace smoothing, ``a = 1`` is
    the classic choice) to give every class a floor of ``a / (sum_j c_j + K a)``, e.g. when the counts come
    from a subset and some class may still appear, or when the prior enters a KL divergence or a log.

    Args:
        counts: ``Tensor[K]`` or a sequence of non-negative counts (ints or floats), ``K >= 2``.
        pseudo_count: ``a >= 0`` added to every count.
        dtype: floating dtype of the result (default: ``counts``' dtype when floating, else torch's default).

    Returns:
        ``Tensor[K]`` summing to 1.
    """
    c = counts if isinstance(counts, Tensor) else torch.as_tensor(counts)
    if c.dim() != 1 or c.numel() < 2:
        raise ValueError(f"counts must be 1-D with K >= 2 entries, got shape {tuple(c.shape)}")
    if c.is_complex() or c.dtype == torch.bool:
        raise ValueError(f"counts must be real numbers, got dtype {c.dtype}")
    check_number(pseudo_count, "pseudo_count", lo=0.0)
    out_dtype = dtype or (c.dtype if c.is_floating_point() else torch.get_default_dtype())
    c64 = c.detach().double()
    if not bool(torch.isfinite(c64).all()) or bool((c64 < 0).any()):
        raise ValueError("counts must be finite and non-negative")
    c64 = c64 + pseudo_count
    total = float(c64.sum())
    if total <= 0:
        raise ValueError("counts are all zero: no class frequency to estimate (pass pseudo_count > 0 for uniform)")
    return (c64 / total).to(out_dtype)
