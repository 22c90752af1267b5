"""One study run as its own process: train (unless finished), measure, write the summary.

``python -m tools.study.job spec.json`` (what ``tools/smoothing_study.py`` starts, ``--jobs`` at a time). The
spec holds the :class:`~tools.study.summaries.RunKey` and the paths; the summary is written the moment the run is
measured, so a study stopped at any point keeps every finished run.
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

__all__ = ["finished", "run_job"]


def finished(run: Path) -> bool:
    """``run/weights/last.pt`` holds the final epoch of its schedule (not a stopped or interrupted run)."""
    from models.checkpoint import load_checkpoint

    last = run / "weights" / "last.pt"
    if not last.is_file():
        return False
    try:
        ckpt = load_checkpoint(last)
    except (ValueError, OSError, RuntimeError):  # damaged: train again
        return False
    opt = ckpt.get("opt") or {}
    return int(ckpt.get("epoch", -1)) + 1 >= int(opt.get("epochs", 1 << 30)) and not ckpt.get("interrupted")


def run_job(spec: dict[str, Any]) -> Path:
    """Train and measure the run of ``spec``; returns the summary's path."""
    key = RunKey(**spec["key"])
    run = Path(spec["run"])
    t0 = time.time()
    trained = False
    if not finished(run):
        run.mkdir(parents=True, exist_ok=True)
        with open(run / "train.log", "w") as log:
            code = subprocess.call([sys.executable, str(TOOLS / "train.py"), *spec["train_argv"]], stdout=log,
                                   stderr=subprocess.STDOUT)  # fmt: skip
        if code != 0 or not finished(run):
            raise RuntimeError(f"training of {key.filename} failed (exit {code}); log {run / 'train.log'}")
        trained = True
    train_s = time.time() - t0
    metrics, posthoc, analysis = measure_run(run, Path(spec["data_yaml"]), Path(spec["gt_json"]), spec["device"],
                                             key.flags["posthoc"])  # fmt: skip
    extra = {"posthoc": posthoc, "analysis": analysis, "train_argv_tail": spec["train_argv_tail"],
             "train_seconds": round(train_s, 1) if trained else None, "threads": os.environ.get("OMP_NUM_THREADS"),
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
