"""Online label smoothing (Zhang et al. 2021, "Delving Deep into Label Smoothing", arXiv 2011.12562).

Instead of a fixed ``eps/K`` target, each class k gets a learned soft label: the average predicted
distribution of the training samples of class k that the model classified correctly in the previous epoch.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from .checks import check_eps, check_num_classes, check_number
from .classification import check_logits_target, check_reduction, reduce_loss
from .smoothing import check_class_target


def accumulate_correct(
    update: Tensor, idx_count: Tensor, probs: Tensor, target: Tensor, keep: Tensor | None = None
) -> None:
    """Add the score rows ``probs [n, K]`` of correctly classified samples (argmax == target) to column
    ``target`` of ``update [K, K]`` and count them in ``idx_count [K]`` (the online-smoothing statistics).
    ``keep``: ``BoolTensor[n]``, the rows that count (default all). Rows are weighted, not selected: no host sync."""
    probs = probs.detach().to(update.device)
    target = target.to(update.device)
    w = probs.argmax(dim=1) == target
    if keep is not None:
        w &= keep.to(update.device)
    rows = update.new_zeros(update.shape).index_add_(0, target, (probs * w[:, None]).to(update.dtype))  # row y: sum
    update.add_(rows.t())  # as column y (adding whole rows: a column-wise index_add_ of [n, K] is strided)
    idx_count.index_add_(0, target, w.long())


class OnlineLabelSmoothing(nn.Module):
    """Online label smoothing: hard cross entropy blended with a cross entropy to per-class soft labels.

    ``S`` (buffer ``supervise``, ``Tensor[K, K]``) holds the soft labels: column ``k`` is the target
    distribution of class k (columns sum to 1). It starts as ``1 - smoothing`` on the diagonal and
    ``smoothing / (K - 1)`` elsewhere (the ``K - 1`` label smoothing of :func:`detloss.k1_targets`).

    Loss per sample, with ``log p = log_softmax(logits)``::

        loss_i = alpha * (-log p_i[y_i]) + (1 - alpha) * (-sum_k S[k, y_i] * log p_i[k])

    reduced by ``reduction`` (``"mean"`` over N, ``"sum"``, ``"none"`` -> ``Tensor[N]``).

    Update rule (Zhang et al. 2021, Algorithm 1): in training mode every call adds the detached softmax
    distribution of each *correctly classified* sample (``argmax == target``) to column ``y`` of the
    accumulator ``update`` and counts it in ``idx_count``. :meth:`next_epoch` (call it once at the end of
    each epoch) normalises each accumulator column to sum 1 and swaps it in as the new column of ``S``;
    a class with no correctly classified sample in that epoch keeps its previous column (the reference
    code would zero it). The accumulators are then reset. In eval mode nothing is accumulated, so
    validation does not leak into the soft labels. ``S`` never receives a gradient.

    State: ``supervise``, ``update`` (``Tensor[K, K]``) and ``idx_count`` (``LongTensor[K]``) are buffers,
    so ``state_dict()`` / ``load_state_dict()`` (a checkpoint) restores the soft labels and a half-finished
    epoch's accumulators. Under DDP (``torch.distributed`` initialised, world size > 1) :meth:`next_epoch`
    sums the accumulators and counts over all ranks before the swap, so every rank gets the same ``S``;
    every rank must call it (collective). With NCCL the buffers must be on the rank's GPU.

    This class is the paper's softmax form. For a per-class sigmoid (BCE) branch use
    :class:`detloss.OnlineLabelSmoothingBCE`: feeding these soft labels (which sum to 1) to BCE and learning
    them from sum-normalised sigmoid scores puts the true class's target below 1 and lets the class scores of
    true positives sink epoch after epoch (see :mod:`detloss.online_smoothing_bce`).

    Args:
        alpha: weight of the hard cross entropy in ``[0, 1]`` (paper: 0.5); 1 ignores ``S``.
        n_classes: ``K >= 2`` (keyword-only).
        smoothing: ``eps`` in ``[0, 1)`` of the initial matrix (the first epoch's soft labels).
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Shapes: ``logits[N, K]`` float, ``target[N]`` long in ``[0, K)``.
    """

    supervise: Tensor
    update: Tensor
    idx_count: Tensor

    def __init__(self, alpha: float = 0.5, *, n_classes: int, smoothing: float = 0.1, reduction: str = "mean") -> None:
        super().__init__()
        self.alpha = check_number(alpha, "alpha", 0.0, 1.0)
        self.n_classes = k = check_num_classes(n_classes, "n_classes")
        self.smoothing = eps = check_eps(smoothing, "smoothing")
        self.reduction = check_reduction(reduction)
        s = torch.full((k, k), eps / (k - 1))
        s.fill_diagonal_(1.0 - eps)
        self.register_buffer("supervise", s)
        self.register_buffer("update", torch.zeros(k, k))
        self.register_buffer("idx_count", torch.zeros(k, dtype=torch.long))

    def soft_targets(self, target: Tensor) -> Tensor:
        """Soft labels of the given classes: ``S[:, target].T``, ``LongTensor[N]`` -> ``Tensor[N, K]`` (rows sum 1)."""
        target = check_class_target(target, self.n_classes)
        return self._soft_targets(target)

    def _soft_targets(self, target: Tensor) -> Tensor:
        return self.supervise.index_select(1, target.to(self.supervise.device)).t()

    @torch.no_grad()
    def accumulate(self, probs: Tensor, target: Tensor) -> None:
        """Add the rows of ``probs`` (``Tensor[N, K]``, each a distribution) whose argmax equals ``target``.

        Row ``i`` goes into accumulator column ``target[i]`` and counts once. Detached; a no-op in eval mode.
        """
        if not isinstance(probs, Tensor) or probs.dim() != 2 or probs.shape[1] != self.n_classes:
            shape = tuple(probs.shape) if isinstance(probs, Tensor) else type(probs).__name__
            raise ValueError(f"probs must be a Tensor [N, {self.n_classes}], got {shape}")
        if not probs.is_floating_point():
            raise ValueError(f"probs must be floating point, got {probs.dtype}")
        if isinstance(target, Tensor) and target.dim() == 1 and target.shape[0] != probs.shape[0]:
            raise ValueError(f"target has {target.shape[0]} entries but probs have {probs.shape[0]} rows")
        self._accumulate(probs, check_class_target(target, self.n_classes))

    def _accumulate(self, probs: Tensor, target: Tensor) -> None:
        if not self.training:
            return
        accumulate_correct(self.update, self.idx_count, probs, target)

    @torch.no_grad()
    def next_epoch(self, group: dist.ProcessGroup | None = None) -> None:
        """Swap the normalised accumulator into ``S`` (classes with a correct sample) and reset the accumulators.

        Under DDP the accumulators and counts are first summed over ``group`` (default: the world).
        """
        if dist.is_available() and dist.is_initialized() and dist.get_world_size(group) > 1:
            dist.all_reduce(self.update, op=dist.ReduceOp.SUM, group=group)
            dist.all_reduce(self.idx_count, op=dist.ReduceOp.SUM, group=group)
        colsum = self.update.sum(dim=0, keepdim=True)
        seen = (self.idx_count > 0)[None, :] & (colsum > 0)
        new = self.update / colsum.clamp_min(torch.finfo(self.update.dtype).tiny)
        self.supervise.copy_(torch.where(seen, new, self.supervise))
        self.update.zero_()
        self.idx_count.zero_()

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        logits, target = check_logits_target(logits, target, self.n_classes)
        logp = F.log_softmax(logits, dim=1)
        if self.training:
            self._accumulate(logp.detach().exp(), target)
        hard = -logp.gather(1, target[:, None]).squeeze(1)
        soft = -(self._soft_targets(target).to(device=logp.device, dtype=logp.dtype) * logp).sum(dim=1)
        return reduce_loss(self.alpha * hard + (1.0 - self.alpha) * soft, self.reduction)

    def extra_repr(self) -> str:
        a, k, eps = self.alpha, self.n_classes, self.smoothing
        return f"alpha={a}, n_classes={k}, smoothing={eps}, reduction={self.reduction!r}"
