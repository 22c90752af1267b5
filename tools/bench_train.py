"""Where a training epoch's time goes: ``python tools/bench_train.py [-- train flags]``.

Builds the trainer exactly as ``tools/train.py`` does, swaps in a stage timer (:mod:`tools.training.timing`)
and runs ``--epochs-measured`` epochs (after ``--warmup`` unmeasured ones) plus one validation per epoch,
for each variant in ``--variants`` (extra train flags; the first variant is the baseline the others are
compared with, all measured in this one process). Prints, per variant, seconds per epoch by stage (waiting
for data, forward, loss, backward, optimizer + EMA, validation), training images per second and the epoch
time relative to the baseline. Run it on a quiet machine: the figures are wall-clock times.

    python tools/bench_train.py                                    # the default demo setting, cache off vs on
    python tools/bench_train.py --variants "" "--workers 1" -- --cfg yolov4-tiny --imgsz 320
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

STAGE_ORDER = ("data", "forward", "loss", "backward", "optimizer", "validation")


def measure(train_args: list[str], epochs: int, warmup: int) -> dict[str, float]:
    """Seconds per epoch by stage (plus ``epoch``, ``images``, ``img_per_s``) for one set of train flags."""
    import torch

    from tools.training import dist
    from tools.training.config import check_world_size
    from tools.training.hyp import load_hyp
    from tools.training.options import parse_opt
    from tools.training.setup import select_device
    from tools.training.timing import StageTimer
    from tools.training.trainer import Trainer

    with tempfile.TemporaryDirectory() as tmp:
        opt = parse_opt([*train_args, "--project", tmp, "--name", "bench", "--epochs", str(warmup + epochs)])
        info = dist.from_env()
        check_world_size(opt, info.world_size)
        device = select_device(opt.device, info)
        trainer = Trainer(opt, load_hyp(opt.hyp), Path(tmp) / "bench", info, device)
        timer = StageTimer(device)
        trainer.timer = timer
        totals: dict[str, float] = {}
        for epoch in range(warmup + epochs):
            timer.reset()
            t0 = time.perf_counter()
            trainer.train_epoch(epoch)
            with timer("validation"):
                trainer.validate()
            wall = time.perf_counter() - t0
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if epoch >= warmup:
                for k in STAGE_ORDER:
                    totals[k] = totals.get(k, 0.0) + timer.seconds.get(k, 0.0)
                totals["epoch"] = totals.get("epoch", 0.0) + wall
        out = {k: v / epochs for k, v in totals.items()}
        out["images"] = float(len(trainer.train_ds))
        train_s = out["epoch"] - out["validation"]
        out["img_per_s"] = out["images"] / train_s if train_s > 0 else float("nan")
        return out


def report(rows: list[tuple[str, dict[str, float]]]) -> str:
    head = f"{'variant':<28}" + "".join(f"{k:>11}" for k in (*STAGE_ORDER, "other", "epoch s", "img/s", "ratio"))
    lines = [head]
    base = rows[0][1]["epoch"] if rows else 1.0
    for name, r in rows:
        other = r["epoch"] - sum(r[k] for k in STAGE_ORDER)
        cells = [f"{r[k]:>11.2f}" for k in STAGE_ORDER] + [f"{other:>11.2f}", f"{r['epoch']:>11.2f}"]
        cells += [f"{r['img_per_s']:>11.1f}", f"{r['epoch'] / base:>11.2f}"]
        lines.append(f"{name[:28]:<28}" + "".join(cells))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[tuple[str, dict[str, float]]]:
    argv = list(sys.argv[1:] if argv is None else argv)
    train_args = argv[argv.index("--") + 1 :] if "--" in argv else []
    own = argv[: argv.index("--")] if "--" in argv else argv
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variants", nargs="+", default=["", "--cache ram"], help="extra train flags per variant")
    p.add_argument("--epochs-measured", type=int, default=1)
    p.add_argument("--warmup", type=int, default=0, help="unmeasured epochs first (CUDA: kernel autotuning)")
    a = p.parse_args(own)
    if a.epochs_measured < 1 or a.warmup < 0:
        raise ValueError("--epochs-measured must be >= 1 and --warmup >= 0")
    rows = []
    for v in a.variants:
        flags = [*train_args, *shlex.split(v)]
        rows.append((v or "baseline", measure(flags, a.epochs_measured, a.warmup)))
    print("\nseconds per epoch by stage (validation: one pass, mAP + losses)")
    print(report(rows))
    return rows


if __name__ == "__main__":
    main()
