"""Evaluate detections COCO-style: an existing results file, or a model on a dataset split.

Results file::

    python tools/eval.py --gt instances_val2017.json --dt results.json [--backend faster] [--json-out out.json]
                         [--plots DIR]

Model (yolov5 ``val.py`` flags and defaults)::

    python tools/eval.py --weights runs/train/exp/weights/best.pt --data data.yaml --imgsz 640 --batch-size 32 \\
                         --conf-thres 0.001 --iou-thres 0.6 --max-det 300 --device 0 --half

Without ``--data`` the model is evaluated on the built-in demo dataset. ``--slice SIZE`` (``--slice-overlap N``)
evaluates the split's images whole by sliced inference (``tools/inference/slicing.py``), e.g. ``--data
datasets/trees/trees.yaml --task val_full --slice 320``. The ground truth is the split's COCO
JSON (``--gt`` overrides it; a yolo-layout split without one is evaluated against its own labels). The model's
COCO results are written to ``<project>/<name>/predictions.json`` (``runs/val/exp``, ``exp2``, ... unless
``--exist-ok``), with the run's pictures (``tools/detection/runplots.py``: confusion matrix, P/R/F1 curves, val
batch 0; ``--noplots`` skips them). ``--weights`` may also be an ONNX export of ``tools/export.py``, run by onnxruntime.

Prints the 12 COCO numbers in cocoapi's layout, a per-class AP table and the detection ECE (see
``tools/evaluation/calibration.py``), then D-ECE, position-aware D-ECE and LaECE at conf >= 0.25 and >= 0.001
with their detection counts (``tools/evaluation/calib_metrics.py``). A checkpoint written by
``tools/calibrate.py`` carries a post-hoc calibrator: the model's scores are calibrated after NMS and the
uncalibrated figures of the same pass are printed too (``--no-calibrator`` skips it).

``--json-out`` writes ``{"stats", "per_class", "calibration", "backend", ...}``; ``--plots DIR`` writes
``PR_curve.png``, ``reliability.png`` and ``reliability_conf<t>.png`` (overall and per class). Bad input
raises a ``ValueError`` naming the file and the problem (exit status 2 from the command line).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the checkout importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools.evaluation.coco import BACKENDS
from tools.evaluation.config import EvalConfig
from tools.evaluation.evaluate import EvalResult, evaluate_results


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="eval.py", description=__doc__.split("\n\n")[0])
    src = p.add_argument_group("results file")
    src.add_argument("--gt", type=str, help="COCO ground-truth JSON (model mode: overrides the split's)")
    src.add_argument("--dt", type=str, help="COCO results JSON to evaluate (a list of detections)")
    _add_model_args(p)
    e = p.add_argument_group("evaluation")
    e.add_argument("--backend", choices=BACKENDS, default="pycocotools", help="COCO evaluator (same numbers)")
    e.add_argument("--json-out", type=str, help="write stats, per-class AP and calibration as JSON")
    e.add_argument("--plots", type=str, metavar="DIR", help="write PR_curve.png and reliability.png to DIR")
    e.add_argument("--coco-max-dets", type=int, default=100,
                   help="detections an image COCO AP ranks (maxDets, 100; raise for crowded images)")  # fmt: skip
    e.add_argument("--calib-bins", type=int, default=10, help="confidence bins of the detection ECE")
    e.add_argument("--calib-conf", type=float, default=0.0, help="detections below this are left out of the ECE")
    e.add_argument("--no-calibrator", action="store_true",
                   help="ignore a post-hoc calibrator stored in the checkpoint (tools/calibrate.py)")  # fmt: skip
    e.add_argument("--reindex-ann-ids", action="store_true", help="renumber GT annotation ids from 1 (fixes id 0)")
    args = p.parse_args(argv)
    if args.dt and args.weights:
        p.error("give either --dt (evaluate a results file) or --weights (evaluate a model), not both")
    if args.dt and not args.gt:
        p.error("--dt needs --gt (the COCO ground truth the results refer to)")
    if not args.dt and not args.weights:
        p.error("give --gt and --dt to evaluate a results file, or --weights to evaluate a model")
    return args


def _add_model_args(p: argparse.ArgumentParser) -> None:
    """The "model" flags: weights, data split, inference size, batching, NMS, device and output folder."""
    m = p.add_argument_group("model")
    m.add_argument("--weights", type=str, help="checkpoint (models.save_checkpoint format) or ONNX export (.onnx)")
    m.add_argument("--data", type=str, help="dataset YAML (default: the built-in demo dataset)")
    m.add_argument("--task", "--split", dest="task", default="val", help="split to evaluate: val, test or train")
    m.add_argument(
        "--imgsz",
        "--img",
        "--img-size",
        dest="imgsz",
        type=int,
        default=None,
        help="inference size (px); default: the checkpoint's training size, else 640",
    )
    m.add_argument("--batch-size", type=int, default=32)
    m.add_argument("--slice", type=int, default=None, metavar="SIZE",
                   help="sliced inference: tiles of SIZE px of the original images (inference/slicing.py)")  # fmt: skip
    m.add_argument("--slice-overlap", type=int, default=64, metavar="N", help="overlap of the tiles in px (64)")
    m.add_argument("--conf-thres", type=float, default=0.001, help="NMS confidence threshold")
    m.add_argument("--iou-thres", type=float, default=0.6, help="NMS IoU threshold")
    m.add_argument("--max-det", type=int, default=300, help="maximum detections per image")
    m.add_argument("--device", default="", help="cuda device, i.e. 0 or cpu (default: CUDA if available)")
    m.add_argument("--half", action="store_true", help="FP16 autocast inference (CUDA only)")
    m.add_argument("--workers", type=int, default=8, help="dataloader workers")
    m.add_argument("--project", default="runs/val", help="save to project/name")
    m.add_argument("--name", default="exp", help="save to project/name")
    m.add_argument("--exist-ok", action="store_true", help="existing project/name ok, do not increment")
    m.add_argument("--noplots", action="store_true", help="do not write confusion matrix, curves, batch images")


def _evaluate_model(args: argparse.Namespace, config: EvalConfig) -> EvalResult:
    from data.datasets import build_dataset, coco_gt_for
    from tools.cli.runs import increment_path
    from tools.evaluation.calibrators import carried_calibrator
    from tools.inference import ranks
    from tools.inference.datasets import resolve_data
    from tools.inference.device import select_device
    from tools.inference.evaluate import evaluate_model
    from tools.inference.weights import load_weights

    info = ranks.from_env()  # under torchrun: each rank infers its shard, rank 0 gathers and evaluates
    device = select_device(args.device, info.local_rank if info.enabled else None)
    ranks.init(info, device)
    if args.half and device.type != "cuda":
        print(f"--half ignored on {device.type}: FP16 autocast is used on CUDA only")
    data, data_name = resolve_data(args.data)
    gt = args.gt or coco_gt_for(data, args.task)
    if gt is None:
        print(f"{data_name}: split {args.task!r} has no COCO JSON; evaluating against its yolo labels (no crowd)")
    model, imgsz, carried = load_weights(args.weights, device)  # .pt, or an .onnx export run by onnxruntime
    dataset = build_dataset(data, args.task, args.imgsz or imgsz, augment=False)
    calibrator = carried_calibrator(carried, args.no_calibrator)
    if calibrator is not None:
        print(f"{args.weights}: post-hoc calibrator {calibrator.describe()}; reporting before and after")
    save_dir = increment_path(Path(args.project) / args.name, args.exist_ok)
    if args.slice:  # full images as overlapping tiles, merged (one process; no calibrator)
        from tools.inference.slicing import SliceConfig, evaluate_sliced

        cut = SliceConfig(args.slice, args.slice_overlap)
        if calibrator is not None:
            print("--slice: the post-hoc calibrator is not applied (sliced evaluation reports raw scores)")
        out = save_dir / "predictions.json"
        res = evaluate_sliced(model, dataset, config, cut, args.imgsz or imgsz, gt, device, out)
    else:
        res = evaluate_model(model, dataset, config, gt, device, save_dir / "predictions.json", calibrator)
    if info.enabled:
        ranks.shutdown()
    if res is None:  # a non-zero rank under torchrun: rank 0 reports
        raise SystemExit(0)
    s = res.speed
    print(f"Results saved to {save_dir / 'predictions.json'}")
    if not args.noplots:  # the run folder's pictures, as yolov5 val.py writes them
        from tools.detection.runplots import write_val_plots

        print(f"{len(write_val_plots(save_dir, res, dataset))} plots written to {save_dir}")
    print(f"Speed: {s['pre']:.1f}ms pre-process, {s['inference']:.1f}ms inference, {s['nms']:.1f}ms NMS per image")
    return res


def main(argv: list[str] | None = None) -> EvalResult:
    """Run the evaluation described by ``argv`` (``sys.argv[1:]`` when None); print and return the result."""
    args = parse_args(argv)
    config = EvalConfig.from_args(args)
    if args.weights:
        res = _evaluate_model(args, config)
    else:
        res = evaluate_results(args.gt, args.dt, config, reindex_ann_ids=args.reindex_ann_ids)
    print(res.report())
    print(f"backend: {res.coco.backend}")
    if args.json_out:
        print(f"JSON written to {res.write_json(args.json_out)}")
    if args.plots:
        from tools.evaluation.plots import save_plots

        for path in save_plots(res.coco, res.calibration, args.plots):
            print(f"plot written to {path}")
        if res.table is not None:
            from tools.evaluation.calib_plots import save_reliability_plots

            for path in save_reliability_plots(res.table, args.plots):
                print(f"plot written to {path}")
    return res


if __name__ == "__main__":
    from tools.cli.errors import run_script

    run_script("eval.py", main)
