"""When and how the trainer writes ``last.pt``: periods in steps and minutes, the previous file kept, write
failures turned into one clear error.

``last.pt`` is replaced atomically (``models.checkpoint.save_checkpoint``: temporary sibling, fsync,
``os.replace``), so it is always a complete checkpoint, the old one until the new one is on disk. Before it
is replaced, the old file becomes ``previous.pt`` (a hard link where the file system allows it, else a copy,
itself written atomically): if ``last.pt`` is later damaged (a broken copy, a disk fault), ``--resume``
names ``previous.pt`` as a good one. A write that fails (a full disk, ``ENOSPC``; a read-only mount)
leaves no temporary file, keeps both files as they were and raises :class:`TrainingError` naming the path
and the cause: the trainer stops rather than train on without checkpoints.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from torch import nn

from fileio import link_or_copy
from models.checkpoint import save_checkpoint

from .setup import TrainingError

PREVIOUS = "previous.pt"


class CheckpointSaver:
    """Writes checkpoints for the trainer and decides when a mid-epoch one is due.

    Args:
        period_steps: write ``last.pt`` every this many optimizer steps (0: only at epoch ends and stops).
        period_minutes: write ``last.pt`` when this many minutes passed since the last write (0: never).
    """

    def __init__(self, wdir: Path, period_steps: int = 0, period_minutes: float = 0.0) -> None:
        if period_steps < 0 or not period_minutes >= 0:
            raise ValueError(f"save periods must be >= 0, got {period_steps} steps, {period_minutes} minutes")
        self.wdir, self.period_steps, self.period_s = Path(wdir), int(period_steps), 60.0 * period_minutes
        self.last_write = time.monotonic()

    @property
    def last(self) -> Path:
        return self.wdir / "last.pt"

    def due(self, updates: int) -> bool:
        """Whether a mid-epoch ``last.pt`` is due after the optimizer step number ``updates``."""
        if self.period_steps and updates % self.period_steps == 0:
            return True
        return bool(self.period_s) and time.monotonic() - self.last_write >= self.period_s

    def write(self, model: nn.Module, extra: dict[str, Any], best: bool = False) -> Path:
        """``last.pt`` (the old one kept as ``previous.pt``) and, with ``best``, ``best.pt``."""
        where = self.wdir / PREVIOUS
        try:
            if self.last.is_file():
                keep_copy(self.last, where)
            where = self.last
            save_checkpoint(self.last, model, **extra)
            if best:
                where = self.wdir / "best.pt"
                save_checkpoint(where, model, **extra)
        except OSError as e:
            good = self.last if self.last.is_file() else "none"
            raise TrainingError(
                f"cannot write checkpoint {where}: {e.strerror or e} (errno {e.errno}); training stopped, the last "
                f"good checkpoint is {good}"
            ) from e
        self.last_write = time.monotonic()
        return self.last


def keep_copy(src: Path, dst: Path) -> None:
    """Make ``dst`` a complete copy of ``src`` atomically (hard link, else a byte copy), replacing ``dst``."""
    link_or_copy(src, dst)
