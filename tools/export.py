"""Export a trained detector to ONNX (model + box decode, NMS outside) and check it against PyTorch.

::

    python tools/export.py --weights runs/train/exp/weights/best.pt --format onnx [--dynamic] [--half] [--simplify]

Writes ``best.onnx`` next to the weights (``--output`` to choose), with the metadata ``tools/detect.py`` and
``tools/eval.py`` read back (names, stride, imgsz, anchors, nc, cfg; see ``tools.detection.onnx_export``).
Then runs the file with onnxruntime and the checkpoint with PyTorch on a real image (a demo val image unless
``--verify-image``) and prints the largest absolute difference of the outputs. ``--half`` exports FP16
weights, meant for CUDA; on the CPU it is exported only when onnxruntime's CPU provider can run it (else a
clear error). Needs the ``export`` extra (``pip install onnx onnxruntime``).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the checkout importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

FORMATS = ("onnx",)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="export.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", required=True, help="checkpoint (.pt) to export")
    p.add_argument("--format", "--include", dest="format", default="onnx", choices=FORMATS, help="export format")
    p.add_argument("--imgsz", "--img", "--img-size", dest="imgsz", type=int, nargs="+", default=None,
                   help="input size: one value (square) or h w; default: the checkpoint's training size")  # fmt: skip
    p.add_argument("--batch-size", type=int, default=1, help="batch size of the graph (free with --dynamic)")
    p.add_argument("--dynamic", action="store_true", help="dynamic batch, height and width")
    p.add_argument("--half", action="store_true", help="FP16 weights and input (for CUDA)")
    p.add_argument("--simplify", action="store_true", help="simplify the graph with onnxslim or onnxsim")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset version")
    p.add_argument("--device", default="cpu", help="device to trace on: cpu or a CUDA index like 0")
    p.add_argument("--output", default=None, help="output file (default: the weights with suffix .onnx)")
    p.add_argument("--verify-image", default=None, help="image for the onnxruntime check (default: a demo val image)")
    args = p.parse_args(argv)
    if len(args.imgsz or [0]) > 2:
        p.error("--imgsz takes one value or two (h w)")
    if args.imgsz is not None and any(s < 32 or s % 32 for s in args.imgsz):
        p.error(f"--imgsz must be positive multiples of 32, got {args.imgsz}")
    if args.batch_size < 1:
        p.error("--batch-size must be >= 1")
    return args


@dataclass
class ExportResult:
    path: Path
    max_abs_diff: float
    verify_image: Path
    simplified_with: str | None = None


def _demo_val_image() -> Path:
    from data.demo import ensure_demo

    return sorted((ensure_demo().parent / "images" / "val").iterdir())[0]


def verify(path: Path, model: torch.nn.Module, image: Path, imgsz: tuple[int, int], batch: int, half: bool) -> float:
    """Max ``|onnxruntime - torch|`` of the outputs on ``image`` letterboxed to ``imgsz``, repeated ``batch`` times."""
    from data.letterbox import letterbox
    from data.sources import read_image
    from tools.inference.onnx_runtime import OnnxDetector

    img0, why = read_image(image)
    if img0 is None:
        raise ValueError(f"--verify-image {image}: {why}")
    img = letterbox(img0, imgsz, auto=False)[0]
    x = torch.from_numpy(img[:, :, ::-1].transpose(2, 0, 1).copy()).float().div(255.0)[None].repeat(batch, 1, 1, 1)
    param = next(model.parameters())
    with torch.no_grad():
        ref = model(x.to(param.device, param.dtype))
    ref = (ref[0] if isinstance(ref, (tuple, list)) else ref).float().cpu()
    try:
        got = OnnxDetector(path, "cpu")(x)
    except Exception as e:  # onnxruntime's own errors (e.g. no FP16 kernel)
        if half:
            raise ValueError(f"--half: onnxruntime cannot run the FP16 export on the CPU ({e}); export on CUDA") from e
        raise
    return float((got - ref).abs().max())


def run(args: argparse.Namespace) -> ExportResult:
    from models.checkpoint import checkpoint_calibrator, load_checkpoint, load_model
    from tools.detection.onnx_export import export_onnx, simplify
    from tools.inference.device import select_device
    from tools.inference.weights import checkpoint_imgsz

    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as e:
        raise ValueError(f"ONNX export needs the export extra: pip install onnx onnxruntime ({e})") from e
    weights = Path(args.weights)
    if weights.suffix.lower() == ".onnx":
        raise ValueError(f"--weights {weights} is already ONNX; export a .pt checkpoint")
    device = select_device(args.device)
    ckpt = load_checkpoint(weights, map_location="cpu")
    size = args.imgsz or [checkpoint_imgsz(ckpt)]
    imgsz = (size[0], size[-1])
    model = load_model(ckpt, map_location=device)
    if args.half:
        if device.type != "cuda":
            print("--half: FP16 is meant for CUDA; exporting FP16 on the CPU and checking that onnxruntime's CPU "
                  "provider runs it (it is not faster there)")  # fmt: skip
        model = model.half()
    out = Path(args.output) if args.output else weights.with_suffix(".onnx")
    calibrator = checkpoint_calibrator(ckpt)
    export_onnx(model, out, imgsz, args.batch_size, args.dynamic, args.half, args.opset, calibrator)
    if calibrator is not None:
        print(f"{weights}: its post-hoc calibrator ({calibrator.get('method')}) is carried in the ONNX metadata")
    tool = None
    if args.simplify:
        try:
            tool = simplify(out)
        except ValueError as e:
            print(f"{e}; the export is kept unsimplified")
    image = Path(args.verify_image) if args.verify_image else _demo_val_image()
    batch = 3 if args.dynamic else args.batch_size
    try:
        diff = verify(out, model, image, imgsz, batch, args.half)
    except ValueError:
        out.unlink(missing_ok=True)
        raise
    size_mb = out.stat().st_size / 1e6
    shape = "dynamic" if args.dynamic else f"batch {args.batch_size}"
    simplified = f", simplified with {tool}" if tool else ""
    dtype = "FP16" if args.half else "FP32"
    print(f"exported {out} ({size_mb:.1f} MB, {dtype}, input {imgsz[0]}x{imgsz[1]}, {shape}{simplified})")
    print(f"onnxruntime check on {image} (batch {batch}): max |onnx - torch| = {diff:.3g}")
    return ExportResult(out, diff, image, tool)


def main(argv: list[str] | None = None) -> ExportResult:
    """Export as described by ``argv`` (``sys.argv[1:]`` when None); returns the file and the check's difference."""
    return run(parse_args(argv))


if __name__ == "__main__":
    from tools.cli.errors import run_script

    run_script("export.py", main)
