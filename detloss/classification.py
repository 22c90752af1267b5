"""Softmax classification losses with label smoothing (softmax convention, not YOLO's ``(1 - eps/2, eps/2)``).

* :class:`LabelSmoothingCrossEntropy`: cross entropy to ``q = (1 - eps) * onehot + eps * u`` with ``u = 1/K``
  (Szegedy et al. 2016, arXiv 1512.00567; the same value as ``F.cross_entropy(label_smoothing=eps)``) or a
  class prior ``u``.
* :class:`KLDivLabelSmoothing`: KL divergence to the ``K - 1`` target (true class ``1 - eps``, others
  ``eps / (K - 1)``), reduced with ``batchmean``.

Label smoothing improves calibration but hurts distillation (Muller, Kornblith, Hinton 2019, "When does
label smoothing help?", arXiv 1906.02629).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .checks import check_choice, check_eps, check_num_classes
from .smoothing import _fill_targets, check_class_target, check_prior

REDUCTIONS = ("mean", "sum", "none")


def check_reduction(reduction: str, options: tuple[str, ...] = REDUCTIONS) -> str:
    return check_choice(reduction, "reduction", options)


def check_logits_target(logits: Tensor, target: Tensor, num_classes: int | None = None) -> tuple[Tensor, Tensor]:
    """Validate ``logits[N, K]`` (floating) and ``target[N]`` (integer, in ``[0, K)``).

    Returns ``(logits, target)`` with half / bfloat16 logits upcast to float32 (the log-softmax is computed
    in at least float32) and the target as ``torch.long``.
    """
    if not isinstance(logits, Tensor):
        raise ValueError(f"logits must be a torch.Tensor [N, K], got {type(logits).__name__}")
    if logits.dim() != 2:
        raise ValueError(f"logits must be 2-D [N, K], got shape {tuple(logits.shape)}")
    if not logits.is_floating_point():
        raise ValueError(f"logits must be a floating-point tensor, got {logits.dtype}")
    k = logits.shape[1]
    if k < 2:
        raise ValueError(f"logits must have K >= 2 classes on dim 1, got {k}")
    if num_classes is not None and k != num_classes:
        raise ValueError(f"logits have {k} classes on dim 1, the loss was built for {num_classes}")
    if isinstance(target, Tensor) and target.dim() == 1 and target.shape[0] != logits.shape[0]:
        raise ValueError(f"target has {target.shape[0]} entries but logits have {logits.shape[0]} rows")
    target = check_class_target(target, k)
    if target.device != logits.device:
        raise ValueError(f"target is on {target.device} but logits on {logits.device}")
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    return logits, target


def reduce_loss(loss: Tensor, reduction: str) -> Tensor:
    """``mean`` / ``sum`` / ``none`` over the batch; an empty batch gives 0 with the graph kept (torch gives NaN)."""
    if reduction == "none":
        return loss
    if reduction == "sum" or loss.numel() == 0:
        return loss.sum()
    return loss.mean()


def label_smoothing_cross_entropy(
    logits: Tensor, target: Tensor, eps: float = 0.1, reduction: str = "mean", prior: Tensor | None = None
) -> Tensor:
    """Cross entropy to the smoothed target ``q = (1 - eps) * onehot(y) + eps * u``.

    ``loss_i = -sum_k q_ik log p_ik = (1 - eps) * NLL_i + eps * sum_k u_k (-log p_ik)`` with
    ``p = softmax(logits)``; computed in that second form, so no ``[N, K]`` target is built. With ``u = 1/K``
    (``prior=None``) the smoothing term is the mean negative log-probability (fastai's formulation) and the
    value equals ``F.cross_entropy(logits, target, label_smoothing=eps, reduction=reduction)``.

    Args:
        logits: ``Tensor[N, K]`` unnormalised scores (half / bfloat16 upcast to float32).
        target: ``LongTensor[N]`` class indices in ``[0, K)``.
        eps: smoothing in ``[0, 1)``; 0 is the plain cross entropy.
        reduction: ``"mean"`` (over N), ``"sum"`` or ``"none"`` (``Tensor[N]``).
        prior: optional ``Tensor[K]`` class prior ``u`` (non-negative, sums to 1) instead of uniform.
    """
    eps = check_eps(eps)
    check_reduction(reduction)
    if prior is not None:
        check_prior(prior)
    return _label_smoothing_ce(logits, target, eps, reduction, prior)


def _label_smoothing_ce(logits: Tensor, target: Tensor, eps: float, reduction: str, prior: Tensor | None) -> Tensor:
    """:func:`label_smoothing_cross_entropy` after the hyperparameters (and the prior's values) are validated."""
    logits, target = check_logits_target(logits, target)
    if prior is not None and prior.numel() != logits.shape[1]:
        raise ValueError(f"prior has {prior.numel()} entries but logits have {logits.shape[1]} classes")
    logp = F.log_softmax(logits, dim=1)
    nll = -logp.gather(1, target[:, None]).squeeze(1)
    if prior is None:
        smooth = -logp.mean(dim=1)
    else:
        smooth = -(logp * prior.to(device=logp.device, dtype=logp.dtype)).sum(dim=1)
    return reduce_loss((1.0 - eps) * nll + eps * smooth, reduction)


class LabelSmoothingCrossEntropy(nn.Module):
    """Softmax cross entropy with uniform (``eps/K``) or class-prior label smoothing.

    Target ``q = (1 - eps) * onehot(y) + eps * u``, ``u = 1/K`` or ``prior``; see
    :func:`label_smoothing_cross_entropy` for the formula. Softmax convention: with K = 4, eps = 0.2 the true
    class gets 0.85 and each other class 0.05 (YOLO's BCE convention would give 0.9 / 0.1).
    Reference: Szegedy et al. 2016, "Rethinking the Inception Architecture for Computer Vision", section 7.

    Args:
        eps: smoothing in ``[0, 1)``.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
        prior: optional ``Tensor[K]`` prior (a buffer: it follows ``.to(device)`` and the ``state_dict``).

    Shapes: ``logits[N, K]``, ``target[N]`` -> scalar, or ``Tensor[N]`` with ``reduction="none"``.
    """

    prior: Tensor | None

    def __init__(self, eps: float = 0.1, reduction: str = "mean", prior: Tensor | None = None) -> None:
        super().__init__()
        self.eps = check_eps(eps)
        self.reduction = check_reduction(reduction)
        self.register_buffer("prior", None if prior is None else check_prior(prior).detach().clone())

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return _label_smoothing_ce(logits, target, self.eps, self.reduction, self.prior)

    def extra_repr(self) -> str:
        k = "" if self.prior is None else f", prior=Tensor[{self.prior.numel()}]"
        return f"eps={self.eps}, reduction={self.reduction!r}{k}"


def k1_target_entropy(num_classes: int, eps: float) -> float:
    """Entropy (nats) of the ``K - 1`` target: ``H(q) = -(1 - eps) log(1 - eps) - eps log(eps / (K - 1))``."""
    eps = check_eps(eps)
    k = check_num_classes(num_classes)
    h = -(1.0 - eps) * math.log(1.0 - eps)
    if eps > 0:
        h -= eps * math.log(eps / (k - 1))
    return h


class KLDivLabelSmoothing(nn.Module):
    """KL divergence from the softmax prediction to the ``K - 1`` smoothed target.

    Target ``q``: true class ``1 - eps``, each other class ``eps / (K - 1)`` (:func:`k1_targets`). Per sample
    ``KL_i = sum_k q_ik (log q_ik - log p_ik) = CE(q_i, p_i) - H(q)``, where the target entropy
    ``H(q) = -(1 - eps) log(1 - eps) - eps log(eps / (K - 1))`` is the same constant for every sample
    (:attr:`target_entropy`): the gradient equals that of the soft cross entropy and the loss is 0 at
    ``p = q`` (not ``H(q)``, the floor of the cross entropy).

    Reductions: ``"batchmean"`` (default, sum over classes, mean over N: the true mean KL per sample),
    ``"sum"``, ``"none"`` (``Tensor[N]``, per-sample KL). ``"mean"`` is refused on purpose: in
    ``F.kl_div`` it averages over all ``N * K`` elements, i.e. the per-sample KL silently divided by K
    as well (a common bug that shrinks the loss and its gradient K times).

    Args:
        num_classes: ``K >= 2``.
        eps: smoothing in ``[0, 1)``.
        reduction: ``"batchmean"``, ``"sum"`` or ``"none"``.

    Shapes: ``logits[N, K]``, ``target[N]`` -> scalar, or ``Tensor[N]`` with ``reduction="none"``.
    """

    def __init__(self, num_classes: int, eps: float = 0.1, reduction: str = "batchmean") -> None:
        super().__init__()
        self.num_classes = check_num_classes(num_classes)
        self.eps = check_eps(eps)
        if reduction == "mean":
            raise ValueError(
                "reduction='mean' averages the KL over N * K elements (divides by K as well); use 'batchmean'"
            )
        self.reduction = check_reduction(reduction, ("batchmean", "sum", "none"))

    @property
    def target_entropy(self) -> float:
        """``H(q)`` of the ``K - 1`` target in nats: ``KL = soft CE - target_entropy``."""
        return k1_target_entropy(self.num_classes, self.eps)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        logits, target = check_logits_target(logits, target, self.num_classes)
        logp = F.log_softmax(logits, dim=1)
        k, eps = self.num_classes, self.eps
        q = _fill_targets(target, k, 1.0 - eps, eps / (k - 1), logp.dtype)  # k1_targets, validated above
        if self.reduction == "none":
            return F.kl_div(logp, q, reduction="none").sum(dim=1)
        if self.reduction == "batchmean" and logits.shape[0] == 0:
            return logp.sum() * 0.0
        return F.kl_div(logp, q, reduction=self.reduction)

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, eps={self.eps}, reduction={self.reduction!r}"
