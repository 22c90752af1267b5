"""Detector: a darknet tiny body + :class:`models.head.Detect`, selected by name with :func:`build_model`.

Configurations (``MODEL_CFGS``), three anchors a level:

* ``"yolov3-tiny"``: darknet ``cfg/yolov3-tiny.cfg`` (8.9 M parameters, 5.6 GFLOPs at 416, nc 80).
* ``"yolov4-tiny"``: darknet ``cfg/yolov4-tiny.cfg`` (6.1 M parameters, 6.9 GFLOPs at 416, nc 80).
* ``"yolov4-tiny-n"``: yolov4-tiny at width 0.25 (every channel count / 4), for CPU-sized runs.
* ``"yolov4-tiny-s"``: yolov4-tiny at width 0.5 (channel counts / 2; about 4x the FLOPs of ``-n``).
* ``"yolov4-tiny-3l-s"``: ``-s`` with a third, stride-8 level (:class:`models.darknet_tiny.YoloV4Tiny3lBody`),
  for small objects (8-30 px).

The two-level models (strides 16 and 32) default to darknet's tiny anchors: ``10,14 23,27 37,58`` on stride 16
and ``81,82 135,169 344,319`` on stride 32. (darknet's yolov4-tiny.cfg itself uses ``mask=1,2,3`` on the
stride-16 level, i.e. ``23,27 37,58 81,82``; pass ``anchors=`` to reproduce that.) The three-level model
(strides 8, 16, 32) defaults to yolov5's P3-P5 anchors (ultralytics yolov5 ``models/yolov5s.yaml``):
``10,13 16,30 33,23``, ``30,61 62,45 59,119``, ``116,90 156,198 373,326``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from torch import Tensor, nn

from detloss.checks import check_choice, check_int, check_number
from detloss.decode import DECODE_STYLES
from detloss.validate import parse_anchors

from .darknet_tiny import YoloV3TinyBody, YoloV4Tiny3lBody, YoloV4TinyBody
from .head import Detect

STRIDES = (16.0, 32.0)
STRIDES_3L = (8.0, 16.0, 32.0)
TINY_ANCHORS = ((10, 14, 23, 27, 37, 58), (81, 82, 135, 169, 344, 319))
P3_P5_ANCHORS = ((10, 13, 16, 30, 33, 23), (30, 61, 62, 45, 59, 119), (116, 90, 156, 198, 373, 326))
MAX_STRIDE = 32

_BODIES: dict[str, Callable[[], YoloV3TinyBody | YoloV4TinyBody]] = {
    "yolov3-tiny": lambda: YoloV3TinyBody(width=1.0),
    "yolov4-tiny": lambda: YoloV4TinyBody(width=1.0, depth=1.0),
    "yolov4-tiny-n": lambda: YoloV4TinyBody(width=0.25, depth=1.0),
    "yolov4-tiny-s": lambda: YoloV4TinyBody(width=0.5, depth=1.0),
    "yolov4-tiny-3l-s": lambda: YoloV4Tiny3lBody(width=0.5, depth=1.0),
}
MODEL_CFGS = tuple(_BODIES)
_THREE_LEVEL = frozenset({"yolov4-tiny-3l-s"})


def cfg_strides(cfg: str) -> tuple[float, ...]:
    """The detection strides of a configuration: ``(8, 16, 32)`` for the ``-3l`` models, else ``(16, 32)``."""
    return STRIDES_3L if cfg in _THREE_LEVEL else STRIDES


def default_anchors(cfg: str) -> tuple[tuple[int, ...], ...]:
    """A configuration's default anchors (pixels, one row of ``w, h`` pairs a level); see the module docstring."""
    return P3_P5_ANCHORS if cfg in _THREE_LEVEL else TINY_ANCHORS


class Detector(nn.Module):
    """A YOLO-style detector with two or three detection levels.

    Attributes:
        cfg_name: one of ``MODEL_CFGS``; nc: number of classes; names: ``list[str]`` of length nc.
        strides: ``[16.0, 32.0]`` (``[8.0, 16.0, 32.0]`` for ``-3l``).
        decode: ``"yolov5" | "darknet"``; scale_x_y: float.
        anchors_px: ``Tensor[nl, na, 2]`` anchor ``(w, h)`` in pixels (the head's buffer).

    ``forward(x)``: ``x`` float ``Tensor[bs, 3, H, W]`` in 0..1, H and W multiples of 32. Training mode
    returns per-level logits ``[Tensor[bs, na, H/16, W/16, 5 + nc], Tensor[bs, na, H/32, W/32, 5 + nc]]`` (with
    ``Tensor[bs, na, H/8, W/8, 5 + nc]`` first for ``-3l``);
    eval mode ``Tensor[bs, N, 5 + nc]`` ``[x1, y1, x2, y2 (input pixels), obj, cls scores...]`` (sigmoids), and
    with ``forward(x, raw=True)`` the pair ``(that tensor, the training-mode logits)``.
    """

    def __init__(
        self,
        cfg_name: str,
        nc: int,
        names: Sequence[str],
        anchors_px: Tensor,
        decode: str = "yolov5",
        scale_x_y: float = 1.0,
    ) -> None:
        super().__init__()
        self.cfg_name, self.nc, self.names = cfg_name, nc, list(names)
        self.body = _BODIES[cfg_name]()
        self.head = Detect(self.body.out_channels, nc, anchors_px, cfg_strides(cfg_name), decode, scale_x_y)

    @property
    def anchors_px(self) -> Tensor:
        return self.head.anchors_px

    @property
    def strides(self) -> list[float]:
        return list(self.head.strides)

    @property
    def decode(self) -> str:
        return self.head.decode

    @property
    def scale_x_y(self) -> float:
        return self.head.scale_x_y

    def loss_kwargs(self) -> dict[str, Any]:
        """``dict(anchors=..., strides=..., num_classes=...)`` for ``detloss.YoloLoss(**kw, config=cfg)``.

        The loss config must use the same ``decode`` and ``scale_x_y`` as the model (``self.decode``,
        ``self.scale_x_y``).
        """
        return {"anchors": self.anchors_px.detach().cpu().clone(), "strides": self.strides, "num_classes": self.nc}

    def forward(self, x: Tensor, raw: bool = False) -> list[Tensor] | Tensor | tuple[Tensor, list[Tensor]]:
        """See the class docstring; ``raw=True`` in eval mode returns ``(decoded, per-level logits)``."""
        check_input(x)
        return self.head(self.body(x), raw=raw)

    def extra_repr(self) -> str:
        return f"cfg={self.cfg_name!r}, nc={self.nc}"


def check_input(x: object) -> None:
    """``ValueError`` unless ``x`` is a float ``Tensor[bs >= 1, 3, H, W]`` with H, W positive multiples of 32."""
    if not isinstance(x, Tensor):
        raise ValueError(f"Detector input must be a torch.Tensor [bs, 3, H, W], got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(f"Detector input must be 4-D [bs, 3, H, W], got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"Detector input must be a float tensor scaled to 0..1, got {x.dtype} (divide uint8 by 255)")
    bs, c, h, w = x.shape
    if bs < 1 or c != 3:
        raise ValueError(f"Detector input must be [bs >= 1, 3, H, W], got shape {tuple(x.shape)}")
    if h < MAX_STRIDE or w < MAX_STRIDE or h % MAX_STRIDE or w % MAX_STRIDE:
        raise ValueError(
            f"Detector input H and W must be positive multiples of {MAX_STRIDE}, got {h}x{w} "
            "(letterbox/pad the image to a multiple of 32)"
        )


def build_model(
    cfg: str,
    nc: int,
    names: Sequence[str] | None = None,
    decode: str = "yolov5",
    scale_x_y: float = 1.0,
    anchors: Any = None,
) -> Detector:
    """Build a :class:`Detector` by name.

    Args:
        cfg: one of ``MODEL_CFGS``.
        nc: number of classes (int >= 1).
        names: class names (``nc`` strings); default ``["class0", ...]``.
        decode: ``"yolov5"`` or ``"darknet"``, the box decode of eval mode; use the same in ``LossConfig``.
        scale_x_y: darknet xy scale, finite and >= 1 (yolov4-tiny.cfg uses 1.05).
        anchors: pixels, one row a level: ``[[w, h, w, h, w, h], [...]]``, ``[[[w, h], ...], ...]`` or
            ``Tensor[nl, na, 2]``; default :func:`default_anchors` (``TINY_ANCHORS``, ``P3_P5_ANCHORS`` for ``-3l``).
    """
    check_choice(cfg, "model cfg", MODEL_CFGS)
    check_int(nc, "nc (number of classes)", lo=1)
    if names is None:
        names = [f"class{i}" for i in range(nc)]
    elif isinstance(names, str) or not all(isinstance(n, str) for n in names):
        raise ValueError(f"names must be a list of {nc} strings, got {names!r}")
    elif len(names) != nc:
        raise ValueError(f"names has {len(names)} entries for nc={nc} classes")
    check_choice(decode, "decode style", DECODE_STYLES)
    check_number(scale_x_y, "scale_x_y", lo=1.0)
    a = parse_anchors(default_anchors(cfg) if anchors is None else anchors)
    strides = cfg_strides(cfg)
    if a.shape[0] != len(strides):
        raise ValueError(f"{cfg} has {len(strides)} detection levels (strides {strides}); anchors give {a.shape[0]}")
    return Detector(cfg, nc, list(names), a, decode, float(scale_x_y))
