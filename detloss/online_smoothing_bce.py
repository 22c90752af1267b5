"""Online label smoothing for a per-class sigmoid (BCE) class branch, as in YOLO heads.

Zhang et al. 2021 ("Delving Deep into Label Smoothing", arXiv 2011.12562) learn, for each class y, a soft label:
the mean softmax distribution of the correctly classified training samples of class y in the previous epoch.
That is a *distribution* over classes. A YOLO head has K independent sigmoids. Feeding those through a
sum-to-1 normalisation and using the result as BCE targets would make the true class's target
``alpha + (1 - alpha) * p_y / sum_k p_k``, below 1 whenever any other score is above 0; the model learns that
lower target, the next epoch's statistic is lower again, and the class scores of true positives sink epoch
after epoch (docs/notes.md, "detloss/online_smoothing_bce.py", has what that did in a run).

This adaptation keeps the per-class binary semantics of BCE. With YOLO's smoothed pair
``(cp, cn) = (1 - eps/2, eps/2)`` (:func:`detloss.smooth_BCE`), the target row of a positive of class y is::

    t = cn + (cp - cn) * m,    m = alpha * onehot(y) + (1 - alpha) * s_y

where ``s_y`` (column y of the buffer ``supervise``, ``Tensor[K, K]``) is a learned per-class similarity in
[0, 1] with ``s_y[y] = 1``. So every target lies in ``[cn, cp]``, the true class's target is exactly ``cp``
(what the ``"yolo"`` kind gives at the same eps, so true-positive scores are pulled to the same level), and
another class k is raised from ``cn`` toward ``cp`` by ``(1 - alpha) * s_y[k]`` at most.

Update (once per epoch, :meth:`next_epoch`): over the positives of class y whose sigmoid argmax is y (the
paper's "correctly classified"), ``pbar_y`` is the mean sigmoid score vector, and::

    s_y[k] = clip((pbar_y[k] - cn) / (cp - cn), 0, 1),   s_y[y] = 1

the model's own mean score for class k placed on the ``[cn, cp]`` scale, the BCE counterpart of the paper's
"mean predicted probability of k" (so another class's target is ``cn + (1 - alpha) * (pbar_y[k] - cn)``, a
blend of the plain negative and that mean score). The paper's diagonal (``alpha + (1 - alpha) * pbar_y[y]``)
is *not* used: pinning the true class at ``cp`` is the point. A class with no such positive keeps its column.
``supervise`` starts as the identity, so the first epoch is exactly the ``"yolo"`` kind. If the model fitted
its targets exactly, the next statistic would be ``(1 - alpha) * s_y``: the similarity decays unless the data
keep two classes confused (look-alike classes, noisy labels), as the paper's matrix also shrinks toward the
hard label under a perfect fit. The scale is ``cp - cn``, not the true class's own rise ``pbar_y[y] - cn``:
early in training all scores are similar, so that ratio is near 1 for every class and every negative target
would jump to about 0.5 (docs/notes.md).
Nothing is accumulated in eval mode; ``S`` never gets a gradient; under DDP :meth:`next_epoch` sums the
accumulators over ranks first (collective: every rank calls it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .online_base import OnlineStats
from .smoothing import check_class_target, smooth_BCE


class OnlineLabelSmoothingBCE(OnlineStats):
    """Online label smoothing for sigmoid class scores (see the module docstring for the rule and its reason).

    Args:
        alpha: weight of the plain (``"yolo"``) target in ``[0, 1]``; 1 never uses the learned similarity.
        n_classes: ``K >= 2`` (keyword-only).
        smoothing: ``eps`` in ``[0, 1)`` of the pair ``(cp, cn) = (1 - eps/2, eps/2)``.

    Buffers (checkpointed with ``state_dict()``): ``supervise`` ``Tensor[K, K]`` (column y = ``s_y``),
    ``update`` ``Tensor[K, K]`` (column y = sum of the scores of this epoch's correct positives of class y)
    and ``idx_count`` ``LongTensor[K]``.

    Call: ``loss(logits[N, K], target[N])`` is the mean BCE-with-logits against :meth:`soft_targets`
    (accumulating in training mode). A detector loss uses :meth:`soft_targets` / :meth:`multi_hot_targets`
    and :meth:`accumulate` directly.
    """

    def __init__(self, alpha: float = 0.5, *, n_classes: int, smoothing: float = 0.1) -> None:
        super().__init__(alpha, n_classes, smoothing, lambda k, eps: torch.eye(k))
        self.cp, self.cn = smooth_BCE(self.smoothing)

    def soft_targets(self, target: Tensor) -> Tensor:
        """BCE target rows ``Tensor[N, K]`` of classes ``target[N]``: in [cn, cp], the true class at ``cp``."""
        return self._soft_targets(check_class_target(target, self.n_classes))

    def _soft_targets(self, target: Tensor) -> Tensor:
        """The ``[K, K]`` table of every class's target row (row y from column ``s_y``), then its rows ``target``:
        ``Tensor[N, K]`` row-major (``[N, K]`` passes touch the target rows once, in the order of the logits)."""
        target = target.to(self.supervise.device)
        m = (1.0 - self.alpha) * self.supervise.t()  # row y: (1 - alpha) s_y
        m.diagonal().fill_(1.0)  # alpha * 1 + (1 - alpha) * s_y[y]
        return (self.cn + (self.cp - self.cn) * m).index_select(0, target)

    def multi_hot_targets(self, multi_hot: Tensor) -> Tensor:
        """Targets of positives with several classes (``multi_hot`` ``Tensor[N, K]`` of 0/1): the elementwise
        maximum of the listed classes' rows, so every listed class gets ``cp``."""
        if multi_hot.dim() != 2 or multi_hot.shape[1] != self.n_classes:
            raise ValueError(f"multi_hot must be a Tensor [N, {self.n_classes}], got {tuple(multi_hot.shape)}")
        mh = multi_hot.to(self.supervise)
        soft = (mh[:, None, :] * self.supervise[None]).amax(2)  # [N, K]: max over listed y of s_y[k]
        m = torch.maximum((1.0 - self.alpha) * soft, mh)
        return self.cn + (self.cp - self.cn) * m

    def _new_columns(self) -> tuple[Tensor, Tensor]:
        """``s_y`` from the mean score rows (module docstring); the diagonal pinned at 1."""
        mean = self.update / self.idx_count.clamp_min(1).to(self.update.dtype)[None, :]
        s = ((mean - self.cn) / max(self.cp - self.cn, 1e-6)).clamp(0.0, 1.0)  # cp == cn only at eps = 1 (refused)
        return s.fill_diagonal_(1.0), (self.idx_count > 0)[None, :]

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        if not isinstance(logits, Tensor) or logits.dim() != 2 or logits.shape[1] != self.n_classes:
            shape = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
            raise ValueError(f"logits must be a Tensor [N, {self.n_classes}], got {shape}")
        target = check_class_target(target, self.n_classes)
        if self.training:
            self._accumulate(logits.detach().float().sigmoid(), target)
        t = self._soft_targets(target).to(device=logits.device, dtype=logits.dtype)
        return F.binary_cross_entropy_with_logits(logits, t)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, n_classes={self.n_classes}, smoothing={self.smoothing}, cp={self.cp}, cn={self.cn}"
