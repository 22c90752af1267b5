"""A detector detloss did not write: torchvision's MobileNetV3-small features (randomly initialised) with a
two-level YOLO head (strides 16, 32), trained with ``detloss.YoloLoss`` and scored by ``tools/eval.py`` (COCO).

    python examples/detector.py                                    # the built-in demo, 160 px, 10 epochs
    python examples/detector.py --data data.yaml --epochs 1 --max-images 16
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import yaml
from example_data import batches, coco_map, load_split
from torch import nn
from torchvision.models import mobilenet_v3_small
from torchvision.ops import batched_nms, box_convert

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # data/ comes from the checkout
from data.demo import ensure_demo  # noqa: E402
from detloss import LossConfig, YoloLoss, decode_grid, scale_yolov5_hyp  # noqa: E402
from detloss.autoanchor import kmean_anchors  # noqa: E402

STRIDES = (16, 32)
HYP = dict(box=0.05, obj=1.0, cls=0.5, cls_pw=1.0, obj_pw=1.0, anchor_t=4.0, fl_gamma=0.0)  # yolov5 scratch-low


def conv(c1: int, c2: int, k: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c1, c2, k, padding=k // 2, bias=False), nn.BatchNorm2d(c2), nn.Hardswish())


class Detector(nn.Module):
    """Backbone P4 (48 ch) and P5 (576 ch), P5 upsampled into P4, one 1x1 output a level: [bs, na, ny, nx, 5+nc]."""

    def __init__(self, nc: int, na: int = 3) -> None:
        super().__init__()
        f = mobilenet_v3_small(weights=None).features
        for m in f.modules():  # torchvision's BN momentum 0.01 suits ImageNet's long runs; short runs need 0.1
            if isinstance(m, nn.BatchNorm2d):
                m.momentum = 0.1
        self.p4, self.p5, self.na, self.no = f[:9], f[9:], na, 5 + nc
        self.n5, self.n4 = conv(576, 128, 1), conv(48 + 128, 96, 3)
        self.out = nn.ModuleList(nn.Conv2d(c, na * self.no, 1) for c in (96, 128))
        for m, s in zip(self.out, STRIDES):  # yolov5's prior: about 8 objects an image, class scores 0.6 / nc
            m.bias.data.view(na, -1)[:, 4] = np.log(8 / (640 / s) ** 2)
            m.bias.data.view(na, -1)[:, 5:] = np.log(0.6 / (nc - 0.99))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        c4 = self.p4(x)
        n5 = self.n5(self.p5(c4))
        n4 = self.n4(torch.cat((c4, nn.functional.interpolate(n5, scale_factor=2.0)), 1))
        outs = [m(t) for m, t in zip(self.out, (n4, n5))]
        return [o.view(o.shape[0], self.na, self.no, *o.shape[2:]).permute(0, 1, 3, 4, 2) for o in outs]


def train(data: dict, opt: argparse.Namespace, **loss_cfg) -> tuple[Detector, YoloLoss]:
    """``loss_cfg``: LossConfig fields on top of the yolov5 hyp (e.g. ``label_smoothing_kind="online"``)."""
    torch.manual_seed(opt.seed)
    imgs, labels, _ = load_split(data, "train", opt.imgsz, opt.max_images)
    nc = len(data["names"])
    anchors = kmean_anchors(torch.cat(labels)[:, 3:] * opt.imgsz, n=6, generations=100).view(2, 3, 2)  # pixels
    hyp = scale_yolov5_hyp(HYP, nl=2, nc=nc, imgsz=opt.imgsz)  # as yolov5's train.py scales it
    loss_fn = YoloLoss(anchors, STRIDES, nc, LossConfig.from_yolov5_hyp(hyp, **loss_cfg))
    model = Detector(nc)
    optim = torch.optim.AdamW(model.parameters(), lr=opt.lr0, weight_decay=5e-4)
    steps = opt.epochs * -(-len(imgs) // opt.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(optim, opt.lr0, total_steps=steps, pct_start=0.15)
    for epoch in range(opt.epochs):
        model.train()
        for x, targets in batches(imgs, labels, opt.batch_size):
            loss, items = loss_fn(model(x), targets)  # loss: (box + obj + cls) * batch size, as yolov5
            optim.zero_grad()
            loss.backward()
            optim.step()
            sched.step()
        loss_fn.next_epoch()  # online label smoothing learns once an epoch (a no-op for the other kinds)
        print(f"epoch {epoch + 1}/{opt.epochs}: box {items[0]:.4f} obj {items[1]:.4f} cls {items[2]:.4f}")
    return model, loss_fn


@torch.no_grad()
def predict(model: Detector, loss_fn: YoloLoss, imgs: torch.Tensor, sizes: list) -> list[dict]:
    """COCO detections (yolov5 val: every class scoring > 0.001, NMS IoU 0.6, 300 an image), original pixels."""
    model.eval()
    dets = []
    for k, (w0, h0) in enumerate(sizes):
        p = model(imgs[k : k + 1].float() / 255)
        xywh = torch.cat([decode_grid(q, a, s).flatten(0, 3) for q, a, s in zip(p, loss_fn.anchors_px, STRIDES)])
        score = torch.cat([(q[..., 4:5].sigmoid() * q[..., 5:].sigmoid()).flatten(0, 3) for q in p])
        i, c = (score > 0.001).nonzero().T
        boxes = box_convert(xywh[i], "cxcywh", "xyxy") * torch.tensor([w0, h0, w0, h0]) / imgs.shape[-1]
        keep = batched_nms(boxes, score[i, c], c, 0.6)[:300]
        for (x1, y1, x2, y2), sc, cl in zip(boxes[keep].tolist(), score[i, c][keep].tolist(), c[keep].tolist()):
            dets.append({"image_id": k + 1, "category_id": cl, "bbox": [x1, y1, x2 - x1, y2 - y1], "score": sc})
    return dets


def parser(description: str | None = __doc__) -> argparse.ArgumentParser:
    """The flags (yolov5's names), shared with the other examples that train this detector."""
    p = argparse.ArgumentParser(description=(description or "").split("\n\n")[0])
    p.add_argument("--data", help="yolov5 data YAML (default: the built-in demo)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--imgsz", type=int, default=160, help="train and val size (a multiple of 32)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr0", type=float, default=0.01)
    p.add_argument("--max-images", type=int, default=10**9, help="at most this many images a split")
    p.add_argument("--label-smoothing", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--project", default="runs/examples/detector", help="where gt.json, predictions.json go")
    return p


def main(argv: list[str] | None = None) -> dict:
    opt = parser().parse_args(argv)
    data = yaml.safe_load(Path(opt.data or ensure_demo()).read_text())
    model, loss_fn = train(data, opt, label_smoothing=opt.label_smoothing)
    imgs, labels, sizes = load_split(data, "val", opt.imgsz, opt.max_images)
    res = coco_map(predict(model, loss_fn, imgs, sizes), labels, sizes, data["names"], Path(opt.project))
    print(f"COCO mAP50-95 {res['stats'][0]:.4f}  mAP50 {res['stats'][1]:.4f}  ({opt.project}/stats.json)")
    return res


if __name__ == "__main__":
    main()
