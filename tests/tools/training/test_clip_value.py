"""--clip-grad-value: every gradient element within [-V, V] at optimizer.step, and the clipped fraction counted."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from tools import train
from tools.training.clipping import clip_grad_value_counted
from tools.training.config import TrainConfig
from tools.training.ema import ModelEMA
from tools.training.steps import optimizer_step


def test_clip_grad_value_counted_by_hand():
    a, b = torch.nn.Parameter(torch.zeros(3)), torch.nn.Parameter(torch.zeros(2, 2))
    c = torch.nn.Parameter(torch.zeros(2))  # no gradient: skipped
    a.grad, b.grad = torch.tensor([0.5, -2.0, 3.0]), torch.tensor([[0.25, -0.5], [5.0, 1.0]])
    clipped, total = clip_grad_value_counted([a, b, c], 1.0)
    assert float(clipped) == 3 and total == 7  # |g| == V is not clipped
    assert a.grad.tolist() == [0.5, -1.0, 1.0] and b.grad.tolist() == [[0.25, -0.5], [1.0, 1.0]]
    clipped, total = clip_grad_value_counted([a, b], 0.0)  # off
    assert float(clipped) == 0 and total == 7 and a.grad.tolist() == [0.5, -1.0, 1.0]


def bare_trainer(clip_value: float, clip_norm: float) -> SimpleNamespace:
    """A train state with only what ``optimizer_step`` uses: a small model, SGD, a disabled scaler, EMA."""
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    return SimpleNamespace(
        model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        scaler=torch.amp.GradScaler("cuda", enabled=False), ema=ModelEMA(model),
        opt=TrainConfig(clip_grad=clip_norm, clip_grad_value=clip_value), vclip=[0.0, 0],
    )  # fmt: skip


@pytest.mark.parametrize("clip_norm", [0.0, 10.0])
def test_step_bounds_every_gradient_element(clip_norm):
    tr = bare_trainer(0.01, clip_norm)
    seen = []
    real_step = tr.optimizer.step

    def step(*a, **k):
        seen.append(max(float(p.grad.abs().max()) for p in tr.model.parameters()))
        return real_step(*a, **k)

    tr.optimizer.step = step
    x = torch.randn(32, 6, generator=torch.Generator().manual_seed(0)) * 10
    for _ in range(3):
        (tr.model(x) ** 2).sum().backward()
        unclipped = sum(int((p.grad.abs() > 0.01).sum()) for p in tr.model.parameters())
        norm = optimizer_step(tr)
        assert norm is not None and norm > 0
    assert len(seen) == 3 and all(m <= 0.01 for m in seen)
    n_params = sum(p.numel() for p in tr.model.parameters())
    assert tr.vclip[1] == 3 * n_params and 0 < tr.vclip[0] <= tr.vclip[1]
    assert unclipped > 0  # the last step did clip


def test_option_validated():
    with pytest.raises(ValueError, match="--clip-grad-value"):
        train.parse_opt(["--clip-grad-value", "-1"])
    assert train.parse_opt([]).clip_grad_value == 0.0
