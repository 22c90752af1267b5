"""--time: the epochs that fit a wall-clock budget, the re-planned schedule, and the trainer following both."""

from __future__ import annotations

import csv

import pytest
import torch
from builders import train_args as args

from models.checkpoint import load_checkpoint
from tools import train
from tools.training import trainer as trainer_mod
from tools.training.budget import epochs_that_fit, replan_schedule
from tools.training.optim import lr_lambda


def test_epochs_that_fit_round_down_and_keep_what_is_done():
    assert epochs_that_fit(600, 100, 1) == 6
    assert epochs_that_fit(650, 200, 2) == 6  # 100 s an epoch: 6.5 -> 6
    assert epochs_that_fit(600, 700, 7) == 7  # over budget: never fewer than the epochs trained
    assert epochs_that_fit(600, 0.0, 1) == 1
    for bad in ((0, 1, 1), (10, -1, 1), (10, 1, 0), (float("nan"), 1, 1)):
        with pytest.raises(ValueError, match="budget"):
            epochs_that_fit(*bad)


def test_replan_sets_the_new_schedule_at_the_current_epoch():
    w = [torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))]
    opt = torch.optim.SGD([{"params": [w[0]], "lr": 0.1}, {"params": [w[1]], "lr": 0.01}])
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(10, 0.01, False))
    for _ in range(3):
        opt.step()
        sched.step()
    short = lr_lambda(5, 0.01, False)
    replan_schedule(sched, short)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.1 * short(3), 0.01 * short(3)])
    assert sched.get_last_lr() == pytest.approx([0.1 * short(3), 0.01 * short(3)])
    opt.step()
    sched.step()
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.1 * short(4), 0.01 * short(4)])


def _epochs(run) -> list[int]:
    with open(run / "results.csv") as f:
        r = csv.reader(f)
        next(r)
        return [int(float(row[0])) for row in r]


def test_trainer_follows_the_replanned_epochs(tiny_data, tmp_path, monkeypatch, capsys):
    plans = iter([3, 3, 3])
    monkeypatch.setattr(trainer_mod, "epochs_that_fit", lambda *a: next(plans))
    run = train.main(args(tiny_data, tmp_path, "--epochs", "10", "--time", "1", "--close-mosaic", "1", "--noval"))
    out = capsys.readouterr().out
    assert _epochs(run) == [0, 1, 2]
    ckpt = load_checkpoint(run / "weights" / "last.pt")
    assert ckpt["opt"]["epochs"] == 3 and ckpt["epoch"] == 2
    assert "time budget 1 h: 3 epochs fit" in out and "closing mosaic: the last 1 epochs" in out
    lf = lr_lambda(3, ckpt["hyp"]["lrf"], False)
    assert ckpt["scheduler"]["last_epoch"] == 3
    assert ckpt["optimizer"]["param_groups"][0]["lr"] == pytest.approx(ckpt["hyp"]["lr0"] * lf(3))
    with open(run / "results.csv") as f:
        assert float(list(csv.DictReader(f, skipinitialspace=True))[-1]["metrics/mAP_0.5:0.95"]) >= 0  # final val


def test_a_budget_shorter_than_one_epoch_trains_one(tiny_data, tmp_path):
    run = train.main(args(tiny_data, tmp_path, "--epochs", "4", "--time", "0.000001", "--noval"))
    assert _epochs(run) == [0]
    assert load_checkpoint(run / "weights" / "last.pt")["opt"]["epochs"] == 1
    with pytest.raises(ValueError, match="--time"):
        train.main(args(tiny_data, tmp_path, "--time", "-1"))
