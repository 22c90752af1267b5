"""``tools/train.py``'s flags: the parser, its defaults by dataset and the checks, for every tool that trains.

``tools/train.py`` and ``tools/bench_train.py`` both build their runs from :func:`parse_opt`, so a benchmark
measures exactly the run a user starts; a script imports no other script.
"""

from __future__ import annotations

import argparse

from detloss.config import SMOOTHING_KINDS
from models import MODEL_CFGS

from .optim import CHOICES

__all__ = ["DEMO_DEFAULTS", "OTHER_DEFAULTS", "check_opt", "parse_opt"]

DESCRIPTION = """Train a YOLO detector with detloss: ``python tools/train.py --label-smoothing 0.1``.

With no arguments it trains the small ``yolov4-tiny-s`` on the built-in demo dataset on the CPU. Flags follow
ultralytics yolov5's ``train.py``; ``torchrun --nproc_per_node N tools/train.py ...`` trains with DDP.
"""

# the demo setting: tuned so the default command finishes in about 10 minutes on 2 CPU cores
DEMO_DEFAULTS = {"imgsz": 256, "epochs": 22, "batch_size": 16, "cache": "ram"}
OTHER_DEFAULTS = {"imgsz": 640, "epochs": 100, "batch_size": 16}


def parse_opt(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="train.py", description=DESCRIPTION,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)  # fmt: skip
    p.add_argument("--data", default=None, help="data YAML (yolov5 layout or COCO JSON); default: the demo dataset")
    p.add_argument("--cfg", default="yolov4-tiny-s", choices=MODEL_CFGS, help="model")
    p.add_argument("--weights", default="", help="initial weights (a detloss checkpoint)")
    p.add_argument("--hyp", default=None, help="yolov5 hyp YAML; default hyp.scratch-low values")
    p.add_argument("--epochs", type=int, default=None, help="default 22 on the demo data, else 100 (see --time)")
    p.add_argument("--batch-size", type=int, default=None, help="total over all ranks; default 16")
    p.add_argument("--imgsz", "--img", "--img-size", type=int, default=None, help="default 256 on the demo, else 640")
    p.add_argument("--device", default="", help="cpu, 0 or 0,1 (default: CUDA if available)")
    p.add_argument("--workers", type=int, default=2, help="dataloader workers per rank")
    p.add_argument("--label-smoothing", type=float, default=0.0, help="label smoothing eps in [0, 1)")
    p.add_argument("--label-smoothing-kind", default="yolo", choices=SMOOTHING_KINDS,
                   help="class targets: yolo (1-eps/2, eps/2), uniform (eps/K), prior, online")  # fmt: skip
    p.add_argument("--optimizer", default="auto", choices=CHOICES,
                   help="auto (ultralytics v8 rule): AdamW lr0 0.004*5/(4+nc) for <= 10k steps, else SGD")  # fmt: skip
    p.add_argument("--cos-lr", action="store_true", help="cosine learning-rate schedule")
    p.add_argument("--close-mosaic", type=int, default=10, help="train the last N epochs without mosaic (0: never)")
    p.add_argument("--cache", nargs="?", const="ram", default=None, choices=("ram", "disk"),
                   help="resized images in RAM (--cache, --cache ram) or as .npy files (--cache disk); "
                        "default: ram when it fits in memory")  # fmt: skip
    p.add_argument("--no-cache", dest="cache", action="store_const", const=False, help="read images every epoch")
    p.add_argument("--noautoanchor", action="store_true", help="keep the model's anchors (no best-recall check)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", nargs="?", const=True, default=False, help="resume the latest run or a last.pt")
    p.add_argument("--project", default="runs/train")
    p.add_argument("--name", default="exp")
    p.add_argument("--exist-ok", action="store_true", help="reuse project/name instead of incrementing")
    p.add_argument("--time", type=float, default=None,
                   help="wall-clock budget in hours; overrides --epochs (re-planned after each epoch)")  # fmt: skip
    p.add_argument("--patience", type=int, default=100, help="early stop after this many epochs without gain")
    p.add_argument("--noval", action="store_true", help="validate only after the final epoch")
    p.add_argument("--noplots", action="store_true", help="no run-folder pictures (labels, batches, val plots)")
    p.add_argument("--clip-grad", type=float, default=10.0, help="max gradient norm; 0 disables clipping")
    p.add_argument("--clip-grad-value", type=float, default=0.0,
                   help="clip each gradient element to [-V, V] (before --clip-grad); 0 disables")  # fmt: skip
    p.add_argument("--amp", action=argparse.BooleanOptionalAction, default=True, help="mixed precision on CUDA")
    p.add_argument("--sync-bn", action="store_true", help="SyncBatchNorm under DDP (CUDA)")
    p.add_argument("--max-nonfinite", type=int, default=20, help="stop after this many consecutive non-finite losses")
    p.add_argument("--save-period-steps", type=int, default=0,
                   help="also write last.pt every N optimizer steps, mid-epoch (0: at epoch ends only)")  # fmt: skip
    p.add_argument("--save-period-minutes", type=float, default=0.0,
                   help="also write last.pt when M minutes passed since the last one (0: off)")  # fmt: skip
    p.add_argument("--dist-timeout", type=float, default=1800.0,
                   help="DDP: seconds a rank waits for the others in a collective before it stops")  # fmt: skip
    opt = p.parse_args(argv)
    defaults = DEMO_DEFAULTS if opt.data is None else OTHER_DEFAULTS
    for k, v in defaults.items():
        if getattr(opt, k) is None:
            setattr(opt, k, v)
    return opt


def check_opt(opt: argparse.Namespace, world_size: int) -> None:
    if not getattr(opt, "clip_grad_value", 0.0) >= 0:  # NaN fails too
        raise ValueError(f"--clip-grad-value must be >= 0, got {opt.clip_grad_value}")
    if not 0.0 <= opt.label_smoothing < 1.0:
        raise ValueError(f"--label-smoothing must be in [0, 1), got {opt.label_smoothing}")
    for name in ("epochs", "batch_size", "imgsz"):
        if getattr(opt, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(opt, name)}")
    if getattr(opt, "time", None) is not None and not 0 < opt.time < 1e4:
        raise ValueError(f"--time must be a positive number of hours, got {opt.time}")
    if opt.imgsz % 32:
        raise ValueError(f"--imgsz must be a multiple of 32 (the largest stride), got {opt.imgsz}")
    if opt.batch_size % world_size:
        raise ValueError(f"--batch-size {opt.batch_size} must be a multiple of the {world_size} ranks")
    if opt.clip_grad < 0 or opt.workers < 0 or opt.max_nonfinite < 1 or opt.close_mosaic < 0:
        raise ValueError("--clip-grad, --workers and --close-mosaic must be >= 0, --max-nonfinite >= 1")
    if getattr(opt, "save_period_steps", 0) < 0 or not getattr(opt, "save_period_minutes", 0.0) >= 0:
        raise ValueError("--save-period-steps and --save-period-minutes must be >= 0")
    if not getattr(opt, "dist_timeout", 1.0) > 0:
        raise ValueError(f"--dist-timeout must be > 0 seconds, got {opt.dist_timeout}")
