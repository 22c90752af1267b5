"""Building blocks of the darknet tiny detectors.

Every convolution of the darknet tiny cfgs (AlexeyAB darknet ``cfg/yolov3-tiny.cfg``,
``cfg/yolov4-tiny.cfg``) is ``[convolutional] batch_normalize=1 activation=leaky``: a bias-free
convolution with ``pad = size // 2``, batch norm, then leaky ReLU with slope 0.1. The detection
convolutions (1x1, linear, with bias) live in :mod:`models.head`.

All modules take and return ``Tensor[bs, C, H, W]`` feature maps.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LEAKY_SLOPE = 0.1  # darknet "leaky"
# ultralytics yolov5 utils/torch_utils.initialize_weights: BN tuned for small batches from scratch
BN_EPS = 1e-3
BN_MOMENTUM = 0.03


def make_divisible(x: float, divisor: int = 8) -> int:
    """Smallest multiple of ``divisor`` that is >= ``x`` (yolov5's channel rounding for width multipliers)."""
    return max(divisor, int(math.ceil(x / divisor) * divisor))


class ConvBNLeaky(nn.Module):
    """darknet ``[convolutional]`` with ``batch_normalize=1``, ``pad=1``, ``activation=leaky``."""

    def __init__(self, c_in: int, c_out: int, k: int = 3, s: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, k, s, padding=k // 2, bias=False)
        self.bn = nn.BatchNorm2d(c_out, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.act = nn.LeakyReLU(LEAKY_SLOPE, inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.bn(self.conv(x)))


class MaxPoolSame(nn.Module):
    """darknet ``[maxpool] size=2 stride=1``: keeps ``H x W`` by padding one row/column at the bottom/right.

    darknet skips out-of-image positions in the max; replicating the edge gives the same result.
    """

    def forward(self, x: Tensor) -> Tensor:
        return F.max_pool2d(F.pad(x, (0, 1, 0, 1), mode="replicate"), 2, 1)


class CSPTinyBlock(nn.Module):
    """yolov4-tiny's CSP stage (darknet ``cfg/yolov4-tiny.cfg`` layers 2-8, 10-16, 18-24).

    ``x -> conv3x3(c) = a``; ``[route] groups=2 group_id=1`` keeps the second half of ``a``'s channels;
    a chain of 3x3 convs (``c/2`` channels) runs on it; the last two outputs are concatenated
    (``[route] layers=-1,-2``) and fused by a 1x1 conv (``c`` channels) into ``f``; the block returns
    ``cat(a, f)`` (``[route] layers=-6,-1``, ``2c`` channels) and ``f`` (the stride-16 level taps it).

    Args:
        c_in: input channels; c: channels of the first conv (even).
        n_inner: number of 3x3 convs in the chain (2 in the published model; >= 2; depth multiplier).
    """

    def __init__(self, c_in: int, c: int, n_inner: int = 2) -> None:
        super().__init__()
        if c % 2 or n_inner < 2:
            raise ValueError(f"CSPTinyBlock needs an even channel count and >= 2 inner convs, got c={c}, n={n_inner}")
        h = c // 2
        self.c_out = 2 * c
        self.conv1 = ConvBNLeaky(c_in, c, 3)
        self.inner = nn.ModuleList(ConvBNLeaky(h, h, 3) for _ in range(n_inner))
        self.fuse = ConvBNLeaky(c, c, 1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        a = self.conv1(x)
        y = a.chunk(2, dim=1)[1]  # route groups=2 group_id=1
        prev = y
        for m in self.inner:
            prev, y = y, m(y)
        f = self.fuse(torch.cat((y, prev), 1))  # route -1,-2: newest first, as darknet
        return torch.cat((a, f), 1), f
