"""Swap YoloLoss's label-smoothing kind and read what it does: the class targets a positive gets, and after a
short training of ``examples/detector.py`` the mAP and the calibration of the detections (``tools/eval.py``).

    python examples/smoothing_kinds.py                                   # the demo: one training per kind
    python examples/smoothing_kinds.py --kinds "eps 0,online 0.1" --epochs 1 --max-images 8

Calibration is read at two operating points: D-ECE over the detections scoring >= 0.25 (what a user keeps) and
>= 0.001 (everything mAP sees); fewer confident detections make the first figure noisier, so its count is shown.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import yaml
from detector import parser, predict, train
from example_data import coco_map, load_split

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from data.demo import ensure_demo  # noqa: E402
from detloss import YoloLoss, smooth_BCE, smooth_BCE_k  # noqa: E402

KINDS = {  # name -> LossConfig fields
    "eps 0": dict(label_smoothing=0.0),
    "yolo 0.1": dict(label_smoothing=0.1, label_smoothing_kind="yolo"),  # (1 - eps/2, eps/2), yolov5's smooth_BCE
    "uniform 0.1": dict(label_smoothing=0.1, label_smoothing_kind="uniform"),  # softmax: (1 - eps + eps/K, eps/K)
    "online 0.1": dict(label_smoothing=0.1, label_smoothing_kind="online"),  # learned from the model's confusions
}


def class_targets(loss_fn: YoloLoss, names: list) -> str:
    """The BCE class-target row of a positive of class 0, read from the loss itself: true class, then others."""
    if loss_fn.ols is not None:  # online: learned once an epoch; the largest raise shows the look-alike class
        row = loss_fn.ols.soft_targets(torch.tensor([0]))[0]
        k = int(row[1:].argmax()) + 1
        return f"{row[0]:.3f} / {row[1:].min():.3f}..{row[k]:.3f} (highest: {names[k]})"
    eps = loss_fn.cfg.label_smoothing
    pos, neg = smooth_BCE_k(eps, loss_fn.nc) if loss_fn.cfg.label_smoothing_kind == "uniform" else smooth_BCE(eps)
    return f"{pos:.3f} / {neg:.3f}"


def main(argv: list[str] | None = None) -> list[dict]:
    p = parser(__doc__)
    p.add_argument("--kinds", default=",".join(KINDS), help=f"comma-separated, of {list(KINDS)}")
    p.set_defaults(project="runs/examples/smoothing_kinds")
    opt = p.parse_args(argv)
    kinds = [k.strip() for k in opt.kinds.split(",")]
    if unknown := [k for k in kinds if k not in KINDS]:
        p.error(f"unknown kind(s) {unknown}; choose from {list(KINDS)}")
    data = yaml.safe_load(Path(opt.data or ensure_demo()).read_text())
    imgs, labels, sizes = load_split(data, "val", opt.imgsz, opt.max_images)
    rows = []
    for kind in kinds:
        print(f"--- {kind}: {KINDS[kind]}")
        model, loss_fn = train(data, opt, **KINDS[kind])
        res = coco_map(predict(model, loss_fn, imgs, sizes), labels, sizes, data["names"], Path(opt.project) / kind)
        at = {f["conf_thres"]: f for f in res["calibration_figures"]}  # D-ECE at eval.py's operating points
        row = dict(kind=kind, targets=class_targets(loss_fn, data["names"]), map=res["stats"][0], map50=res["stats"][1])
        rows.append(row | dict(dece25=at[0.25]["D-ECE"], n25=at[0.25]["n"], dece=at[0.001]["D-ECE"]))
    print("\n| kind | class 0's targets (true / others) | mAP50-95 | mAP50 | D-ECE >= 0.25 (n) | D-ECE >= 0.001 |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['kind']} | {r['targets']} | {r['map']:.4f} | {r['map50']:.4f} | {r['dece25']:.3f} ({r['n25']}) "
              f"| {r['dece']:.3f} |")  # fmt: skip
    return rows


if __name__ == "__main__":
    main()
