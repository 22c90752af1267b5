"""Run folders of the scripts (``runs/train/exp``, ``runs/val/exp2``, ``runs/detect/exp3``), as yolov5 names them."""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["increment_path"]


def increment_path(path: str | Path, exist_ok: bool = False) -> Path:
    """``runs/train/exp`` if free (or ``exist_ok``), else the first free ``exp2``, ``exp3``, ..."""
    path = Path(path)
    if exist_ok or not path.exists():
        return path
    stem = re.sub(r"\d+$", "", path.name) or path.name
    taken = {p.name for p in path.parent.iterdir()} if path.parent.exists() else set()
    n = 2
    while f"{stem}{n}" in taken:
        n += 1
    return path.parent / f"{stem}{n}"
