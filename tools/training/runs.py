"""Run folders (``runs/train/exp``, ``exp2``, ...) and the YAML files of a run, as yolov5 users expect."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from fileio import atomic_write


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


def save_yaml(path: str | Path, data: dict[str, Any]) -> Path:
    import yaml

    return atomic_write(path, yaml.safe_dump(data, sort_keys=False))


def latest_run(search: str | Path = "runs") -> Path:
    """The most recently written ``last.pt`` under ``search`` (what a bare ``--resume`` continues)."""
    found = sorted(Path(search).glob("**/last*.pt"), key=os.path.getmtime)
    if not found:
        raise FileNotFoundError(f"--resume: no last.pt found under {str(search)!r}; pass the checkpoint path")
    return found[-1]
