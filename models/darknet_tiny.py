"""Backbone + neck of YOLOv3-tiny and YOLOv4-tiny, layer for layer as the darknet cfgs.

Both take ``Tensor[bs, 3, H, W]`` (H, W multiples of 32) and return the two features the detection
convolutions read: ``(p4 [bs, c4, H/16, W/16], p5 [bs, c5, H/32, W/32])``; ``out_channels = (c4, c5)``.

Channel counts are the published ones times ``width`` (rounded up to a multiple of 8, as yolov5's
``make_divisible``); ``depth`` scales the number of 3x3 convs inside each yolov4-tiny CSP block
(2 in the published model). ``width = depth = 1`` gives exactly the darknet networks.

:class:`YoloV4Tiny3lBody` adds a stride-8 level for small objects and returns ``(p3, p4, p5)``.

Sources (topology only): AlexeyAB darknet ``cfg/yolov3-tiny.cfg``, ``cfg/yolov4-tiny.cfg`` and
``cfg/yolov4-tiny-3l.cfg``. Layer numbers in the comments are the cfg's.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from detloss.checks import check_number

from .layers import ConvBNLeaky, CSPTinyBlock, MaxPoolSame, make_divisible


def _check_mult(width: float, depth: float) -> None:
    for name, v in (("width", width), ("depth", depth)):
        check_number(v, f"{name} multiplier", 0.0, 4.0, lo_open=True)


class _TinyNeck(nn.Module):
    """The two-level neck darknet's yolov3-tiny and yolov4-tiny share: ``head5`` (3x3 on the stride-32 map), a
    ``lateral`` 1x1 conv + 2x upsample of the same map, concatenated with the stride-16 skip and ``head4`` (3x3).
    The bodies call :meth:`_build_neck` where they built these layers before (the state_dict keys stay)."""

    head5: ConvBNLeaky
    lateral: nn.Sequential
    head4: ConvBNLeaky
    out_channels: tuple[int, ...]

    def _build_neck(self, ch: Callable[[int], int]) -> None:
        self.head5 = ConvBNLeaky(ch(256), ch(512), 3)
        self.lateral = nn.Sequential(ConvBNLeaky(ch(256), ch(128), 1), nn.Upsample(scale_factor=2.0))
        self.head4 = ConvBNLeaky(ch(128) + ch(256), ch(256), 3)
        self.out_channels = (ch(256), ch(512))

    def _neck(self, top: Tensor, skip: Tensor) -> tuple[Tensor, Tensor]:
        """``(p4, p5)`` from the stride-32 map ``top`` (256 channels at width 1) and the stride-16 ``skip``."""
        return self.head4(torch.cat((self.lateral(top), skip), 1)), self.head5(top)


class YoloV3TinyBody(_TinyNeck):
    """darknet ``yolov3-tiny.cfg`` layers 0-14 and 17-21 (everything but the two 1x1 detection convs).

    Only a width multiplier: the network has no repeated blocks for a depth multiplier to scale.
    """

    def __init__(self, width: float = 1.0) -> None:
        super().__init__()
        _check_mult(width, 1.0)

        def ch(c: int) -> int:
            return make_divisible(c * width)

        stages: list[nn.Module] = []
        c_prev = 3
        for i, c in enumerate((16, 32, 64, 128, 256)):  # layers 0-8: conv 3x3 + maxpool 2/2 (pool after 8 below)
            if i:
                stages.append(nn.MaxPool2d(2, 2))
            stages.append(ConvBNLeaky(c_prev, ch(c), 3))
            c_prev = ch(c)
        self.to_p4 = nn.Sequential(*stages)  # layer 8 output, stride 16
        self.to_p5 = nn.Sequential(
            nn.MaxPool2d(2, 2),  # 9
            ConvBNLeaky(ch(256), ch(512), 3),  # 10
            MaxPoolSame(),  # 11: size=2 stride=1
            ConvBNLeaky(ch(512), ch(1024), 3),  # 12
            ConvBNLeaky(ch(1024), ch(256), 1),  # 13
        )
        self._build_neck(ch)  # 14 (-> detection conv 15); 17-19; 20 route -1,8; 21 (-> detection conv 22)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        c8 = self.to_p4(x)
        return self._neck(self.to_p5(c8), c8)


class YoloV4TinyBody(_TinyNeck):
    """darknet ``yolov4-tiny.cfg`` layers 0-28 and 31-35 (everything but the two 1x1 detection convs)."""

    def __init__(self, width: float = 1.0, depth: float = 1.0) -> None:
        super().__init__()
        _check_mult(width, depth)

        def ch(c: int) -> int:
            return make_divisible(c * width)

        n = max(2, round(2 * depth))
        self.stem = nn.Sequential(ConvBNLeaky(3, ch(32), 3, 2), ConvBNLeaky(ch(32), ch(64), 3, 2))  # 0, 1
        self.csp1 = CSPTinyBlock(ch(64), ch(64), n)  # 2-8
        self.csp2 = CSPTinyBlock(self.csp1.c_out, ch(128), n)  # 10-16
        self.csp3 = CSPTinyBlock(self.csp2.c_out, ch(256), n)  # 18-24; its fuse conv (23) feeds the P4 head
        self.pool = nn.MaxPool2d(2, 2)  # 9, 17, 25
        self.to_p5 = nn.Sequential(
            ConvBNLeaky(self.csp3.c_out, ch(512), 3),  # 26
            ConvBNLeaky(ch(512), ch(256), 1),  # 27
        )
        self._build_neck(ch)  # 28 (-> detection conv 29); 31-33; 34 route -1,23; 35 (-> detection conv 36)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        y, _ = self.csp1(self.stem(x))
        y, _ = self.csp2(self.pool(y))
        y, f23 = self.csp3(self.pool(y))
        return self._neck(self.to_p5(self.pool(y)), f23)


class YoloV4Tiny3lBody(YoloV4TinyBody):
    """yolov4-tiny with a third, stride-8 level, after darknet ``cfg/yolov4-tiny-3l.cfg``.

    The stride-16 output ``p4`` goes through a 1x1 conv (64 channels at width 1) and a 2x upsample, is
    concatenated with the fuse conv of the second CSP block (layer 15, 128 channels, stride 8) and a 3x3 conv
    (128) gives ``p3``. Returns ``(p3 [bs, c3, H/8, W/8], p4, p5)``; ``out_channels = (c3, c4, c5)``.
    Objects of 8-30 px fall on the stride-8 level, which the two-level models see only at stride 16.
    """

    def __init__(self, width: float = 1.0, depth: float = 1.0) -> None:
        super().__init__(width, depth)

        def ch(c: int) -> int:
            return make_divisible(c * width)

        self.lateral3 = nn.Sequential(ConvBNLeaky(ch(256), ch(64), 1), nn.Upsample(scale_factor=2.0))
        self.head3 = ConvBNLeaky(ch(64) + self.csp2.fuse.conv.out_channels, ch(128), 3)
        self.out_channels = (ch(128), *self.out_channels)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:  # type: ignore[override]
        y, _ = self.csp1(self.stem(x))
        y, f15 = self.csp2(self.pool(y))
        y, f23 = self.csp3(self.pool(y))
        p4, p5 = self._neck(self.to_p5(self.pool(y)), f23)
        return self.head3(torch.cat((self.lateral3(p4), f15), 1)), p4, p5
