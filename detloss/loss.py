"""YoloLoss: objectness, class and box losses of anchor-based YOLO heads (v3, v4, v5).

Built from plain arguments (anchors, strides, number of classes, a :class:`LossConfig`), never from
a model. Semantics of the default preset follow ultralytics yolov5 v7.0 ``utils/loss.ComputeLoss``
(rule by rule: ``docs/loss.md``); the darknet presets follow AlexeyAB darknet ``yolo_layer.c``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from .assign import LevelTargets, assign_darknet, assign_yolov5
from .checks import check_int
from .config import LossConfig, yolov5_balance
from .grad_buffer import GradBuffers
from .ignore import check_ignore_shape, check_targets_and_ignore, overlap_mask
from .level import ClassRule, level_terms
from .multilabel import first_rows_only, merge_rows
from .online_smoothing_bce import OnlineLabelSmoothingBCE
from .terms import ClassTargets, class_targets
from .validate import check_preds, check_targets_shape, check_targets_values, parse_anchors


class YoloLoss(nn.Module):
    """YOLO detection loss.

    Args:
        anchors: per level, anchor sizes in **pixels**: ``[[10, 14, 23, 27, 37, 58], ...]`` (yolov5 YAML
            form), ``[[[10, 14], ...], ...]`` or ``Tensor[nl, na, 2]``.
        strides: per level, the stride in pixels (e.g. ``(8, 16, 32)``).
        num_classes: number of classes ``nc`` (>= 1). With ``nc == 1`` there is no class term.
        config: a :class:`LossConfig` (default: the yolov5 preset).
        class_prior: ``Tensor[nc]`` class frequencies summing to 1, for ``label_smoothing_kind="prior"``.

    Class targets of positives by ``config.label_smoothing_kind`` (eps = ``config.label_smoothing``):
    ``"yolo"`` ``(1 - eps/2, eps/2)`` (yolov5 ``smooth_BCE``); ``"uniform"`` ``(1 - eps + eps/K, eps/K)``;
    ``"prior"`` ``(1 - eps) * onehot + eps * class_prior``; ``"online"``: online label smoothing (Zhang et al.
    2021) adapted to the per-class sigmoid BCE of YOLO heads (:mod:`detloss.online_smoothing_bce`): the target
    row of a positive of class y is ``cn + (cp - cn) * (alpha * onehot(y) + (1 - alpha) * s_y)`` with the
    ``"yolo"`` pair ``(cp, cn)``, ``alpha = config.ols_alpha`` and a learned per-class similarity ``s_y`` in
    [0, 1] with ``s_y[y] = 1`` (``self.ols``): targets stay in ``[cn, cp]`` and the true class's is ``cp``.
    ``s_y`` is updated from the sigmoid scores of correctly classified positives, in training mode only; call
    :meth:`next_epoch` at each epoch end.

    One implementation (:mod:`detloss.level`) for every preset, smoothing kind, ignore region and multi-label row;
    the only choice is how the BCE terms are computed (``config.impl``): ``"fused"`` (``"auto"``, the default;
    :mod:`detloss.fused`): in closed form, each level's gradient written once, into memory reused across steps on
    CPU (see :mod:`detloss.grad_buffer`; :meth:`release_buffers` frees it), predictions of any strides, e.g. the
    head's native layout through :func:`detloss.fused.head_view`; ``"reference"``: plain autograd (yolov5
    ``ComputeLoss``'s shape, differentiable twice). With dense positives (``config.positives``) nothing reads a
    device value on the host (darknet's ``ignore_thresh`` and ignore regions then compare every prediction with every
    box of its image).

    Call: ``total, items = loss(preds, targets)`` with ``preds`` a list of ``Tensor[bs, na, ny, nx, 5 + nc]``
    raw logits (channels ``[tx, ty, tw, th, obj, cls...]``) and ``targets`` ``Tensor[n, 6]``
    ``[image, class, cx, cy, w, h]`` normalised to the input image. ``total`` is a 0-d fp32 tensor
    ``(box*lbox + obj*lobj + cls*lcls) * bs``; ``items`` the detached ``Tensor[3]`` ``(box, obj, cls)``.

    Ignore regions: ``loss(preds, targets, ignore)`` with ``ignore`` ``Tensor[m, 5]`` ``[image, cx, cy, w, h]``
    normalised (validated like targets; ``None`` or ``m == 0``: exactly the numbers without it). A prediction whose
    detached decoded box has intersection over its own area ``>= config.ignore_iof`` with a region of its image
    gets no objectness loss (neither negative nor positive; the mean still runs over all cells); positives of
    targets keep theirs. Rows of class -1 in a data batch are regions: :func:`detloss.split_ignore`.
    With ``config.multi_label`` rows with one box and several classes are one positive with a multi-hot class
    target (:mod:`detloss.multilabel`; online smoothing: every listed class at ``cp``, the elementwise maximum of
    their learned rows elsewhere, learned from single-class positives only).
    """

    anchors: Tensor
    anchors_px: Tensor
    strides: Tensor
    balance: Tensor
    cls_pw: Tensor
    obj_pw: Tensor

    def __init__(
        self,
        anchors: Any,
        strides: Sequence[float],
        num_classes: int,
        config: LossConfig | None = None,
        class_prior: Tensor | Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        cfg = LossConfig() if config is None else config
        if not isinstance(cfg, LossConfig):
            raise ValueError(f"config must be a LossConfig, got {type(cfg).__name__}")
        check_int(num_classes, "num_classes", lo=1)
        a = parse_anchors(anchors)
        s = torch.as_tensor(list(strides) if not isinstance(strides, Tensor) else strides, dtype=torch.float32)
        if s.dim() != 1 or s.numel() != a.shape[0]:
            raise ValueError(f"got {s.numel()} strides for {a.shape[0]} anchor levels; give one stride per level")
        if not torch.isfinite(s).all() or (s <= 0).any():
            raise ValueError(f"strides must be positive, got {s.tolist()}")
        self.cfg, self.nc, self.nl, self.na = cfg, num_classes, a.shape[0], a.shape[1]
        self._stride_list: list[float] = s.tolist()
        self.register_buffer("anchors_px", a)
        self.register_buffer("strides", s)
        self.register_buffer("anchors", a / s.view(-1, 1, 1))  # grid units
        self.scales = self._per_level(cfg.scale_x_y, "scale_x_y")
        if isinstance(cfg.balance, tuple):
            bal = self._per_level(cfg.balance, "balance")
        else:
            bal = yolov5_balance(self.nl) if cfg.balance == "yolov5" else (1.0,) * self.nl
        self.register_buffer("balance", torch.tensor(bal, dtype=torch.float32))
        self.ssi = 0
        if cfg.autobalance:
            if 16 not in s.tolist():
                raise ValueError(f"autobalance normalises to the stride-16 level; strides are {s.tolist()}")
            self.ssi = s.tolist().index(16)
        self.register_buffer("cls_pw", torch.tensor([cfg.cls_pw]))
        self.register_buffer("obj_pw", torch.tensor([cfg.obj_pw]))
        self.class_prior: Tensor | None
        if cfg.label_smoothing_kind == "prior":
            self.register_buffer("class_prior", self._check_prior(class_prior))
        elif class_prior is not None:
            raise ValueError("class_prior is only used with label_smoothing_kind='prior'")
        else:
            self.class_prior = None
        self.ols: OnlineLabelSmoothingBCE | None = None
        if cfg.label_smoothing_kind == "online":
            if num_classes < 2:
                raise ValueError("label_smoothing_kind='online' needs num_classes >= 2")
            self.ols = OnlineLabelSmoothingBCE(cfg.ols_alpha, n_classes=num_classes, smoothing=cfg.label_smoothing)
        self.fused = cfg.impl != "reference"  # the closed-form BCE kernel
        self._grad_buffers = GradBuffers()

    def release_buffers(self) -> None:
        """Free the gradient memory the fused path keeps for reuse (it is kept only on CPU)."""
        self._grad_buffers.clear()

    def next_epoch(self) -> None:
        """Epoch-end hook: swaps in online label smoothing's new soft labels (a no-op for the other kinds)."""
        if self.ols is not None:
            self.ols.next_epoch()

    def _per_level(self, value: float | tuple[float, ...], name: str) -> tuple[float, ...]:
        if not isinstance(value, tuple):
            return (float(value),) * self.nl
        if len(value) != self.nl:
            raise ValueError(f"LossConfig.{name} has {len(value)} values for {self.nl} levels")
        return value

    def _check_prior(self, prior: Any) -> Tensor:
        if prior is None:
            raise ValueError("label_smoothing_kind='prior' needs class_prior (Tensor[num_classes] summing to 1)")
        p = torch.as_tensor(prior, dtype=torch.float32).flatten()
        if p.numel() != self.nc:
            raise ValueError(f"class_prior has {p.numel()} values for {self.nc} classes")
        if not torch.isfinite(p).all() or (p < 0).any() or abs(float(p.sum()) - 1.0) > 1e-4:
            raise ValueError(f"class_prior must be non-negative and sum to 1, got sum {float(p.sum()):.6f}")
        return p

    @classmethod
    def from_yolov5_hyp(
        cls, hyp: Mapping[str, Any], anchors: Any, strides: Sequence[float], num_classes: int, **overrides: Any
    ) -> YoloLoss:
        """Build from a yolov5 hyp dict as ``ComputeLoss`` receives it (see :meth:`LossConfig.from_yolov5_hyp`)."""
        return cls(anchors, strides, num_classes, LossConfig.from_yolov5_hyp(hyp, **overrides))

    @classmethod
    def from_yolov5_model(
        cls, model: Any, hyp: Mapping[str, Any] | None = None, scale_imgsz: int | None = None, **overrides: Any
    ) -> YoloLoss:
        """yolov5's ``ComputeLoss(model)`` as a YoloLoss: ``loss, items = loss_fn(p, targets)``, on the model's device.

        Anchors, strides, nc and ``model.hyp`` are read by duck typing (:func:`detloss.yolov5_compat.read_yolov5_model`
        says what and how); ``overrides`` are :class:`LossConfig` fields (e.g. ``label_smoothing_kind="online"``).
        """
        from .yolov5_compat import read_yolov5_model

        m = read_yolov5_model(model, hyp, scale_imgsz)
        return cls.from_yolov5_hyp(m.hyp, m.anchors, m.strides, m.num_classes, **overrides).to(m.device)

    def dense(self, device: torch.device) -> bool:
        """Whether the rows are dense (``config.positives``; ``"auto"``: dense off the CPU)."""
        return self.cfg.positives == "dense" or (self.cfg.positives == "auto" and device.type != "cpu")

    def assign(self, targets: Tensor, grids: Sequence[tuple[int, int]], dense: bool = False) -> list[LevelTargets]:
        """Run the configured target assignment (``no_grad``)."""
        anchors = self.anchors.to(targets.device)
        if self.cfg.assign == "yolov5":
            return assign_yolov5(targets, anchors, grids, self.cfg.anchor_t, dense=dense)
        return assign_darknet(targets, anchors, self._stride_list, grids, self.cfg.iou_thresh, dense=dense)

    def forward(self, preds: Sequence[Tensor], targets: Tensor, ignore: Tensor | None = None) -> tuple[Tensor, Tensor]:
        cfg = self.cfg
        preds = check_preds(preds, self.nl, self.na, self.nc)
        dev = preds[0].device
        check_targets_shape(targets, dev)
        if ignore is not None:
            check_ignore_shape(ignore, dev)
            ignore = ignore if ignore.shape[0] else None  # no regions: the very code path without them
        bs = preds[0].shape[0]
        if cfg.validate_targets:
            if ignore is None:
                check_targets_values(targets, bs, self.nc)
            else:
                check_targets_and_ignore(targets, ignore, bs, self.nc)
        grids = [(p.shape[2], p.shape[3]) for p in preds]
        dense = self.dense(dev)
        merged = merge_rows(targets, self.nc) if cfg.multi_label else None
        if merged is None:
            levels = self.assign(targets, grids, dense)
        elif dense:  # every row a candidate, the non-first group members masked (no sync)
            levels = first_rows_only(self.assign(merged.targets, grids, dense), merged.first)
        else:
            levels = self.assign(merged.targets[merged.first], grids)
        classes = None if self.nc == 1 else self._class_rule(None if merged is None else merged.multi_hot)
        kernel = "fused" if self.fused else "reference"
        with torch.autocast(device_type=dev.type, enabled=False):
            terms = [
                level_terms(p, lt, cfg, self.scales[i], classes, self._ignored(i, p, targets, ignore, dense), kernel,
                            self._grad_buffers, i)
                for i, (p, lt) in enumerate(zip(preds, levels))
            ]  # fmt: skip
        lbox = torch.stack([t[0] for t in terms]).sum()
        lcls = torch.stack([t[2] for t in terms]).sum()
        objs = torch.stack([t[1] for t in terms])
        lobj = (objs * self.balance.to(dev, copy=True)).sum()  # a copy: autobalance updates the buffer in place
        if cfg.autobalance:
            self._autobalance(objs.detach())
        items = torch.stack((lbox * cfg.box, lobj * cfg.obj, lcls * cfg.cls))
        total = items.sum() * bs
        if cfg.check_finite and not bool(torch.isfinite(total)):
            self._raise_non_finite(terms)
        return total, items.detach()

    def _ignored(self, i: int, p: Tensor, targets: Tensor, ignore: Tensor | None, dense: bool) -> Tensor | None:
        """Level ``i``'s cells without objectness loss (unless a positive's): darknet's ``ignore_thresh``, regions."""
        cfg, out = self.cfg, None
        args = (self.anchors[i], cfg.decode, self.scales[i])
        if cfg.ignore_thresh < 1.0 and targets.shape[0]:
            boxes = targets[:, [0, 2, 3, 4, 5]]
            out = overlap_mask(p, boxes, *args, measure="iou", thresh=cfg.ignore_thresh, windowed=not dense)
        if ignore is not None:
            regions = overlap_mask(p, ignore, *args, measure="iof", thresh=cfg.ignore_iof, windowed=not dense)
            out = regions if out is None else out | regions
        return out

    def _class_rule(self, multi_hot: Tensor | None) -> ClassRule:
        """The class targets of a level's rows; online smoothing learns from the sigmoid scores of its positives."""
        cfg = self.cfg

        def rule(logits: Tensor, lt: LevelTargets, dtype: torch.dtype) -> ClassTargets:
            if self.ols is not None and self.training:  # single-class positives teach s_y (tcls validated)
                keep, tcls = lt.valid, lt.tcls
                if multi_hot is not None:
                    rows = multi_hot.index_select(0, lt.tcls)
                    one = rows.sum(1) == 1
                    keep, tcls = one if keep is None else keep & one, rows.argmax(1)
                self.ols._accumulate(logits.float().sigmoid(), tcls, keep)
            eps, kind = cfg.label_smoothing, cfg.label_smoothing_kind
            return class_targets(lt.tcls, self.nc, eps, kind, self.class_prior, multi_hot, self.ols, dtype)

        return rule

    @torch.no_grad()
    def _autobalance(self, objs: Tensor) -> None:
        b = self.balance * 0.9999 + 0.0001 / objs.to(self.balance.device)
        self.balance.copy_(b / b[self.ssi])

    @staticmethod
    def _raise_non_finite(terms: list[tuple[Tensor, Tensor, Tensor]]) -> None:
        for i, t in enumerate(terms):
            for name, v in zip(("box", "obj", "cls"), t):
                if not bool(torch.isfinite(v)):
                    raise FloatingPointError(
                        f"non-finite {name} loss ({float(v.detach())}) at level {i}: check preds[{i}]"
                    )
        raise FloatingPointError("non-finite loss (the gains or the balance are not finite)")

    def extra_repr(self) -> str:
        return f"nl={self.nl}, na={self.na}, nc={self.nc}, strides={self.strides.tolist()}, config={self.cfg}"
