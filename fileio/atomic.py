"""Atomic file writes: readers see the old file or the whole new one, never a half-written one.

The one writer used by ``models`` (checkpoints), ``data`` (converted datasets, label files) and ``tools`` (results,
reports, figures); standard library only, so ``tools.evaluation`` writes files without loading torch. The bytes go
to a fresh hidden sibling in the same folder (so the final rename stays on one file system and is atomic), are
flushed and ``fsync``-ed, and the sibling is moved over the target with ``os.replace``; the folder is then
``fsync``-ed where the OS allows it, so the rename itself survives a crash. On any failure, including
``KeyboardInterrupt``, the sibling is removed and the old file is left as it was. The sibling is opened with ``"x"``
(never clobbers; the usual umask permissions, unlike ``mkstemp``'s 0600).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


def temp_sibling(path: Path) -> Path:
    """A fresh hidden name next to ``path`` (process id + random suffix)."""
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. Windows cannot open a folder: the rename is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_with(path: str | os.PathLike[str], write: Callable[[IO[bytes]], Any]) -> Path:
    """Call ``write(f)`` on a binary file that becomes ``path`` only once ``write`` returns.

    For writers that take a file object: ``torch.save(obj, f)``, ``fig.savefig(f, format="png")``.
    Parent folders are created. Returns ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(path)
    try:
        with open(tmp, "xb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def atomic_write(path: str | os.PathLike[str], data: str | bytes) -> Path:
    """Write ``data`` (text is encoded as UTF-8) to ``path`` atomically; see :func:`atomic_write_with`."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    elif not isinstance(data, (bytes, bytearray, memoryview)):
        raise ValueError(f"atomic_write needs str or bytes, got {type(data).__name__}")
    payload = bytes(data)
    return atomic_write_with(path, lambda f: f.write(payload))
