"""Run folders (``runs/train/exp``, ``exp2``, ...) and the YAML files of a run, as yolov5 users expect."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fileio import atomic_write


def save_yaml(path: str | Path, data: dict[str, Any]) -> Path:
    import yaml

    return atomic_write(path, yaml.safe_dump(data, sort_keys=False))


def latest_run(search: str | Path = "runs") -> Path:
    """The most recently written ``last.pt`` under ``search`` (what a bare ``--resume`` continues)."""
    found = sorted(Path(search).glob("**/last*.pt"), key=os.path.getmtime)
    if not found:
        raise FileNotFoundError(f"--resume: no last.pt found under {str(search)!r}; pass the checkpoint path")
    return found[-1]
