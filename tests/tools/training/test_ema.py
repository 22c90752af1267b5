"""The EMA's ramp from the run's length (tools/training/ema.py ema_tau) and the trainer's use of it."""

from __future__ import annotations

import math

import pytest
from builders import make_trainer

from tools.training import trainer as trainer_mod
from tools.training.build import planned_updates
from tools.training.ema import TAU_MAX, ema_tau


def _window(n: int) -> float:
    """The averaging window 1 / (1 - decay) after n updates with tau = ema_tau(n)."""
    return 1.0 / (1.0 - 0.9999 * (1.0 - math.exp(-n / ema_tau(n))))


def test_tau_gives_short_runs_a_tenth_of_the_run_and_long_runs_yolov5s():
    for n in (200, 840, 5000):
        assert n / 11 < _window(n) < n / 9  # a tenth of the run
    assert ema_tau(840) == pytest.approx(840 / math.log(84))
    assert ema_tau(10**6) == TAU_MAX == 2000.0  # long runs: yolov5's ramp unchanged
    assert 1.0 <= ema_tau(1) and ema_tau(0) == 1.0  # degenerate plans stay finite
    taus = [ema_tau(n) for n in range(1, 30000, 97)]
    assert taus == sorted(taus)  # a longer run never averages less


def test_planned_updates_count_optimizer_steps():
    assert planned_updates(98, 16, 1, 120) == 7 * 120
    assert planned_updates(100, 8, 4, 10) == 4 * 10  # 13 batches, 4 a step: 4 steps an epoch (the last partial)


def test_trainer_sets_tau_from_its_plan_and_replans_it_under_time(tiny_data, tmp_path, monkeypatch):
    tr = make_trainer(tiny_data, tmp_path, "--epochs", "40")
    n = len(tr.train_ds)
    assert tr.ema.tau == ema_tau(planned_updates(n, tr.state.opt.batch_size, tr.accumulate, 40))
    monkeypatch.setattr(trainer_mod, "epochs_that_fit", lambda *a: 3)
    tr = make_trainer(tiny_data, tmp_path / "t", "--epochs", "40", "--time", "1", "--noval")
    tr.fit()
    assert tr.state.opt.epochs == 3
    assert tr.ema.tau == ema_tau(planned_updates(n, tr.state.opt.batch_size, tr.accumulate, 3))
