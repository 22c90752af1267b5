"""tools/training/precision.py: which autocast dtype a step gets, and a CPU run in bf16 end to end."""

from __future__ import annotations

import torch
from builders import train_args

from models.checkpoint import load_checkpoint
from tools import train
from tools.training import precision
from tools.training.precision import autocast_dtype, describe_precision

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def test_autocast_dtype_rules(monkeypatch):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    assert autocast_dtype(CPU, True) is torch.bfloat16 and autocast_dtype(CUDA, True) is torch.float16
    assert autocast_dtype(CPU, False) is None and autocast_dtype(CUDA, False) is None
    assert "bf16" in describe_precision(CPU, True) and "--no-amp" in describe_precision(CPU, False)
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    assert autocast_dtype(CPU, True) is None  # emulated bf16 would be slower than fp32
    assert "no native bf16" in describe_precision(CPU, True)


def test_cpu_run_in_bf16(tiny_data, tmp_path, monkeypatch, capsys):
    """--amp on a CPU with native bf16 (forced here): the model's convolutions run in bf16, the loss, the optimizer
    and the checkpoint stay fp32, and the run finishes with finite losses."""
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    seen: list[torch.dtype] = []
    orig = torch.nn.Conv2d.forward

    def spy(self, x):
        out = orig(self, x)
        seen.append(out.dtype)
        return out

    monkeypatch.setattr(torch.nn.Conv2d, "forward", spy)
    argv = [a for a in train_args(tiny_data, tmp_path, "--noval") if a != "--no-amp"]
    run = train.main(argv)
    assert "mixed precision: bf16" in capsys.readouterr().out
    assert torch.bfloat16 in seen  # the training forward
    ckpt = load_checkpoint(run / "weights" / "last.pt")
    assert ckpt["opt"]["amp"] is True
    weights = ckpt["ema"] if ckpt.get("ema") is not None else ckpt["model"]
    assert all(v.dtype in (torch.float32, torch.int64) for v in weights.values())
    assert all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point())
