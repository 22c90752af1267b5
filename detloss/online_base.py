"""What the two online label-smoothing losses share: the per-class statistics of correctly classified samples.

Zhang et al. 2021 ("Delving Deep into Label Smoothing", arXiv 2011.12562, Algorithm 1) learn one soft label per
class from the scores of the training samples of that class that the model classified correctly in the
previous epoch. Both forms here (softmax :class:`detloss.OnlineLabelSmoothing`, sigmoid
:class:`detloss.OnlineLabelSmoothingBCE`) keep the same three buffers, checkpointed with ``state_dict()``:

* ``supervise`` ``Tensor[K, K]``: column ``y`` is what class ``y``'s soft label is made of;
* ``update`` ``Tensor[K, K]``: column ``y`` sums this epoch's score rows of correct samples of class ``y``;
* ``idx_count`` ``LongTensor[K]``: how many such samples each class had.

They differ only in the first ``supervise`` and in how :meth:`OnlineStats._new_columns` turns the accumulators
into new columns. In eval mode nothing is accumulated; ``supervise`` never gets a gradient; under DDP
:meth:`OnlineStats.next_epoch` first sums the accumulators over ranks (a collective: every rank calls it).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.distributed as dist
from torch import Tensor, nn

from .checks import check_eps, check_num_classes, check_number
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


class OnlineStats(nn.Module):
    """Base of the online label-smoothing losses: hyperparameters, the three buffers, accumulation and the
    epoch swap. Subclasses give the first ``supervise`` and implement :meth:`_new_columns`.

    Args:
        alpha: weight in ``[0, 1]`` of the plain target against the learned one.
        n_classes: ``K >= 2``.
        smoothing: ``eps`` in ``[0, 1)``.
        initial: ``Tensor[K, K]``, the first ``supervise``; built from the checked ``(K, eps)``.
    """

    supervise: Tensor
    update: Tensor
    idx_count: Tensor

    def __init__(self, alpha: float, n_classes: int, smoothing: float, initial: Callable[[int, float], Tensor]) -> None:
        super().__init__()
        self.alpha = check_number(alpha, "alpha", 0.0, 1.0)
        self.n_classes = k = check_num_classes(n_classes, "n_classes")
        self.smoothing = check_eps(smoothing, "smoothing")
        self.register_buffer("supervise", initial(k, self.smoothing))
        self.register_buffer("update", torch.zeros(k, k))
        self.register_buffer("idx_count", torch.zeros(k, dtype=torch.long))

    @torch.no_grad()
    def accumulate(self, probs: Tensor, target: Tensor) -> None:
        """Add the rows of ``probs`` (``Tensor[N, K]`` scores) whose argmax equals ``target`` (``LongTensor[N]``)
        to accumulator column ``target[i]``, each counted once. Detached; a no-op in eval mode."""
        if not isinstance(probs, Tensor) or probs.dim() != 2 or probs.shape[1] != self.n_classes:
            shape = tuple(probs.shape) if isinstance(probs, Tensor) else type(probs).__name__
            raise ValueError(f"probs must be a Tensor [N, {self.n_classes}], got {shape}")
        if not probs.is_floating_point():
            raise ValueError(f"probs must be floating point, got {probs.dtype}")
        target = check_class_target(target, self.n_classes)
        if target.shape[0] != probs.shape[0]:
            raise ValueError(f"target has {target.shape[0]} entries but probs have {probs.shape[0]} rows")
        self._accumulate(probs, target)

    def _accumulate(self, probs: Tensor, target: Tensor, keep: Tensor | None = None) -> None:
        """:meth:`accumulate` without the checks; ``keep``: ``BoolTensor[N]`` the rows that count (no host sync)."""
        if self.training:
            accumulate_correct(self.update, self.idx_count, probs, target, keep)

    @torch.no_grad()
    def next_epoch(self, group: dist.ProcessGroup | None = None) -> None:
        """Swap the new columns into ``supervise`` for the classes that had a correct sample this epoch (the
        others keep theirs), then reset the accumulators. Under DDP the accumulators and counts are first summed
        over ``group`` (default: the world)."""
        if dist.is_available() and dist.is_initialized() and dist.get_world_size(group) > 1:
            dist.all_reduce(self.update, op=dist.ReduceOp.SUM, group=group)
            dist.all_reduce(self.idx_count, op=dist.ReduceOp.SUM, group=group)
        new, seen = self._new_columns()
        self.supervise.copy_(torch.where(seen, new, self.supervise))
        self.update.zero_()
        self.idx_count.zero_()

    def _new_columns(self) -> tuple[Tensor, Tensor]:
        """``(new Tensor[K, K], seen BoolTensor[1, K])`` from the (reduced) accumulators."""
        raise NotImplementedError
