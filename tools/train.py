"""Train a YOLO detector with detloss: ``python tools/train.py --label-smoothing 0.1``.

With no arguments it trains the small ``yolov4-tiny-s`` on the built-in demo dataset on the CPU. Flags follow
ultralytics yolov5's ``train.py``; ``torchrun --nproc_per_node N tools/train.py ...`` trains with DDP.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script from a checkout: make models/, data/, tools/ importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from detloss.config import SMOOTHING_KINDS  # noqa: E402
from models import MODEL_CFGS  # noqa: E402
from tools.training import dist  # noqa: E402
from tools.training.hyp import check_hyp, load_hyp  # noqa: E402
from tools.training.optim import CHOICES  # noqa: E402
from tools.training.runs import increment_path, latest_run  # noqa: E402

# the demo setting: tuned so the default command finishes in about 10 minutes on 2 CPU cores
DEMO_DEFAULTS = {"imgsz": 256, "epochs": 22, "batch_size": 16, "cache": "ram"}
OTHER_DEFAULTS = {"imgsz": 640, "epochs": 100, "batch_size": 16}


def parse_opt(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
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


def run(opt: argparse.Namespace) -> Path:
    """Train; returns the run folder."""
    import torch

    from tools.training.setup import select_device
    from tools.training.trainer import Trainer

    info = dist.from_env()
    ckpt: dict[str, Any] | None = None
    if opt.resume:
        from tools.training.resume import ResumeError, load_resume

        try:
            last = latest_run(opt.project) if opt.resume is True else Path(opt.resume)
        except FileNotFoundError as e:
            raise ResumeError(str(e)) from e
        ckpt = load_resume(last)
        keep = {"device": opt.device, "workers": opt.workers}
        # options added since the checkpoint was written take their defaults
        opt = argparse.Namespace(**{**vars(parse_opt([])), **ckpt["opt"], **keep, "resume": str(last)})
        save_dir = last.parent.parent
        hyp = check_hyp(dict(ckpt["hyp"]), f"{last} hyp")
    else:
        hyp = load_hyp(opt.hyp)
        save_dir = increment_path(Path(opt.project) / opt.name, opt.exist_ok)
    check_opt(opt, info.world_size)
    device = select_device(opt.device, info)
    dist.init(info, device)
    if info.enabled and opt.resume is False:  # every rank must agree on the run folder
        obj = [str(save_dir)]
        torch.distributed.broadcast_object_list(obj, 0)
        save_dir = Path(obj[0])
    try:
        if info.main:
            save_dir.mkdir(parents=True, exist_ok=True)
            print(f"run folder {save_dir}, device {device}, world size {info.world_size}")
        trainer = Trainer(opt, hyp, save_dir, info, device, resume_ckpt=ckpt)
        trainer.fit()
    finally:
        dist.shutdown()
    return save_dir


def main(argv: list[str] | None = None) -> Path:
    """Train; raises on failure (:func:`cli` turns that into an exit status)."""
    return run(parse_opt(argv))


def cli(argv: list[str] | None = None) -> int:
    """The command line: the exit status, with a one-line message instead of a traceback for the known ends.

    0 done; 2 a checkpoint that cannot be resumed (``--resume``); 1 training stopped by a fault (a failing
    checkpoint write, too many non-finite losses, a lost DDP peer); 128 + signal (143 SIGTERM, 130 SIGINT)
    stopped on a signal after writing a resumable ``last.pt``.
    """
    from tools.training.preempt import Stopped
    from tools.training.resume import ResumeError
    from tools.training.setup import TrainingError

    try:
        main(argv)
    except Stopped as e:
        print(str(e), file=sys.stderr)
        return e.code
    except ResumeError as e:
        print(f"train.py --resume: error: {e}", file=sys.stderr)
        return 2
    except TrainingError as e:
        print(f"train.py: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(cli())
