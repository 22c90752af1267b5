"""Optional: yolov5n trained a few SGD steps from one seed with yolov5's own ``ComputeLoss(model)`` and with
``YoloLoss.from_yolov5_model(model)``: the same loss at every step and the same weights after.

Runs only where the real yolov5 model code imports (``pip install yolov5==7.0.14`` with its requirements:
pandas, requests, seaborn, ultralytics, ...); yolov5 is never a dependency of detloss.
``tests/detloss/test_yolov5_package.py`` compares the loss values alone and needs only
``pip install yolov5==7.0.14 --no-deps``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from builders import HYP

from detloss import YoloLoss, scale_yolov5_hyp

NC, IMGSZ, BS, STEPS = 3, 128, 4, 3


def _yolov5():
    try:
        import yolov5
        from yolov5.models.yolo import Model
        from yolov5.utils.loss import ComputeLoss
    except Exception as e:  # absent, or one of its many requirements missing or failing at import
        pytest.skip(f"the yolov5 model code does not import here ({type(e).__name__}: {e})")
    return Path(yolov5.__file__).parent / "models" / "yolov5n.yaml", Model, ComputeLoss


def _batch():
    gen = torch.Generator().manual_seed(7)
    x = torch.rand(BS, 3, IMGSZ, IMGSZ, generator=gen)
    n = 12
    wh = torch.rand(n, 2, generator=gen) * 0.4 + 0.05
    xy = wh / 2 + torch.rand(n, 2, generator=gen) * (1 - wh)
    img = torch.arange(n) % BS
    cls = torch.randint(0, NC, (n,), generator=gen)
    return x, torch.cat((img[:, None].float(), cls[:, None].float(), xy, wh), 1)


def _train(cfg, model_cls, make_loss):
    torch.manual_seed(0)
    model = model_cls(str(cfg), ch=3, nc=NC)
    hyp = scale_yolov5_hyp(HYP, nl=model.model[-1].nl, nc=NC, imgsz=IMGSZ)  # as yolov5's train.py
    hyp["label_smoothing"] = 0.1
    model.nc, model.hyp = NC, hyp
    loss_fn = make_loss(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.937, nesterov=True)
    x, targets = _batch()
    losses, items = [], []
    model.train()
    for _ in range(STEPS):
        loss, loss_items = loss_fn(model(x), targets)
        opt.zero_grad()
        loss.sum().backward()
        opt.step()
        losses.append(float(loss.detach().sum()))
        items.append(loss_items.detach().flatten())
    return losses, torch.stack(items), {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_yolov5n_trains_the_same_with_either_loss():
    cfg, model_cls, compute_loss = _yolov5()
    want_losses, want_items, want_state = _train(cfg, model_cls, compute_loss)
    got_losses, got_items, got_state = _train(cfg, model_cls, YoloLoss.from_yolov5_model)
    assert got_losses == pytest.approx(want_losses, rel=1e-5)
    torch.testing.assert_close(got_items, want_items, rtol=1e-5, atol=1e-7)
    assert want_losses[-1] < want_losses[0]  # the steps did something
    assert want_state.keys() == got_state.keys()
    for k in want_state:
        torch.testing.assert_close(got_state[k], want_state[k], rtol=1e-4, atol=1e-6, msg=k)
