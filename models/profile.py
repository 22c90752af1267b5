"""Model size: parameter count and FLOPs.

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` on one eval-mode forward pass of a
``[1, 3, H, W]`` zero image: it counts convolutions and matrix products only, a multiply-add as two
FLOPs (darknet's "BFLOPs" convention). Batch norm, activations, pooling, upsampling and the box decode
are not counted; biases are not counted.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter elements (buffers such as BN running stats and anchors are not parameters)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def count_flops(model: nn.Module, imgsz: int | tuple[int, int] = 640) -> int:
    """Convolution/matmul FLOPs (multiply-add = 2) of one ``[1, 3, h, w]`` image; ``imgsz`` = side or (h, w).

    The model is run once in eval mode under ``no_grad`` on its own device and dtype, then put back in
    its previous train/eval mode; no state changes.
    """
    if isinstance(imgsz, int) and not isinstance(imgsz, bool):
        h, w = imgsz, imgsz
    elif isinstance(imgsz, (tuple, list)) and len(imgsz) == 2 and all(isinstance(v, int) for v in imgsz):
        h, w = imgsz
    else:
        raise ValueError(f"imgsz must be an int or (h, w) ints, got {imgsz!r}")
    p = next(iter(model.parameters()), None)
    device = p.device if p is not None else torch.device("cpu")
    dtype = p.dtype if p is not None and p.is_floating_point() else torch.float32
    x = torch.zeros(1, 3, h, w, device=device, dtype=dtype)
    was_training = model.training
    model.eval()
    try:
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            model(x)
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())
