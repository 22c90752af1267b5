"""The training step's mixed precision (``--amp``, on by default): fp16 on CUDA, bf16 on a CPU that computes it.

CUDA: fp16 autocast with a gradient scaler (yolov5's AMP). CPU: bf16 autocast runs the convolutions through
oneDNN's bf16 kernels, which need the AVX512-BF16 or AMX-BF16 instructions (Intel Cooper Lake and Sapphire Rapids
and later, AMD Zen 4 and later); without them bf16 is emulated and slower than fp32, so such a CPU trains in fp32.
bf16 keeps fp32's exponent range, so it needs no loss scaling. The loss always computes in fp32
(:mod:`detloss`: predictions are upcast at its boundary); batch norm runs in fp32 under autocast.
"""

from __future__ import annotations

import torch

__all__ = ["autocast_dtype", "cpu_has_native_bf16", "describe_precision"]


def cpu_has_native_bf16() -> bool:
    """Whether this CPU has bf16 dot-product instructions (AVX512-BF16 or AMX tiles), as torch's CPU build sees it."""
    cpu = getattr(torch, "cpu", None)
    checks = (getattr(cpu, "_is_avx512_bf16_supported", None), getattr(cpu, "_is_amx_tile_supported", None))
    return any(bool(f()) for f in checks if f is not None)


def autocast_dtype(device: torch.device, amp: bool) -> torch.dtype | None:
    """The autocast dtype of a training step on ``device`` (None: fp32 throughout)."""
    if not amp:
        return None
    if device.type == "cuda":
        return torch.float16
    if device.type == "cpu" and cpu_has_native_bf16():
        return torch.bfloat16
    return None


def describe_precision(device: torch.device, amp: bool) -> str:
    """One line for the terminal: what precision the step runs in and why."""
    dtype = autocast_dtype(device, amp)
    if dtype is torch.float16:
        return "mixed precision: fp16 autocast with a gradient scaler (CUDA; --no-amp for fp32)"
    if dtype is torch.bfloat16:
        return "mixed precision: bf16 autocast (this CPU computes bf16 natively; --no-amp for fp32)"
    if not amp:
        return "precision: fp32 (--no-amp)"
    return "precision: fp32 (this CPU has no native bf16, where bf16 autocast would be slower)"
