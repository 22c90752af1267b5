"""Put a copy of a file somewhere: a hard link when the file system allows it, else a byte copy.

Used for dataset images (converted or relabelled datasets point at the originals without doubling the disk
use) and for checkpoint copies (``previous.pt``). The file appears at ``dst`` whole or not at all: it is
made under a hidden sibling name and moved over ``dst`` with ``os.replace``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from .atomic import temp_sibling


def link_or_copy(src: str | os.PathLike[str], dst: str | os.PathLike[str], link: bool = True) -> Path:
    """Make ``dst`` the same bytes as ``src``, replacing ``dst`` if it exists; returns ``dst`` as a Path.

    ``link``: try ``os.link`` first (no extra disk; the two names share one inode, so editing one edits both),
    falling back to ``shutil.copy2`` (contents, permissions and times) where hard links fail (another file
    system, FAT, some network mounts). ``link=False`` always copies. Parent folders are created. When ``dst``
    already is ``src`` (same file), nothing is done. A missing ``src`` raises ``FileNotFoundError`` naming it.
    """
    src, dst = Path(src), Path(dst)
    if not src.is_file():
        raise FileNotFoundError(f"link_or_copy: source {src} is not a file")
    if dst.exists() and dst.samefile(src):
        return dst
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(dst)
    try:
        if not (link and _hard_link(src, tmp)):
            shutil.copy2(src, tmp)
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dst


def _hard_link(src: Path, dst: Path) -> bool:
    """``os.link(src, dst)``; False where the file system refuses hard links."""
    try:
        os.link(src, dst)
    except OSError:
        return False
    return True
