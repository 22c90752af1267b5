"""Reading a yolov5 ``DetectionModel`` for :meth:`detloss.YoloLoss.from_yolov5_model`, by duck typing.

yolov5 is never imported. What ultralytics yolov5 v7.0 ``utils/loss.py`` ``ComputeLoss.__init__`` reads from
the model, and so what is read here:

* ``model.hyp``: the hyp dict, **already scaled** by yolov5's ``train.py`` (``box *= 3/nl``,
  ``cls *= nc/80 * 3/nl``, ``obj *= (imgsz/640)**2 * 3/nl``; ``label_smoothing`` set from ``--label-smoothing``);
* ``model.model[-1]``, the ``Detect`` layer: ``anchors`` ``Tensor[nl, na, 2]`` in **stride units** (yolov5's
  ``check_anchor_order`` and ``DetectionModel.__init__`` divide the YAML's pixel anchors by the strides),
  ``stride`` ``Tensor[nl]`` in pixels, ``nc`` and ``nl``;
* the device of the model's first parameter.

A model wrapped by DDP or DataParallel is read through its ``.module`` (yolov5's ``de_parallel``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .checks import check_int
from .config import scale_yolov5_hyp


@dataclass(frozen=True)
class Yolov5ModelSpec:
    """What the loss needs from a yolov5 model.

    Attributes:
        anchors: ``Tensor[nl, na, 2]`` anchor sizes in **pixels** (the Detect layer's anchors times its strides).
        strides: per level, the stride in pixels.
        num_classes: ``Detect.nc``.
        hyp: the hyp dict the loss is configured from (scaled as yolov5's ``train.py`` does).
        device: where the model's parameters live (the loss's buffers go there too).
    """

    anchors: Tensor
    strides: tuple[float, ...]
    num_classes: int
    hyp: dict[str, Any]
    device: torch.device


def _detect_layer(model: Any) -> Any:
    net = getattr(model, "module", model)  # DDP / DataParallel, as yolov5's de_parallel
    layers = getattr(net, "model", None)
    if layers is None:
        raise ValueError(
            f"expected a yolov5 DetectionModel (with .model, its layers, the last being Detect); "
            f"{type(net).__name__} has no attribute 'model'"
        )
    try:
        detect = layers[-1]
    except (TypeError, IndexError, KeyError) as e:
        raise ValueError(f"model.model[-1] (yolov5's Detect layer) cannot be read: {e!r}") from None
    missing = [k for k in ("anchors", "stride", "nc", "nl") if not hasattr(detect, k)]
    if missing:
        raise ValueError(
            f"model.model[-1] ({type(detect).__name__}) lacks {missing}; expected yolov5's Detect layer "
            "with anchors (stride units), stride, nc and nl"
        )
    return net, detect


def _device(net: Any) -> torch.device:
    params = getattr(net, "parameters", None)
    if params is None:
        return torch.device("cpu")
    first = next(iter(params()), None)
    return torch.device("cpu") if first is None else first.device


def read_yolov5_model(
    model: Any, hyp: Mapping[str, Any] | None = None, scale_imgsz: int | None = None
) -> Yolov5ModelSpec:
    """Anchors (converted to pixels), strides, nc, hyp and device of a yolov5 ``DetectionModel``.

    Args:
        model: a yolov5 ``DetectionModel`` (or anything with ``.hyp`` and ``.model[-1]`` shaped like ``Detect``),
            possibly wrapped in DDP.
        hyp: the hyp dict to use instead of ``model.hyp`` (taken as ``ComputeLoss`` takes it: already scaled).
        scale_imgsz: apply yolov5 ``train.py``'s scaling (:func:`detloss.scale_yolov5_hyp` with the model's
            ``nl`` and ``nc``) for this training image size. Only for a hyp read straight from a YAML file:
            inside yolov5's ``train.py`` ``model.hyp`` is already scaled, and scaling twice is wrong.

    Raises:
        ValueError: the model is not shaped like a yolov5 model, its anchors, strides or counts disagree,
            or it has no ``hyp`` and none is given.
    """
    net, detect = _detect_layer(model)
    nl = check_int(detect.nl, "model.model[-1].nl", lo=1)
    nc = check_int(detect.nc, "model.model[-1].nc", lo=1)
    anchors = torch.as_tensor(detect.anchors).detach().to("cpu", torch.float32)
    strides = torch.as_tensor(detect.stride).detach().to("cpu", torch.float32).flatten()
    if anchors.dim() != 3 or anchors.shape[0] != nl or anchors.shape[2] != 2:
        raise ValueError(f"model.model[-1].anchors must have shape (nl={nl}, na, 2), got {tuple(anchors.shape)}")
    if strides.numel() != nl:
        raise ValueError(f"model.model[-1].stride has {strides.numel()} values for nl={nl} levels")
    if not torch.isfinite(strides).all() or (strides <= 0).any():
        raise ValueError(
            f"model.model[-1].stride must be positive, got {strides.tolist()} (yolov5 sets it when the model "
            "is built; a Detect layer used outside a DetectionModel keeps zeros)"
        )
    if hyp is None:
        hyp = getattr(net, "hyp", None)
        if hyp is None:
            raise ValueError(
                "the model has no .hyp (yolov5's train.py sets model.hyp before ComputeLoss(model)); pass hyp="
            )
    if not isinstance(hyp, Mapping):
        raise ValueError(f"hyp must be a mapping (a yolov5 hyp dict), got {type(hyp).__name__}")
    out = dict(hyp)
    if scale_imgsz is not None:
        out = scale_yolov5_hyp(out, nl=nl, nc=nc, imgsz=check_int(scale_imgsz, "scale_imgsz", lo=1))
    return Yolov5ModelSpec(
        anchors=anchors * strides.view(-1, 1, 1),
        strides=tuple(strides.tolist()),
        num_classes=nc,
        hyp=out,
        device=_device(net),
    )
