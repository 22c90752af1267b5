"""Train a YOLO detector with detloss: ``python tools/train.py --label-smoothing 0.1``.

With no arguments it trains the small ``yolov4-tiny-s`` on the built-in demo dataset on the CPU. Flags follow
ultralytics yolov5's ``train.py``; ``torchrun --nproc_per_node N tools/train.py ...`` trains with DDP.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn

if __package__ in (None, ""):  # run as a script from a checkout: make models/, data/, tools/ importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fileio import atomic_write  # noqa: E402
from tools.cli.errors import InputError, as_input_error  # noqa: E402
from tools.cli.runs import increment_path  # noqa: E402
from tools.training import dist  # noqa: E402
from tools.training.config import TrainConfig, check_world_size  # noqa: E402
from tools.training.hyp import Hyp, check_hyp, load_hyp  # noqa: E402
from tools.training.options import DEMO_DEFAULTS, OTHER_DEFAULTS, parse_opt  # noqa: E402
from tools.training.runs import latest_run  # noqa: E402

__all__ = ["DEMO_DEFAULTS", "OTHER_DEFAULTS", "cli", "main", "parse_opt", "run"]


def run(opt: TrainConfig) -> Path:
    """Train; returns the run folder. With ``opt.resume`` the run's settings are the checkpoint's, but for
    ``device``, ``workers`` and ``dist_timeout`` (this machine's), taken from ``opt``."""
    from tools.training.setup import select_device

    info = dist.from_env()
    pointer = dist.elastic_pointer(opt.project)
    opt = _elastic_restart(opt, pointer)
    opt, hyp, save_dir, ckpt = _resumed(opt) if opt.resume else _fresh(opt)
    check_world_size(opt, info.world_size)
    device = select_device(opt.device, info)
    dist.init(info, device, opt.dist_timeout)
    if info.enabled and opt.resume is False:  # every rank must agree on the run folder
        save_dir = _rank0_path(save_dir)
    try:
        _train(opt, hyp, save_dir, info, device, ckpt, pointer)
    except Exception as e:
        _reraise(e, opt, save_dir, info)
    finally:
        dist.shutdown()
    return save_dir


def _elastic_restart(opt: TrainConfig, pointer: Path) -> TrainConfig:
    """Under ``torchrun --max-restarts``, a restarted worker goes on from the run's ``last.pt``."""
    if opt.resume or dist.restart_count() == 0 or not pointer.is_file():
        return opt
    last = Path(pointer.read_text().strip()) / "weights" / "last.pt"
    if not last.is_file():
        return opt
    print(f"torchrun restart {dist.restart_count()}: resuming {last}")
    return replace(opt, resume=str(last))


def _fresh(opt: TrainConfig) -> tuple[TrainConfig, Hyp, Path, None]:
    """A new run: the hyp file's values and a new run folder name."""
    with as_input_error():
        hyp = load_hyp(opt.hyp)
    return opt, hyp, increment_path(Path(opt.project) / opt.name, opt.exist_ok), None


def _resumed(opt: TrainConfig) -> tuple[TrainConfig, Hyp, Path, dict[str, Any]]:
    """``--resume``: the checkpoint's settings (this machine's device, workers, timeout), hyp, folder and state."""
    from tools.training.resume import ResumeError, fail, load_resume

    try:
        last = latest_run(opt.project) if opt.resume is True else Path(str(opt.resume))
    except FileNotFoundError as e:
        raise ResumeError(str(e)) from e
    ckpt = load_resume(last)
    keep = {"device": opt.device, "workers": opt.workers, "dist_timeout": opt.dist_timeout, "resume": str(last)}
    try:  # options added since the checkpoint was written take their defaults
        opt = TrainConfig.from_dict({**ckpt["opt"], **keep}, source=f"checkpoint {last}")
    except ValueError as e:
        raise fail(last, f"checkpoint {str(last)!r}: its options are not valid: {e}") from e
    return opt, check_hyp(dict(ckpt["hyp"]), f"{last} hyp"), last.parent.parent, ckpt


def _rank0_path(save_dir: Path) -> Path:
    """Rank 0's run folder on every rank (``increment_path`` may differ between ranks)."""
    import torch

    obj = [str(save_dir)]
    torch.distributed.broadcast_object_list(obj, 0)
    return Path(obj[0])


def _train(opt: TrainConfig, hyp: Hyp, save_dir: Path, info: dist.DistInfo, device: Any, ckpt: dict[str, Any] | None,
           pointer: Path) -> None:  # fmt: skip
    """Make the run folder (rank 0), build the trainer and fit."""
    from tools.training.trainer import Trainer

    if info.main:
        save_dir.mkdir(parents=True, exist_ok=True)
        print(f"run folder {save_dir}, device {device}, world size {info.world_size}")
        if info.enabled and dist.restart_count() == 0:
            atomic_write(pointer, f"{save_dir}\n")
    with as_input_error():  # weights, data: a missing or malformed file is one line, exit 2 (cli)
        trainer = Trainer(opt, hyp, save_dir, info, device, resume_ckpt=ckpt)
    trainer.fit()


def _reraise(e: Exception, opt: TrainConfig, save_dir: Path, info: dist.DistInfo) -> NoReturn:
    """Re-raise a failed run's error; a lost DDP peer as a :class:`TrainingError` that says how to resume."""
    from tools.training.setup import TrainingError

    if isinstance(e, InputError) and info.main and save_dir.is_dir() and not any(save_dir.iterdir()):
        save_dir.rmdir()  # nothing was trained: leave no empty exp folder behind
    if not info.enabled or isinstance(e, TrainingError) or not dist.peer_failure(e):
        raise e
    why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    last = save_dir / "weights" / "last.pt"
    raise TrainingError(
        f"rank {info.rank}: lost another rank (it died, hung past --dist-timeout {opt.dist_timeout:g} s, or "
        f"became unreachable): {why}; stopping. Resume with --resume {last} (torchrun --max-restarts N does "
        "it by itself)"
    ) from e


def main(argv: list[str] | None = None) -> Path:
    """Train; raises on failure (:func:`cli` turns that into an exit status)."""
    return run(parse_opt(argv))


def cli(argv: list[str] | None = None) -> int:
    """The command line: the exit status, with a one-line message instead of a traceback for the known ends.

    0 done; 2 a bad flag value (as argparse) or a checkpoint that cannot be resumed (``--resume``); 1 training
    stopped by a fault (a failing checkpoint write, too many non-finite losses, a lost DDP peer); 128 + signal
    (143 SIGTERM, 130 SIGINT) stopped on a signal after writing a resumable ``last.pt``.
    """
    from tools.cli.heap import keep_freed_memory
    from tools.training.preempt import Stopped
    from tools.training.resume import ResumeError
    from tools.training.setup import TrainingError

    keep_freed_memory()  # the step's large temporaries reused, not page-faulted in again every step (tools/cli/heap.py)
    try:
        opt = parse_opt(argv)
    except ValueError as e:  # a value argparse accepts but the config does not: the same one-line form
        print(f"train.py: error: {e}", file=sys.stderr)
        return 2
    try:
        run(opt)
    except Stopped as e:
        print(str(e), file=sys.stderr)
        return e.code
    except ResumeError as e:
        print(f"train.py --resume: error: {e}", file=sys.stderr)
        return 2
    except TrainingError as e:
        print(f"train.py: error: {e}", file=sys.stderr)
        return 1
    except InputError as e:
        print(f"train.py: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(cli())
