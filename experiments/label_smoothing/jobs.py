"""Run several trainings at once as subprocesses, each with an equal share of the CPU threads.

On a small CPU machine two single-threaded trainings finish sooner than the same two run one after the other
with two threads each (small convolutions do not scale across threads), so a study of many short runs
(``experiments/label_smoothing/study.py --jobs N``) starts ``N`` of them at a time. Each child gets
``OMP_NUM_THREADS`` and ``MKL_NUM_THREADS`` = ``threads`` (default ``max(1, cpu_count // N)``) and writes its
output to its own log.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

__all__ = ["Job", "default_threads", "run_parallel"]

Job = tuple[list[str], Path]  # (argv of the child, log file)


def default_threads(jobs: int) -> int:
    return max(1, (os.cpu_count() or 1) // max(jobs, 1))


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").replace("\r", "\n").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def run_parallel(jobs: Sequence[Job], n: int, threads: int | None = None, cwd: str | Path | None = None) -> None:
    """Run every ``(argv, log)`` in ``jobs``, at most ``n`` at a time, and wait for all of them.

    A child that exits non-zero does not stop the others; when all are done, ``RuntimeError`` names each failed
    command with its log file and the log's last lines. ``KeyboardInterrupt`` terminates the running children.
    """
    if n < 1:
        raise ValueError(f"the number of parallel jobs must be >= 1, got {n}")
    threads = default_threads(n) if threads is None else threads
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    queue = list(jobs)
    running: list[tuple[subprocess.Popen[bytes], Job, TextIO]] = []
    failed: list[tuple[Job, int]] = []
    try:
        while queue or running:
            while queue and len(running) < n:
                argv, log = queue.pop(0)
                log.parent.mkdir(parents=True, exist_ok=True)
                fh: TextIO = open(log, "w")  # noqa: SIM115 - closed when the child ends
                proc = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=cwd)
                running.append((proc, (argv, log), fh))
            still: list[tuple[subprocess.Popen[bytes], Job, TextIO]] = []
            for proc, job, fh in running:
                code = proc.poll()
                if code is None:
                    still.append((proc, job, fh))
                    continue
                fh.close()
                if code != 0:
                    failed.append((job, code))
            running = still
            if running:
                time.sleep(0.2)
    except BaseException:
        for proc, _, fh in running:
            proc.terminate()
            proc.wait()
            fh.close()
        raise
    if failed:
        parts = [f"exit {code}: {' '.join(argv)}\n  log {log}:\n{_tail(log)}" for (argv, log), code in failed]
        raise RuntimeError(f"{len(failed)} of {len(jobs)} job(s) failed:\n" + "\n".join(parts))
