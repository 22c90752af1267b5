"""YoloLoss.from_yolov5_model: read a yolov5-shaped model by duck typing (no yolov5 import).

The stand-in has what yolov5's ``DetectionModel`` has for ``ComputeLoss``: ``model.hyp`` and ``model.model[-1]``, a
Detect layer with anchors in stride units (pixels / stride), ``stride``, ``nc``, ``nl``, and convolutions that
output yolov5's training layout ``[bs, na, ny, nx, 5 + nc]``. The loss it builds is compared with the slow
oracle of the yolov5 rules (``tests/loss_oracle.py``) given the anchors in pixels: value, items, gradients, and
the weights after a few SGD steps from one seed.
"""

from __future__ import annotations

import pytest
import torch
from builders import ANCHORS2, HYP, assert_same, edge_targets, make_targets, step
from loss_oracle import OracleLoss
from torch import nn

from detloss import LossConfig, YoloLoss, scale_yolov5_hyp
from detloss.yolov5_compat import read_yolov5_model

pytestmark = pytest.mark.usefixtures("one_thread")

STRIDES = (16, 32)
NC = 3


class FakeDetect(nn.Module):
    def __init__(self, nc, anchors_px, strides, ch):
        super().__init__()
        self.nc, self.nl, self.no = nc, len(strides), nc + 5
        stride = torch.tensor(strides, dtype=torch.float32)
        self.register_buffer("stride", stride)
        self.register_buffer("anchors", torch.tensor(anchors_px, dtype=torch.float32).view(self.nl, -1, 2))
        self.anchors /= stride.view(-1, 1, 1)  # yolov5 keeps them in stride units
        self.na = self.anchors.shape[1]
        self.m = nn.ModuleList(nn.Conv2d(c, self.na * self.no, 1) for c in ch)

    def forward(self, xs):
        out = []
        for conv, x in zip(self.m, xs):
            y = conv(x)
            bs, _, ny, nx = y.shape
            out.append(y.view(bs, self.na, self.no, ny, nx).permute(0, 1, 3, 4, 2).contiguous())
        return out


class FakeYolov5Model(nn.Module):
    """Two levels (strides 16 and 32) on a 64x64 input."""

    def __init__(self, hyp, nc=NC, anchors_px=ANCHORS2):
        super().__init__()
        s16 = nn.Sequential(nn.Conv2d(3, 8, 4, 4), nn.SiLU(), nn.Conv2d(8, 8, 4, 4), nn.SiLU())
        s32 = nn.Sequential(nn.Conv2d(8, 8, 2, 2), nn.SiLU())
        self.model = nn.ModuleList([s16, s32, FakeDetect(nc, anchors_px, STRIDES, (8, 8))])
        self.hyp = hyp

    def forward(self, x):
        a = self.model[0](x)
        return self.model[2]([a, self.model[1](a)])


def _hyp(nc=NC, **extra):
    return {**scale_yolov5_hyp(HYP, nl=2, nc=nc, imgsz=64), "label_smoothing": 0.1, **extra}


def _targets(bs=2, nc=NC, seed=3):
    gen = torch.Generator().manual_seed(seed)
    return torch.cat((make_targets(bs, 6, nc, gen), edge_targets(bs, nc)))


def test_reads_pixel_anchors_strides_nc_and_hyp():
    model = FakeYolov5Model(_hyp())
    loss = YoloLoss.from_yolov5_model(model)
    torch.testing.assert_close(loss.anchors_px, torch.tensor(ANCHORS2, dtype=torch.float32).view(2, 3, 2))
    assert loss.strides.tolist() == [16.0, 32.0] and loss.nc == NC and loss.nl == 2 and loss.na == 3
    assert loss.cfg == LossConfig.from_yolov5_hyp(_hyp())
    assert loss.cfg.label_smoothing == 0.1


def test_same_numbers_as_the_yolov5_rules():
    """The loss read from the model equals the oracle of yolov5's ComputeLoss built from pixel anchors."""
    model = FakeYolov5Model(_hyp())
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    preds = [p.detach() for p in model(x)]
    targets = _targets()
    want = step(OracleLoss(_hyp(), ANCHORS2, STRIDES, NC), preds, targets)
    got = step(YoloLoss.from_yolov5_model(model), preds, targets)
    assert_same(got, (want[0].reshape(()), want[1], want[2]))


def test_training_steps_match_the_oracle():
    """A few SGD steps from one seed: the loss at each step and the weights after equal the oracle's."""
    targets = _targets()
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    runs = []
    for make_loss in (YoloLoss.from_yolov5_model, lambda m: OracleLoss(m.hyp, ANCHORS2, STRIDES, NC)):
        torch.manual_seed(0)
        model = FakeYolov5Model(_hyp())
        loss_fn = make_loss(model)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        losses = []
        for _ in range(3):
            total, _ = loss_fn(model(x), targets)
            opt.zero_grad()
            total.sum().backward()
            opt.step()
            losses.append(float(total.detach().sum()))
        runs.append((losses, [p.detach().clone() for p in model.parameters()]))
    (got_l, got_w), (want_l, want_w) = runs
    assert got_l == pytest.approx(want_l, rel=1e-5)
    assert got_l[-1] < got_l[0]  # it trains
    for a, b in zip(got_w, want_w):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_hyp_argument_and_scaling_by_hand():
    raw = {**HYP, "label_smoothing": 0.0}
    model = FakeYolov5Model(hyp=None)
    loss = YoloLoss.from_yolov5_model(model, hyp=raw, scale_imgsz=320)
    # nl = 2, nc = 3: box 0.05 * 3/2, cls 0.5 * 3/80 * 3/2, obj 1.0 * (320/640)^2 * 3/2
    assert loss.cfg.box == pytest.approx(0.075)
    assert loss.cfg.cls == pytest.approx(0.028125)
    assert loss.cfg.obj == pytest.approx(0.375)
    unscaled = YoloLoss.from_yolov5_model(model, hyp=raw)  # as ComputeLoss: taken as given
    assert (unscaled.cfg.box, unscaled.cfg.cls, unscaled.cfg.obj) == (0.05, 0.5, 1.0)


def test_cls_scaling_rules():
    hyp = {**HYP, "label_smoothing": 0.0}
    for nc in (1, 6, 80, 365):  # sqrt(nc/80) below 80 classes, yolov5's nc/80 from 80 on; box and obj unchanged
        y5 = scale_yolov5_hyp(hyp, nl=2, nc=nc, imgsz=256)
        sq = scale_yolov5_hyp(hyp, nl=2, nc=nc, imgsz=256, cls_scaling="sqrt")
        assert y5["cls"] == pytest.approx(0.5 * nc / 80 * 1.5)
        assert sq["cls"] == pytest.approx(0.5 * ((nc / 80) ** 0.5 if nc < 80 else nc / 80) * 1.5)
        assert (sq["box"], sq["obj"]) == (y5["box"], y5["obj"])
    for nc, times in ((1, 4), (2, 4), (4, 4), (5, 4), (6, (80 / 6) ** 0.5), (10, 8**0.5), (80, 1), (365, 1)):
        cap = scale_yolov5_hyp(hyp, nl=2, nc=nc, imgsz=256, cls_scaling="sqrt-cap4")  # sqrt, at most 4x yolov5's
        assert cap["cls"] == pytest.approx(0.5 * nc / 80 * 1.5 * times), nc
    with pytest.raises(ValueError, match="cls_scaling 'nc'"):
        scale_yolov5_hyp(hyp, nl=2, nc=6, imgsz=256, cls_scaling="nc")


def test_overrides_and_a_ddp_style_wrapper():
    class Wrapper(nn.Module):  # DDP / DataParallel keep the model in .module
        def __init__(self, module):
            super().__init__()
            self.module = module

    loss = YoloLoss.from_yolov5_model(Wrapper(FakeYolov5Model(_hyp())), label_smoothing_kind="online")
    assert loss.cfg.label_smoothing_kind == "online" and loss.ols is not None and loss.cfg.label_smoothing == 0.1


@pytest.mark.cuda
def test_loss_goes_to_the_model_device():
    model = FakeYolov5Model(_hyp()).cuda()
    loss = YoloLoss.from_yolov5_model(model)
    assert loss.anchors.device.type == "cuda"
    total, items = loss(model(torch.rand(2, 3, 64, 64, device="cuda")), _targets().cuda())
    assert total.device.type == "cuda" and torch.isfinite(total)


def test_bad_models_name_the_problem():
    with pytest.raises(ValueError, match="has no attribute 'model'"):
        read_yolov5_model(nn.Linear(2, 2))
    model = FakeYolov5Model(hyp=None)
    with pytest.raises(ValueError, match="no .hyp"):
        read_yolov5_model(model)
    with pytest.raises(ValueError, match="hyp must be a mapping"):
        read_yolov5_model(model, hyp=[0.05])
    with pytest.raises(ValueError, match="unknown yolov5 hyp key"):
        YoloLoss.from_yolov5_model(model, hyp={**HYP, "boxx": 1.0})
    model.model[-1].stride.zero_()
    with pytest.raises(ValueError, match="stride must be positive"):
        read_yolov5_model(model, hyp=HYP)
    model = FakeYolov5Model(_hyp())
    model.model[-1].anchors = torch.ones(3, 3, 2)
    with pytest.raises(ValueError, match=r"anchors must have shape \(nl=2, na, 2\)"):
        read_yolov5_model(model)
    model.model.append(nn.Identity())  # the last layer is not Detect
    with pytest.raises(ValueError, match="lacks"):
        read_yolov5_model(model)
    model = FakeYolov5Model(_hyp())
    model.model[-1].nc = 2.0
    with pytest.raises(ValueError, match="nc must be an int"):
        read_yolov5_model(model)
