"""``tools/train.py``'s flags: the parser, for every tool that trains; it gives a :class:`TrainConfig`.

``tools/train.py`` and ``tools/bench_train.py`` both build their runs from :func:`parse_opt`, so a benchmark
measures exactly the run a user starts; a script imports no other script. The defaults are the config's
fields' (:mod:`tools.training.config`); the flags whose default depends on the dataset parse to None and
:meth:`TrainConfig.from_args` fills them in.
"""

from __future__ import annotations

import argparse

from detloss.config import CLS_SCALINGS, SMOOTHING_KINDS
from models import MODEL_CFGS

from .config import DEMO_DEFAULTS, OTHER_DEFAULTS, TrainConfig
from .optim import CHOICES

__all__ = ["DEMO_DEFAULTS", "OTHER_DEFAULTS", "build_parser", "parse_opt"]

DESCRIPTION = """Train a YOLO detector with detloss: ``python tools/train.py --label-smoothing 0.1``.

With no arguments it trains the small ``yolov4-tiny-s`` on the built-in demo dataset on the CPU. Flags follow
ultralytics yolov5's ``train.py``; ``torchrun --nproc_per_node N tools/train.py ...`` trains with DDP.
"""

D = TrainConfig()  # the defaults
DEMO, OTHER = DEMO_DEFAULTS, OTHER_DEFAULTS


def parse_opt(argv: list[str] | None = None) -> TrainConfig:
    """The validated config of ``tools/train.py``'s flags (``ValueError`` naming the flag for a bad value)."""
    return TrainConfig.from_args(build_parser().parse_args(argv))


def build_parser() -> argparse.ArgumentParser:
    """``tools/train.py``'s parser: one flag per :class:`TrainConfig` field, its dest the field's name."""
    p = argparse.ArgumentParser(prog="train.py", description=DESCRIPTION,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)  # fmt: skip
    p.add_argument("--data", default=D.data, help="data YAML (yolov5 layout or COCO JSON); default: the demo dataset")
    p.add_argument("--cfg", default=D.cfg, choices=MODEL_CFGS, help="model")
    p.add_argument("--weights", default=D.weights, help="initial weights (a detloss checkpoint)")
    p.add_argument("--hyp", default=D.hyp, help="yolov5 hyp YAML; default hyp.scratch-low values")
    p.add_argument("--epochs", type=int, default=None,
                   help=f"default {DEMO['epochs']} on the demo data, else {OTHER['epochs']} (see --time)")  # fmt: skip
    p.add_argument("--batch-size", type=int, default=None,
                   help=f"total over all ranks; default {DEMO['batch_size']}")  # fmt: skip
    p.add_argument("--imgsz", "--img", "--img-size", type=int, default=None,
                   help=f"default {DEMO['imgsz']} on the demo, else {OTHER['imgsz']}")  # fmt: skip
    p.add_argument("--device", default=D.device, help="cpu, 0 or 0,1 (default: CUDA if available)")
    p.add_argument("--workers", type=int, default=D.workers, help="dataloader workers per rank")
    p.add_argument("--label-smoothing", type=float, default=D.label_smoothing, help="label smoothing eps in [0, 1)")
    p.add_argument("--label-smoothing-kind", default=D.label_smoothing_kind, choices=SMOOTHING_KINDS,
                   help="class targets: yolo (1-eps/2, eps/2), uniform (eps/K), prior, online")  # fmt: skip
    p.add_argument("--cls-scaling", default=D.cls_scaling, choices=CLS_SCALINGS,
                   help="class gain by class count: yolov5 (cls*nc/80), sqrt (cls*sqrt(nc/80) below 80), "
                        "sqrt-cap4 (sqrt, at most 4x yolov5's)")  # fmt: skip
    p.add_argument("--optimizer", default=D.optimizer, choices=CHOICES,
                   help="auto (ultralytics v8 rule): AdamW lr0 0.004*5/(4+nc) for <= 10k steps, else SGD")  # fmt: skip
    p.add_argument("--cos-lr", action="store_true", default=D.cos_lr, help="cosine learning-rate schedule")
    p.add_argument("--close-mosaic", type=int, default=D.close_mosaic,
                   help="train the last N epochs without mosaic (0: never)")  # fmt: skip
    p.add_argument("--cache", nargs="?", const="ram", default=None, choices=("ram", "disk"),
                   help="resized images in RAM (--cache, --cache ram) or as .npy files (--cache disk); "
                        f"default: {DEMO['cache']} on the demo, else ram when it fits in memory")  # fmt: skip
    p.add_argument("--no-cache", dest="cache", action="store_const", const=False, help="read images every epoch")
    p.add_argument("--noautoanchor", action="store_true", default=D.noautoanchor,
                   help="keep the model's anchors (no best-recall check)")  # fmt: skip
    p.add_argument("--seed", type=int, default=D.seed)
    p.add_argument("--resume", nargs="?", const=True, default=D.resume, help="resume the latest run or a last.pt")
    p.add_argument("--project", default=D.project)
    p.add_argument("--name", default=D.name)
    p.add_argument("--exist-ok", action="store_true", default=D.exist_ok,
                   help="reuse project/name instead of incrementing")  # fmt: skip
    p.add_argument("--time", type=float, default=D.time,
                   help="wall-clock budget in hours; overrides --epochs (re-planned after each epoch)")  # fmt: skip
    p.add_argument("--patience", type=int, default=D.patience, help="early stop after this many epochs without gain")
    p.add_argument("--noval", action="store_true", default=D.noval, help="validate only after the final epoch")
    p.add_argument("--noplots", action="store_true", default=D.noplots,
                   help="no run-folder pictures (labels, batches, val plots)")  # fmt: skip
    p.add_argument("--clip-grad", type=float, default=D.clip_grad, help="max gradient norm; 0 disables clipping")
    p.add_argument("--clip-grad-value", type=float, default=D.clip_grad_value,
                   help="clip each gradient element to [-V, V] (before --clip-grad); 0 disables")  # fmt: skip
    p.add_argument("--amp", action=argparse.BooleanOptionalAction, default=D.amp, help="mixed precision on CUDA")
    p.add_argument("--sync-bn", action="store_true", default=D.sync_bn, help="SyncBatchNorm under DDP (CUDA)")
    p.add_argument("--max-nonfinite", type=int, default=D.max_nonfinite,
                   help="stop after this many consecutive non-finite losses")  # fmt: skip
    p.add_argument("--save-period-steps", type=int, default=D.save_period_steps,
                   help="also write last.pt every N optimizer steps, mid-epoch (0: at epoch ends only)")  # fmt: skip
    p.add_argument("--save-period-minutes", type=float, default=D.save_period_minutes,
                   help="also write last.pt when M minutes passed since the last one (0: off)")  # fmt: skip
    p.add_argument("--dist-timeout", type=float, default=D.dist_timeout,
                   help="DDP: seconds a rank waits for the others in a collective before it stops")  # fmt: skip
    return p
