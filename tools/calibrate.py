"""Fit a post-hoc confidence calibrator on a split that is not the evaluation split; write a checkpoint carrying it.

    python tools/calibrate.py --weights runs/train/exp/weights/last.pt --method isotonic [--per-class]
                              [--data D] [--cal-split SPLIT | --holdout 0.2 --split-seed 0] [--conf-thres 0.001]

The model is run on the calibration images (yolov5 val settings: NMS IoU 0.6, max 300 detections, detections
with confidence >= ``--conf-thres``); each detection is labelled 1 when it matches a ground truth of its class at
IoU >= 0.5 (greedy COCO-style matching, ``tools/evaluation/calibration.py``) and 0 otherwise, and the
calibrator (``tools/evaluation/calibrators.py``: temperature, Platt or isotonic, optionally per class) is fitted
on those pairs. Images: the split named by ``--cal-split`` (e.g. a ``calib`` key of the data YAML), or else a
seeded ``--holdout`` fraction of the train split. A model trained on all of train has seen those images, so its
detections there are more confident and more often right than on new images: hold the part out of training
(``experiments/label_smoothing/study.py`` does) or pass a split of unseen images.

The new checkpoint (default ``<weights stem>-cal.pt`` next to the weights) is the old one plus ``"calibrator"``;
``tools/eval.py`` then reports the figures before and after, and inference outputs calibrated scores.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script: make the checkout importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data.split import holdout_split  # noqa: E402
from tools.evaluation.calibrators import METHODS, Calibrator, fit_calibrator  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="calibrate.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", required=True, help="checkpoint to calibrate")
    p.add_argument("--data", default=None, help="data YAML (default: the built-in demo dataset)")
    p.add_argument("--method", choices=METHODS, default="isotonic")
    p.add_argument("--per-class", action="store_true", help="one map per class (global map for rare classes)")
    p.add_argument("--cal-split", default=None, help="split of the data YAML to fit on (default: part of train)")
    p.add_argument("--holdout", type=float, default=0.2, help="fraction of train to fit on without --cal-split")
    p.add_argument("--split-seed", type=int, default=0, help="seed of the held-out part of train")
    p.add_argument("--conf-thres", type=float, default=0.001, help="fit on detections with confidence >= this")
    p.add_argument("--iou-thres", type=float, default=0.6, help="NMS IoU threshold")
    p.add_argument("--max-det", type=int, default=300)
    p.add_argument("--imgsz", type=int, default=None, help="default: the checkpoint's training size")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default="", help="cpu or a CUDA index (default: CUDA if available)")
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--out", default=None, help="output checkpoint (default: <weights stem>-cal.pt beside it)")
    args = p.parse_args(argv)
    if not 0.0 <= args.conf_thres < 1.0:
        p.error(f"--conf-thres must be in [0, 1), got {args.conf_thres}")
    return args


def fit_on_model(args: argparse.Namespace) -> tuple[Calibrator, dict]:
    """Run the model on the calibration images and fit; returns the calibrator and the loaded checkpoint."""
    import torch

    from data.datasets import build_dataset, coco_gt_for, collate_fn
    from models.checkpoint import load_checkpoint, load_model
    from tools.evaluation import EvalConfig, check_detections, check_ground_truth, match_detections
    from tools.evaluation.cocojson import class_indices
    from tools.evaluation.evaluate import load_ground_truth
    from tools.inference import checkpoint_imgsz, infer, select_device
    from tools.inference.datasets import ground_truth_from_dataset, resolve_data

    ckpt = load_checkpoint(args.weights)
    imgsz = args.imgsz or checkpoint_imgsz(ckpt)
    device = select_device(args.device)
    model = load_model(ckpt, map_location=device)
    data = resolve_data(args.data)[0]
    split = args.cal_split or "train"
    ds = build_dataset(data, split, imgsz, augment=False)
    gt_src = coco_gt_for(data, split)  # the split's COCO JSON when it has one (crowd flags), else its labels
    gt = load_ground_truth(gt_src)[0] if gt_src is not None else check_ground_truth(ground_truth_from_dataset(ds))
    subset: torch.utils.data.Dataset
    if args.cal_split:
        subset, source = ds, f"split {args.cal_split!r}"
    else:
        held = holdout_split(len(ds), args.holdout, args.split_seed)[1]
        subset = torch.utils.data.Subset(ds, held)
        source = f"{len(held)} held-out train images (fraction {args.holdout:g}, seed {args.split_seed})"
        print(f"calibrate.py: fitting on {source}; if the model trained on them its scores there are optimistic")
    loader = torch.utils.data.DataLoader(subset, batch_size=args.batch_size, num_workers=args.workers,
                                         collate_fn=collate_fn)  # fmt: skip
    config = EvalConfig(conf_thres=args.conf_thres, iou_thres=args.iou_thres, max_det=args.max_det)
    out = infer(model, loader, device, config, ds.cat_ids)
    dt = check_detections(out.results, gt, "<calibration detections>")
    labels = match_detections(gt, dt, 0.5, out.image_ids)
    keep = labels >= 0
    if not keep.any():
        raise ValueError(f"the model made no detections with confidence >= {args.conf_thres:g} on {source}")
    scores = np.array([d["score"] for d in dt])[keep]
    cls = class_indices(dt, ds.cat_ids)[keep]
    info = {"source": source, "conf_thres": args.conf_thres, "iou_thres": 0.5, "images": len(out.image_ids)}
    cal = fit_calibrator(scores, labels[keep], args.method, cls, args.per_class, info=info)
    return cal, ckpt


def main(argv: list[str] | None = None) -> Path:
    """Fit, print what was fitted and write the calibrated checkpoint; returns its path."""
    from models.checkpoint import write_checkpoint

    args = parse_args(argv)
    cal, ckpt = fit_on_model(args)
    weights = Path(args.weights)
    out = Path(args.out) if args.out else weights.with_name(weights.stem + "-cal.pt")
    if out.resolve() == weights.resolve():
        raise ValueError(f"--out {out} would overwrite the input weights; pick another path")
    write_checkpoint(out, {**ckpt, "calibrator": cal.state()})
    print(f"calibrator: {cal.describe()} ({cal.info['positives']} correct)")
    print(f"calibrated checkpoint written to {out}")
    return out


if __name__ == "__main__":
    from tools.cli.errors import run_script

    run_script("calibrate.py", main)
