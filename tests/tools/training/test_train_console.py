"""Trainer: val losses from the single inference pass equal a separate loss pass; the terminal summary."""

from __future__ import annotations

import pytest
import torch
from builders import make_trainer
from builders import train_args as args
from torch.utils.data import DataLoader

from data.datasets import collate_fn
from tools import train


def _second_pass_losses(tr) -> list[float]:
    """The old way: a separate pass with the body in eval mode (BN frozen) and the head returning raw logits."""
    model = tr.ema.ema.eval()
    model.head.train()
    tr.loss_fn.eval()
    total, n = torch.zeros(3), 0
    loader = DataLoader(tr.val_ds, batch_size=tr.batch * 2, shuffle=False, collate_fn=collate_fn)
    with torch.no_grad():
        for imgs, targets, _, _ in loader:
            total += tr.loss_fn(model(imgs.float() / 255), targets)[1]
            n += 1
    model.head.eval()
    tr.loss_fn.train()
    return (total / n).tolist()


def test_single_pass_val_losses_equal_a_second_pass(tiny_data, tmp_path):
    tr = make_trainer(tiny_data, tmp_path, "--label-smoothing", "0.1")
    tr.train_epoch(0)
    row = tr.validate()
    want = _second_pass_losses(tr)
    got = [row["val/box_loss"], row["val/obj_loss"], row["val/cls_loss"]]
    assert got == pytest.approx(want, rel=1e-5, abs=1e-7)
    assert all(v > 0 for v in got)


def test_terminal_shows_header_val_line_and_summary(tiny_data, tmp_path, capsys):
    run = train.main(args(tiny_data, tmp_path, "--epochs", "2"))
    out = capsys.readouterr().out
    assert "box_loss" in out and "Instances" in out  # the progress bar's column header
    val_lines = [ln for ln in out.splitlines() if ln.split()[:1] == ["all"]]
    assert len(val_lines) >= 3  # one per validation (2 epochs) plus the final table's
    images = int(val_lines[0].split()[1])
    assert images == 8
    assert "epochs completed in" in out and "best epoch" in out
    assert str(run / "weights" / "best.pt") in out and f"results saved to {run}" in out
    assert "autoanchor:" in out


def test_best_f1_pr_reads_best_f1_point():
    import numpy as np

    from tools.evaluation.coco import best_f1_pr

    prec = -np.ones((10, 101, 2))
    prec[0, :, 0] = 1.0  # class 0: perfect up to recall 1
    pr = best_f1_pr(prec)
    assert pr[0] == (1.0, 1.0)
    assert pr[1][0] != pr[1][0]  # class 1 has no ground truth: nan


def test_nominal_batch_keeps_small_datasets_stepping():
    from tools.training.optim import nominal_batch

    assert nominal_batch(600, 16) == 16  # the demo: one step a batch, 38 steps an epoch (yolov5's 64: 9)
    assert nominal_batch(100_000, 16) == 64  # large data: yolov5's nominal batch
    assert nominal_batch(1600, 16) == 40
    assert nominal_batch(10, 32) == 32  # never below the batch


def test_auto_optimizer_rule():
    from tools.training.hyp import DEFAULT_HYP
    from tools.training.optim import resolve_optimizer

    assert resolve_optimizer("auto", DEFAULT_HYP, 600, 16, 25, nc=6) == ("AdamW", 0.002, 0.9)
    assert resolve_optimizer("auto", DEFAULT_HYP, 500, 16, 40, nc=10) == ("AdamW", round(0.02 / 14, 6), 0.9)
    # more than 10k optimizer steps (at the nominal batch 64): yolov5's SGD with the hyp values
    assert resolve_optimizer("auto", DEFAULT_HYP, 120_000, 16, 100, nc=80) == ("SGD", 0.01, 0.937)
    assert resolve_optimizer("Adam", DEFAULT_HYP, 600, 16, 25, nc=6) == ("Adam", 0.01, 0.937)
