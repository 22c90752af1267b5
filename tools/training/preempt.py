"""Stopping on SIGTERM / SIGINT at the next optimizer-step boundary, with a resumable checkpoint.

A scheduler's preemption, ``docker stop``, a job's time limit and ``kill`` send SIGTERM; Ctrl-C sends SIGINT.
:class:`StopSignals` replaces both handlers while training runs: a signal only sets a flag, and the trainer
reads it after each optimizer step (where no accumulated gradient is pending), writes ``last.pt`` with the
position inside the epoch and raises :class:`Stopped`. A second signal while that checkpoint is written is
reported and otherwise ignored, so it cannot tear the file (the write is atomic in any case,
:mod:`fileio`); ``kill -9`` is the way to stop without a checkpoint. ``tools/train.py`` turns
:class:`Stopped` into exit status ``128 + signal`` (143 for SIGTERM, 130 for SIGINT), the shell convention
for a process ended by a signal, which schedulers read as "stopped, not failed".
"""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType
from typing import Any

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Stopped(Exception):  # noqa: N818 - not an error: the run stopped on request
    """The run stopped on a signal after saving ``checkpoint``; ``code`` is the exit status to end with."""

    def __init__(self, signum: int, checkpoint: str, message: str) -> None:
        super().__init__(message)
        self.signum, self.checkpoint = signum, checkpoint

    @property
    def code(self) -> int:
        return 128 + self.signum


class StopSignals:
    """While entered: SIGTERM and SIGINT set :attr:`signum` instead of killing the process.

    Outside the main thread (signal handlers can only be set there) it does nothing. The previous handlers
    are restored on exit. :meth:`request` sets the flag by hand (tests, and the DDP broadcast of a stop).
    """

    def __init__(self, verbose: bool = True) -> None:
        self.signum: int | None = None
        self.verbose = verbose
        self.saving = False  # set by the trainer while it writes the stop checkpoint
        self._old: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def request(self, signum: int = signal.SIGTERM) -> None:
        if self.signum is None:
            self.signum = int(signum)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.signum is None:
            self.signum = signum
            if self.verbose:
                print(f"\n{name}: stopping at the next step boundary to save a resumable checkpoint", file=sys.stderr)
        elif self.verbose:
            what = "the checkpoint is being written" if self.saving else "already stopping"
            print(f"\n{name} again: {what}; wait for it (kill -9 stops without saving)", file=sys.stderr)

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for s in SIGNALS:
                self._old[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for s, old in self._old.items():
            signal.signal(s, old)
        self._old.clear()
