"""One study run as its own process: train (unless finished), measure, write the summary.

``python -m experiments.label_smoothing.job spec.json`` (what ``experiments/label_smoothing/study.py`` starts,
``--jobs`` at a time). The spec holds the :class:`~.summaries.RunKey` and the paths; the summary is written the
moment the run is measured, so a study stopped at any point keeps every finished run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .measure import TOOLS, measure_run
from .summaries import RunKey, write_summary

__all__ = ["checkpoint_state", "finished", "run_job", "train_run"]


# Fields that say where or how a run executes, not what it trains: they may differ between the spec and a checkpoint.
_WHERE = frozenset({"resume", "device", "workers", "dist_timeout", "exist_ok"})


def checkpoint_state(run: Path, argv: list[str]) -> tuple[str, Path | None]:
    """The state of ``run/weights/last.pt`` against the training ``argv`` would do.

    ``("finished", path)``: it holds the final epoch of exactly that training; ``("resumable", path)``: the same
    training stopped part-way (preempted, killed after an epoch's save), so ``--resume`` continues it bit for bit;
    ``("fresh", None)``: no checkpoint, a damaged one, or one of another training (other flags: train anew).
    """
    from dataclasses import asdict

    from models.checkpoint import load_checkpoint
    from tools.training.config import TrainConfig
    from tools.training.options import parse_opt

    last = run / "weights" / "last.pt"
    if not last.is_file():
        return "fresh", None
    try:
        ckpt = load_checkpoint(last)
        stored = asdict(TrainConfig.from_dict(ckpt.get("opt") or {}))
    except (ValueError, OSError, RuntimeError, TypeError):  # damaged or foreign: train again
        return "fresh", None
    wanted = asdict(parse_opt(argv))
    if any(stored[k] != wanted[k] for k in wanted if k not in _WHERE):
        return "fresh", None
    done = int(ckpt.get("epoch", -1)) + 1 >= wanted["epochs"] and not ckpt.get("interrupted")
    return ("finished" if done else "resumable"), last


def finished(run: Path, argv: list[str]) -> bool:
    """``run/weights/last.pt`` holds the final epoch of the training ``argv`` does (not a stopped one)."""
    return checkpoint_state(run, argv)[0] == "finished"


def train_run(run: Path, argv: list[str]) -> str:
    """Bring ``run`` to the end of the training ``argv`` does; returns what was there before (see
    :func:`checkpoint_state`). A stopped run goes on with ``--resume`` (the trainer's resume is exact, so the
    result equals an uninterrupted run); its log is appended to. Raises ``RuntimeError`` naming the log."""
    state, last = checkpoint_state(run, argv)
    if state == "finished":
        return state
    run.mkdir(parents=True, exist_ok=True)
    cmd = ["--resume", str(last)] if state == "resumable" else argv
    with open(run / "train.log", "a" if state == "resumable" else "w") as log:
        code = subprocess.call([sys.executable, str(TOOLS / "train.py"), *cmd], stdout=log, stderr=subprocess.STDOUT)
    if code != 0 or not finished(run, argv):
        raise RuntimeError(f"training in {run} failed (exit {code}); log {run / 'train.log'}")
    return state


def run_job(spec: dict[str, Any]) -> Path:
    """Train (or resume) and measure the run of ``spec``; returns the summary's path."""
    key = RunKey(**spec["key"])
    run = Path(spec["run"])
    t0 = time.time()
    state = train_run(run, spec["train_argv"])
    trained = state != "finished"
    train_s = time.time() - t0
    metrics, posthoc, analysis = measure_run(run, Path(spec["data_yaml"]), Path(spec["gt_json"]), spec["device"],
                                             key.flags["posthoc"])  # fmt: skip
    extra = {"posthoc": posthoc, "analysis": analysis, "train_argv_tail": spec["train_argv_tail"],
             "train_seconds": round(train_s, 1) if trained else None, "resumed": state == "resumable",
             "threads": os.environ.get("OMP_NUM_THREADS"),
             "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}  # fmt: skip
    path = write_summary(spec["summaries"], key, metrics, **extra)
    print(f"{key.filename}: mAP50-95 {metrics['mAP50-95']:.4f}, top1 {metrics['top1']:.3f} -> {path}")
    return path


if __name__ == "__main__":
    sys.path.insert(0, str(TOOLS.parent))
    try:
        run_job(json.loads(Path(sys.argv[1]).read_text()))
    except (RuntimeError, ValueError, FileNotFoundError) as err:
        print(f"study job: error: {err}", file=sys.stderr)
        sys.exit(1)
