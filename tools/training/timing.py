"""Stage timers for the training loop: a no-op by default, a synchronising stopwatch for ``tools/bench_train.py``.

The trainer wraps each stage in ``with self.timer("forward"):``; the default :class:`NullTimer` costs one
method call. :class:`StageTimer` adds up wall seconds per stage and, on CUDA, synchronises the device at
both ends of each stage so that asynchronous kernels are charged to the stage that launched them.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import torch

STAGES = ("data", "forward", "loss", "backward", "optimizer", "validation")


class NullTimer:
    def __call__(self, stage: str) -> Any:
        return nullcontext()


class StageTimer:
    """Seconds and counts per stage."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.seconds: dict[str, float] = defaultdict(float)
        self.counts: dict[str, int] = defaultdict(int)

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        self._sync()
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self._sync()
            self.seconds[stage] += time.perf_counter() - t0
            self.counts[stage] += 1

    def reset(self) -> None:
        self.seconds.clear()
        self.counts.clear()


def timed_iter(loader: Any, timer: Any) -> Iterator[Any]:
    """Iterate ``loader`` charging the wait for each batch to the ``data`` stage."""
    it = iter(loader)
    while True:
        with timer("data"):
            try:
                batch = next(it)
            except StopIteration:
                return
        yield batch
