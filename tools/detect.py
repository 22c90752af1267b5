"""Run a trained detector on images, folders, globs or videos and save the annotated results.

::

    python tools/detect.py --weights runs/train/exp/weights/best.pt --source path/to/images --conf-thres 0.25
    python tools/detect.py --weights best.onnx --source 'data/**/*.jpg' --save-txt --save-json
    python tools/detect.py --weights best.pt --source clip.mp4 --device 0 --half

Flags and defaults follow ultralytics yolov5 ``detect.py``. Pre- and post-processing are the evaluation's
(``tools.inference.predict``), so the boxes equal ``tools/eval.py``'s for the same images and thresholds
(detect keeps the best class of each box, ``multi_label=False``, as yolov5 detect does).

Outputs in ``<project>/<name>`` (``runs/detect/exp``, ``exp2``, ... unless ``--exist-ok``): the annotated
images (same file names) or videos (``<stem>.mp4``); ``--save-txt``: ``labels/<stem>.txt`` (videos
``<stem>_<frame>.txt``), one row ``cls cx cy w h conf`` a detection, box normalised to the original image
(no file for an image without detections); ``--save-json``: ``predictions.json``, COCO results with
``category_id`` = class index and ``image_id`` = the file stem (an int when it is numeric).
A file OpenCV cannot read is reported by path and skipped. Weights that carry a post-hoc calibrator
(``tools/calibrate.py``; also inside an ``.onnx`` exported from them) give calibrated scores, and
``--conf-thres`` applies to those (``--no-calibrator``: the raw scores). ``--slice SIZE`` runs each image as
overlapping tiles of SIZE px (``--slice-overlap``, ``--batch-size`` tiles a pass), merged into one set of
boxes (``tools/inference/slicing.py``), for images much larger than the model's input.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the checkout importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402
import torch  # noqa: E402

from data.sources import write_labels  # noqa: E402
from tools.cli.runs import increment_path  # noqa: E402
from tools.detection.annotate import draw_detections, write_image  # noqa: E402
from tools.detection.sources import Frame, count_frames, iter_frames, list_sources  # noqa: E402
from tools.evaluation.calibrators import Calibrator, carried_calibrator  # noqa: E402
from tools.evaluation.cocojson import atomic_write_json, detections_to_coco  # noqa: E402
from tools.evaluation.config import EvalConfig  # noqa: E402
from tools.inference.device import select_device  # noqa: E402
from tools.inference.predict import predict, preprocess  # noqa: E402
from tools.inference.slicing import SliceConfig, sliced_detections  # noqa: E402
from tools.inference.weights import is_onnx, load_weights  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="detect.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", required=True, help="checkpoint (.pt) or ONNX export (.onnx)")
    p.add_argument("--source", required=True, help="image, folder, glob pattern or video file")
    p.add_argument("--imgsz", "--img", "--img-size", dest="imgsz", type=int, default=None,
                   help="inference size (px, multiple of 32); default: the model's training/export size")  # fmt: skip
    p.add_argument("--conf-thres", type=float, default=0.25, help="confidence threshold")
    p.add_argument("--iou-thres", type=float, default=0.45, help="NMS IoU threshold")
    p.add_argument("--max-det", type=int, default=1000, help="maximum detections per image")
    p.add_argument("--classes", nargs="+", type=int, help="keep only these class indices, e.g. --classes 0 2")
    p.add_argument("--agnostic-nms", action="store_true", help="class-agnostic NMS")
    p.add_argument("--device", default="", help="cuda device, i.e. 0 or cpu (default: CUDA if available)")
    p.add_argument("--half", action="store_true", help="FP16 autocast inference (CUDA only)")
    p.add_argument("--no-calibrator", action="store_true",
                   help="raw scores even when the weights carry a calibrator (tools/calibrate.py)")  # fmt: skip
    p.add_argument("--batch-size", type=int, default=1, help="images (or --slice tiles) per forward pass")
    p.add_argument("--slice", type=int, default=None, metavar="SIZE",
                   help="sliced inference: tiles of SIZE px of each image, merged (inference/slicing.py)")  # fmt: skip
    p.add_argument("--slice-overlap", type=int, default=64, metavar="N", help="overlap of the tiles in px (64)")
    p.add_argument("--line-thickness", type=int, default=None, help="box line width (px); default from image size")
    p.add_argument("--hide-labels", action="store_true", help="draw boxes without labels")
    p.add_argument("--hide-conf", action="store_true", help="draw class names without scores")
    p.add_argument("--nosave", action="store_true", help="do not save annotated images/videos")
    p.add_argument("--save-txt", action="store_true", help="save yolo rows 'cls cx cy w h conf' to labels/*.txt")
    p.add_argument("--save-json", action="store_true", help="save COCO results to predictions.json")
    p.add_argument("--project", default="runs/detect", help="save to project/name")
    p.add_argument("--name", default="exp", help="save to project/name")
    p.add_argument("--exist-ok", action="store_true", help="existing project/name ok, do not increment")
    args = p.parse_args(argv)
    for name, lo, hi in (("conf_thres", 0.0, 1.0), ("iou_thres", 0.0, 1.0)):
        if not lo <= getattr(args, name) <= hi:
            p.error(f"--{name.replace('_', '-')} must be in [{lo}, {hi}], got {getattr(args, name)}")
    if args.max_det < 1 or args.batch_size < 1:
        p.error("--max-det and --batch-size must be >= 1")
    if args.imgsz is not None and (args.imgsz < 32 or args.imgsz % 32):
        p.error(f"--imgsz must be a positive multiple of 32, got {args.imgsz}")
    return args


@dataclass
class DetectResult:
    """What a run did: the folder, per-frame detections (original pixels), class counts, skipped files."""

    save_dir: Path
    detections: list[tuple[Path, int, torch.Tensor]] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    def summary(self, names: list[str]) -> str:
        n = len(self.detections)
        total = sum(self.counts.values())
        per = ", ".join(f"{self.counts[c]} {names[c] if c < len(names) else c}" for c in sorted(self.counts))
        text = f"{n} image(s)/frame(s), {total} detection(s)" + (f": {per}" if per else "")
        if self.skipped:
            text += f"\n{len(self.skipped)} file(s) skipped: " + "; ".join(f"{p} ({why})" for p, why in self.skipped)
        return text


def _stem(frame: Frame) -> str:
    return f"{frame.path.stem}_{frame.index}" if frame.video else frame.path.stem


def _label_rows(det: torch.Tensor, h0: int, w0: int) -> list[list[float]]:
    """``[n, 5]`` ``cls cx cy w h`` normalised to the original image, from ``[n, 6]`` ``x1 y1 x2 y2 conf cls``."""
    return [
        [cls, (x1 + x2) / 2 / w0, (y1 + y2) / 2 / h0, (x2 - x1) / w0, (y2 - y1) / h0]
        for x1, y1, x2, y2, _, cls in det.tolist()
    ]


class _Writer:
    """Annotated images, videos, label files and COCO rows of one run."""

    def __init__(self, args: argparse.Namespace, save_dir: Path, names: list[str]) -> None:
        self.args, self.save_dir, self.names = args, save_dir, names
        self.videos: dict[Path, Any] = {}
        self.coco: list[dict] = []

    def __call__(self, frame: Frame, det: torch.Tensor) -> None:
        a, img = self.args, frame.img
        assert img is not None
        if a.save_txt and len(det):
            rows = _label_rows(det, *img.shape[:2])
            write_labels(self.save_dir / "labels" / f"{_stem(frame)}.txt", rows, det[:, 4].tolist())
        if a.save_json and len(det):
            stem = _stem(frame)
            image_id: int | str = int(stem) if stem.isnumeric() else stem
            self.coco += detections_to_coco(det[:, :4], det[:, 4], det[:, 5], image_id)
        if a.nosave:
            return
        out = draw_detections(img.copy(), det, self.names, a.line_thickness, a.hide_labels, a.hide_conf)
        if frame.video:
            self._video(frame).write(out)
        else:
            write_image(self.save_dir / frame.path.name, out)

    def _video(self, frame: Frame) -> Any:
        w = self.videos.get(frame.path)
        if w is None:
            h0, w0 = frame.img.shape[:2]  # type: ignore[union-attr]
            path = self.save_dir / f"{frame.path.stem}.mp4"
            w = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), frame.fps or 30.0, (w0, h0))
            self.videos[frame.path] = w
        return w

    def close(self) -> None:
        for w in self.videos.values():
            w.release()
        if self.args.save_json:
            atomic_write_json(self.save_dir / "predictions.json", self.coco)


def _progress(total: int) -> Any:
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is in the train extra
        return None
    return tqdm(total=total, unit="img", bar_format="{l_bar}{bar:10}{r_bar}")


def run(args: argparse.Namespace) -> DetectResult:
    """Detect on every frame of ``args.source``; write what ``args`` asks for under a new run folder."""
    files = list_sources(args.source)  # ValueError for a missing or empty source, before any model loading
    device = select_device(args.device)
    model, imgsz, calibrator = _load(args, device)
    names = list(model.names)
    save_dir = increment_path(Path(args.project) / args.name, args.exist_ok)
    save_dir.mkdir(parents=True, exist_ok=True)
    res = DetectResult(save_dir)
    writer = _Writer(args, save_dir, names)
    pbar = _progress(count_frames(files))
    config = EvalConfig(conf_thres=args.conf_thres, iou_thres=args.iou_thres, max_det=args.max_det, half=args.half)

    def detect(batch: torch.Tensor, metas: list[dict]) -> list[torch.Tensor]:
        return predict(model, batch, metas, device, config, args.classes, args.agnostic_nms, calibrator)

    def record(frame: Frame, det: torch.Tensor) -> None:
        res.detections.append((frame.path, frame.index, det))
        res.counts.update(int(c) for c in det[:, 5].tolist())
        writer(frame, det)

    try:
        _detect_frames(files, args, imgsz, detect, record, res, pbar)
    finally:
        if pbar is not None:
            pbar.close()
        writer.close()
    if not res.detections:
        raise ValueError(f"--source {args.source!r}: none of its {len(files)} file(s) could be read\n"
                         + res.summary(names))  # fmt: skip
    print(res.summary(names))
    print(f"Results saved to {save_dir}" + (f" ({len(list(save_dir.glob('labels/*.txt')))} label files)"
                                            if args.save_txt else ""))  # fmt: skip
    return res


def _load(args: argparse.Namespace, device: torch.device) -> tuple[Any, int, Calibrator | None]:
    """``(model, image size, calibrator or None)`` for ``args.weights``; says which flags do not apply."""
    if args.half and (device.type != "cuda" or is_onnx(args.weights)):
        print("--half ignored: FP16 autocast is for .pt weights on CUDA (an ONNX file runs in its exported dtype)")
    model, default_imgsz, carried = load_weights(args.weights, device)
    calibrator = carried_calibrator(carried, args.no_calibrator)
    if calibrator is not None:
        print(f"scores calibrated by {calibrator.describe()} (--no-calibrator for the raw scores)")
    return model, args.imgsz or default_imgsz, calibrator


def _detect_frames(files: list[Path], args: argparse.Namespace, imgsz: int, detect: Callable, record: Callable,
                   res: DetectResult, pbar: Any) -> None:  # fmt: skip
    """Feed every readable frame to ``detect`` (``args.batch_size`` frames a call; sliced: one frame's tiles a
    call) and each frame's detections to ``record``, in order; unreadable frames go to ``res.skipped``."""
    pending: list[tuple[Frame, torch.Tensor, dict]] = []
    cut = SliceConfig(args.slice, args.slice_overlap) if args.slice else None

    def flush() -> None:
        if not pending:
            return
        dets = detect(torch.stack([x for _, x, _ in pending]), [m for _, _, m in pending])
        for (frame, _, _), det in zip(pending, dets):
            record(frame, det)
        pending.clear()

    for frame in iter_frames(files):
        if pbar is not None:
            pbar.update(1)
        if frame.img is None:
            res.skipped.append((frame.path, frame.error))
            print(f"skipped {frame.path}: {frame.error}", file=sys.stderr)
            continue
        if cut is not None:  # sliced: the frame's tiles are the batch
            record(frame, sliced_detections(frame.img, detect, imgsz, cut, args.iou_thres, args.max_det,
                                            args.batch_size, args.agnostic_nms))  # fmt: skip
            continue
        x, meta = preprocess(frame.img, imgsz)
        pending.append((frame, x, meta))
        if len(pending) >= args.batch_size:
            flush()
    flush()


def main(argv: list[str] | None = None) -> DetectResult:
    """Detect as described by ``argv`` (``sys.argv[1:]`` when None); returns what was found and written."""
    return run(parse_args(argv))


if __name__ == "__main__":
    from tools.cli.errors import run_script

    run_script("detect.py", main)
