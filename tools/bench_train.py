"""The training step against the CPU's peak, and where a training epoch's time goes.

    python tools/bench_train.py                      # the default model's step: 256 px, batch 16 (see below)
    python tools/bench_train.py --threads 2 --reps 20
    python tools/bench_train.py --epoch              # the default demo setting by stage, cache off vs on
    python tools/bench_train.py --epoch --variants "" "--workers 1" -- --cfg yolov4-tiny --imgsz 320

Step mode (the default, :mod:`tools.benchmarks.step`): the default model (``TrainConfig.cfg``) at ``--imgsz`` 256,
batch 16, on synthetic data: median milliseconds per stage (forward, loss, backward, optimizer), images per second,
the step's FLOPs (``FlopCounterMode``) and the fraction of the CPU's fp32 peak they reach (:mod:`tools.benchmarks.peak`:
``cores x GHz x 2 FMA x lanes x 2``, the clock and how it was found printed). Then each alternative as a ratio
measured in the same run, interleaved (median of ``--reps``): channels-last vs contiguous layout (train step), one
thread vs ``--threads``, conv + batch-norm folding (:func:`models.fold.fold_conv_bn`) vs none at evaluation (eval
forward), and, on a CPU with native bf16, the trainer's default ``--amp`` step (bf16 autocast) vs fp32, whose
img/s and "fp32-peak fraction" (the same FLOPs over its time, against the fp32 peak) are printed too.
The step is timed in-process: DataLoader workers, pinned memory and inter-op threads are not in it
(printed notes say why; ``--epoch --variants "--workers 0" "--workers 2"`` measures workers with the real loader).

Epoch mode (``--epoch``): builds the trainer exactly as ``tools/train.py`` does, swaps in a stage timer
(:mod:`tools.training.timing`) and runs ``--epochs-measured`` epochs (after ``--warmup`` unmeasured ones) plus one
validation per epoch, for each variant in ``--variants`` (extra train flags; the first variant is the baseline the
others are compared with, all measured in this one process). Prints, per variant, seconds per epoch by stage
(waiting for data, forward, loss, backward, optimizer + EMA, validation), training images per second and the epoch
time relative to the baseline. Run it on a quiet machine: the figures are wall-clock times.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools.cli.heap import add_malloc_flag, apply_malloc_flag  # noqa: E402  (after the sys.path line)
from tools.training.timing import STAGES as STAGE_ORDER  # noqa: E402


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


def step_report(a: argparse.Namespace) -> dict[str, float]:
    """Step mode (module docstring): prints the tables, returns the numbers (ms, img/s, ratios)."""
    import torch

    from models.fold import fold_conv_bn
    from tools.benchmarks.peak import cpu_peak, describe
    from tools.benchmarks.step import TRAIN_STAGES, build_case, eval_forward, interleaved, stage_seconds, step_flops
    from tools.benchmarks.step import train_step as run_step

    if a.threads:
        torch.set_num_threads(a.threads)
    threads = torch.get_num_threads()
    peak = cpu_peak(threads)
    print(f"torch {torch.__version__}, {threads} threads (interop {torch.get_num_interop_threads()})")
    print(describe(peak))
    args = (a.cfg, a.classes, a.batch_size, a.imgsz, a.targets)
    case = build_case(*args, channels_last=True)
    flops = step_flops(case)
    stages = stage_seconds(case, a.reps)
    step_s = sum(stages.values())
    out = {f"{s}_ms": v * 1e3 for s, v in stages.items()}
    out.update(step_ms=step_s * 1e3, img_per_s=a.batch_size / step_s, gflop=flops / 1e9)
    out["peak_frac"] = flops / step_s / peak.flops
    print(
        f"\n{a.cfg}, {a.imgsz} px, batch {a.batch_size}, {a.classes} classes, {a.targets} targets an image "
        f"(channels-last, the trainer's CPU default): {flops / 1e9:.2f} GFLOP a step (forward + loss + backward)"
    )
    print("".join(f"{s + ' ms':>13}" for s in (*TRAIN_STAGES, "step")) + f"{'img/s':>9}{'of peak':>9}")
    print("".join(f"{stages[s] * 1e3:>13.1f}" for s in TRAIN_STAGES) + f"{step_s * 1e3:>13.1f}"
          f"{out['img_per_s']:>9.1f}{out['peak_frac']:>9.1%}")  # fmt: skip
    out.update(_variants(a, case, build_case(*args, channels_last=False), threads, fold_conv_bn, eval_forward,
                         interleaved, run_step))  # fmt: skip
    if "amp_ms" in out:
        amp_s = out["amp_ms"] / 1e3
        out["amp_img_per_s"], out["amp_peak_frac"] = a.batch_size / amp_s, flops / amp_s / peak.flops
        print(
            f"the trainer's default step here (bf16 autocast): {out['amp_ms']:.1f} ms, {out['amp_img_per_s']:.1f} "
            f"img/s, {out['amp_peak_frac']:.1%} of the fp32 peak (the same FLOPs in its time)"
        )
    print('not in this step: DataLoader workers (the data stage: --epoch --variants "--workers 0" "--workers 2"),')
    print("pinned memory (only speeds host-to-GPU copies; the trainer pins on CUDA only), inter-op threads (the step")
    print("runs no inter-op parallel work; torch fixes their number before the first parallel op: set it at startup)")
    return out


def _variants(a: argparse.Namespace, nhwc: Any, nchw: Any, threads: int, fold: Any, eval_forward: Any,
              interleaved: Any, run_step: Any) -> dict[str, float]:  # fmt: skip
    """Each alternative against the default, interleaved in this run: ``new / default`` time ratios."""
    import torch

    from tools.training.precision import autocast_dtype

    def with_threads(n: int) -> Any:
        def run() -> None:
            torch.set_num_threads(n)
            try:
                run_step(nhwc)
            finally:
                torch.set_num_threads(threads)

        return run

    nhwc.model.eval()
    folded = fold(nhwc.model)
    evals = {"unfolded": eval_forward(nhwc.model, nhwc.imgs), "folded": eval_forward(folded, nhwc.imgs)}
    ev = interleaved(evals, a.reps)
    nhwc.model.train()
    tr = interleaved({"channels-last": lambda: run_step(nhwc), "contiguous": lambda: run_step(nchw)}, a.reps)
    th = interleaved({f"{threads} threads": with_threads(threads), "1 thread": with_threads(1)}, a.reps)
    rows = [("train step: contiguous (NCHW) vs channels-last", tr["contiguous"], tr["channels-last"]),
            (f"train step: 1 thread vs {threads}", th["1 thread"], th[f"{threads} threads"]),
            ("eval forward: conv+BN folded vs not", ev["folded"], ev["unfolded"])]  # fmt: skip
    amp = autocast_dtype(torch.device("cpu"), True)
    if amp is not None:
        pr = interleaved({"fp32": lambda: run_step(nhwc), "amp": lambda: run_step(nhwc, amp=amp)}, a.reps)
        rows.append(("train step: bf16 autocast (--amp) vs fp32", pr["amp"], pr["fp32"]))
    print(f"\n{'alternative':<48}{'alt ms':>9}{'base ms':>9}{'alt/base':>9}  (same run, interleaved, medians)")
    for name, alt, base in rows:
        print(f"{name:<48}{alt * 1e3:>9.1f}{base * 1e3:>9.1f}{alt / base:>9.2f}")
    if amp is None:
        print("train step in bf16: skipped (this CPU has no native bf16; the trainer keeps fp32 here)")
    out = {"contiguous_ratio": rows[0][1] / rows[0][2], "one_thread_ratio": rows[1][1] / rows[1][2],
           "folded_eval_ratio": rows[2][1] / rows[2][2]}  # fmt: skip
    if amp is not None:
        out["amp_ratio"], out["amp_ms"] = rows[3][1] / rows[3][2], rows[3][1] * 1e3
    return out


def main(argv: list[str] | None = None) -> Any:
    argv = list(sys.argv[1:] if argv is None else argv)
    train_args = argv[argv.index("--") + 1 :] if "--" in argv else []
    own = argv[: argv.index("--")] if "--" in argv else argv
    from tools.training.config import TrainConfig

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epoch", action="store_true", help="epoch mode: the trainer's epoch by stage, per variant")
    p.add_argument("--variants", nargs="+", default=["", "--cache ram"], help="epoch mode: extra train flags each")
    p.add_argument("--epochs-measured", type=int, default=1)
    p.add_argument("--warmup", type=int, default=0, help="unmeasured epochs first (CUDA: kernel autotuning)")
    p.add_argument("--cfg", default=TrainConfig.cfg, help="step mode: the model (default: the trainer's)")
    p.add_argument("--imgsz", type=int, default=256, help="step mode: image side")
    p.add_argument("--batch-size", type=int, default=16, help="step mode")
    p.add_argument("--classes", type=int, default=6, help="step mode: classes (the demo has 6)")
    p.add_argument("--targets", type=int, default=8, help="step mode: targets an image")
    p.add_argument("--reps", type=int, default=10, help="step mode: timed steps per candidate (median)")
    p.add_argument("--threads", type=int, default=0, help="step mode: torch.set_num_threads (0: torch's default)")
    add_malloc_flag(p, default="keep")  # the trainer's process
    a = p.parse_args(own)
    apply_malloc_flag(a.malloc)
    if a.epochs_measured < 1 or a.warmup < 0:
        raise ValueError("--epochs-measured must be >= 1 and --warmup >= 0")
    if min(a.imgsz, a.batch_size, a.classes, a.reps) < 1 or a.targets < 0 or a.imgsz % 32:
        raise ValueError("--imgsz (a multiple of 32), --batch-size, --classes, --reps must be >= 1, --targets >= 0")
    if not a.epoch:
        if train_args:
            raise ValueError("train flags after '--' are for --epoch mode")
        return step_report(a)
    rows = []
    for v in a.variants:
        flags = [*train_args, *shlex.split(v)]
        rows.append((v or "baseline", measure(flags, a.epochs_measured, a.warmup)))
    print("\nseconds per epoch by stage (validation: one pass, mAP + losses)")
    print(report(rows))
    return rows


if __name__ == "__main__":
    main()
