"""detloss's loss inside yolov5's training loop: the two lines to change in yolov5 v7.0 ``train.py``::

    -from utils.loss import ComputeLoss
    +from detloss import YoloLoss
    ...
    -    compute_loss = ComputeLoss(model)  # init loss class
    +    compute_loss = YoloLoss.from_yolov5_model(model)  # init loss class

This script runs train.py's steps around them on the demo: the hyp scaled by nl, nc and imgsz and set as
``model.hyp``, then ``loss, loss_items = compute_loss(pred, targets)``, ``loss.backward()`` and yolov5's SGD.
With the yolov5 package importable (``pip install yolov5==7.0.14`` and its requirements) ``--cfg yolov5n.yaml``
builds the real model; otherwise a small stand-in with what the loss reads from yolov5's ``DetectionModel``:
``model.hyp`` and ``model.model[-1]``, a Detect layer with anchors in stride units, ``stride``, ``nc``, ``nl``.

    python examples/yolov5_dropin.py                          # 3 epochs on 64 demo images
    python examples/yolov5_dropin.py --label-smoothing-kind online --label-smoothing 0.1
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import torch
import yaml
from example_data import batches, load_split
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from data.demo import ensure_demo  # noqa: E402
from detloss import YoloLoss, scale_yolov5_hyp  # noqa: E402

# yolov5 v7.0 data/hyps/hyp.scratch-low.yaml
HYP = dict(
    lr0=0.01, lrf=0.01, momentum=0.937, weight_decay=0.0005, warmup_epochs=3.0, warmup_momentum=0.8,
    warmup_bias_lr=0.1, box=0.05, cls=0.5, cls_pw=1.0, obj=1.0, obj_pw=1.0, iou_t=0.20, anchor_t=4.0,
    fl_gamma=0.0, hsv_h=0.015, hsv_s=0.7, hsv_v=0.4, degrees=0.0, translate=0.1, scale=0.5, shear=0.0,
    perspective=0.0, flipud=0.0, fliplr=0.5, mosaic=1.0, mixup=0.0, copy_paste=0.0,
)  # fmt: skip
ANCHORS = [[10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119], [116, 90, 156, 198, 373, 326]]  # yolov5n.yaml, P3-P5


class Detect(nn.Module):
    """The attributes of yolov5's ``models/yolo.py`` Detect that the loss reads, and its training output."""

    def __init__(self, nc: int, ch: tuple[int, ...], strides: tuple[int, ...]) -> None:
        super().__init__()
        self.nc, self.nl, self.na, self.no = nc, len(ch), len(ANCHORS[0]) // 2, nc + 5
        self.register_buffer("stride", torch.tensor(strides, dtype=torch.float32))
        anchors = torch.tensor(ANCHORS, dtype=torch.float32).view(self.nl, self.na, 2)
        self.register_buffer("anchors", anchors / self.stride.view(-1, 1, 1))  # as yolov5: stride units
        self.m = nn.ModuleList(nn.Conv2d(c, self.no * self.na, 1) for c in ch)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        out = []
        for conv, x in zip(self.m, xs):
            bs, _, ny, nx = x.shape
            out.append(conv(x).view(bs, self.na, self.no, ny, nx).permute(0, 1, 3, 4, 2).contiguous())
        return out


class StandIn(nn.Module):
    """Conv-BN-SiLU stages to strides 8, 16, 32 and a Detect layer last in ``self.model``, as yolov5 has it."""

    def __init__(self, nc: int) -> None:
        super().__init__()

        def stage(c1: int, c2: int, n: int) -> nn.Sequential:
            layers = [nn.Conv2d(c1 if i == 0 else c2, c2, 3, 2 if i == 0 else 1, 1, bias=False) for i in range(n)]
            return nn.Sequential(*(m for layer in layers for m in (layer, nn.BatchNorm2d(c2), nn.SiLU())))

        self.model = nn.ModuleList([stage(3, 16, 3), stage(16, 32, 2), stage(32, 64, 2), stage(64, 128, 2)])
        self.model.append(Detect(nc, (32, 64, 128), (8, 16, 32)))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        p3 = self.model[1](self.model[0](x))
        p4 = self.model[2](p3)
        return self.model[4]([p3, p4, self.model[3](p4)])


def build_model(cfg: str, nc: int) -> nn.Module:
    if cfg == "stand-in":
        return StandIn(nc)
    if importlib.util.find_spec("yolov5") is None:
        raise SystemExit(f"--cfg {cfg} needs the yolov5 package (pip install yolov5==7.0.14); try --cfg stand-in")
    from yolov5.models.yolo import Model  # the real DetectionModel

    return Model(cfg, ch=3, nc=nc)


def main(argv: list[str] | None = None) -> list[list[float]]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", help="yolov5 data YAML (default: the built-in demo)")
    p.add_argument("--cfg", default="stand-in", help="stand-in, or a yolov5 model YAML such as yolov5n.yaml")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--imgsz", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--max-images", type=int, default=64, help="at most this many training images")
    p.add_argument("--label-smoothing", type=float, default=0.0)
    p.add_argument("--label-smoothing-kind", default="yolo", help="detloss only: yolo, uniform, prior or online")
    p.add_argument("--seed", type=int, default=0)
    opt = p.parse_args(argv)
    torch.manual_seed(opt.seed)
    data = yaml.safe_load(Path(opt.data or ensure_demo()).read_text())
    nc = len(data["names"])
    model = build_model(opt.cfg, nc)
    hyp = scale_yolov5_hyp(HYP, nl=model.model[-1].nl, nc=nc, imgsz=opt.imgsz)  # as yolov5's train.py scales it
    hyp["label_smoothing"] = opt.label_smoothing
    model.nc, model.hyp = nc, hyp
    compute_loss = YoloLoss.from_yolov5_model(model, label_smoothing_kind=opt.label_smoothing_kind)
    optim = torch.optim.SGD(model.parameters(), lr=hyp["lr0"], momentum=hyp["momentum"], nesterov=True)
    imgs, labels, _ = load_split(data, "train", opt.imgsz, opt.max_images)
    history = []
    for epoch in range(opt.epochs):
        model.train()
        mloss = torch.zeros(3)  # running mean of (box, obj, cls), as yolov5 prints it
        for i, (x, targets) in enumerate(batches(imgs, labels, opt.batch_size)):
            loss, loss_items = compute_loss(model(x), targets)  # loss scaled by batch size
            optim.zero_grad()
            loss.backward()
            optim.step()
            mloss = (mloss * i + loss_items) / (i + 1)
        compute_loss.next_epoch()  # the online kind learns here; a no-op otherwise
        history.append(mloss.tolist())
        box, obj, cls = mloss.tolist()
        print(f"epoch {epoch + 1}/{opt.epochs}  box_loss {box:.4f}  obj_loss {obj:.4f}  cls_loss {cls:.4f}")
    return history


if __name__ == "__main__":
    main()
