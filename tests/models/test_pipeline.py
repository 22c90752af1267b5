"""models + data + detloss together: one training step of every model on a real demo batch (CPU)."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

from data.datasets import build_dataset, collate_fn
from data.demo import ensure_demo
from data.yaml_io import load_data_yaml
from detloss import LossConfig, YoloLoss, scale_yolov5_hyp
from models import MODEL_CFGS, build_model
from tools.training.hyp import DEFAULT_HYP


@pytest.fixture(scope="module")
def demo_batch(tmp_path_factory):
    data = load_data_yaml(ensure_demo(tmp_path_factory.mktemp("demo"), n_train=8, n_val=4))
    ds = build_dataset(data, "train", 128, augment=True, hyp=DEFAULT_HYP)
    imgs, targets, paths, metas = next(iter(DataLoader(ds, batch_size=4, collate_fn=collate_fn)))
    return imgs, targets, data["names"]


@pytest.mark.parametrize("cfg", MODEL_CFGS)
def test_one_training_step_on_demo_batch(cfg, demo_batch):
    imgs, targets, names = demo_batch
    assert imgs.dtype == torch.uint8 and imgs.shape == (4, 3, 128, 128) and targets.shape[1] == 6
    model = build_model(cfg, len(names), names).train()
    kw = model.loss_kwargs()
    hyp = scale_yolov5_hyp({**DEFAULT_HYP, "label_smoothing": 0.1}, len(kw["strides"]), len(names), 128)
    loss_fn = YoloLoss(**kw, config=LossConfig.from_yolov5_hyp(hyp, decode=model.decode))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    before = [p.detach().clone() for p in model.parameters()]
    total, items = loss_fn(model(imgs.float() / 255), targets)
    total.backward()
    opt.step()
    assert torch.isfinite(total) and (items > 0).all()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
