"""The README's study tables, rebuilt from the summary files like ``study.md``, so its numbers cannot drift.

A dataset's table sits between two marker lines in the README::

    <!-- study:demo -->
    | setting | seeds | ... |
    <!-- /study:demo -->

:func:`sync_readme` replaces what is between them (the markers stay) and leaves every other line as it was;
a README without the markers of a dataset is not touched.
"""

from __future__ import annotations

import os
from pathlib import Path

from fileio import atomic_write

__all__ = ["block", "markers", "replace_block", "sync_readme"]


def markers(dataset: str) -> tuple[str, str]:
    """The opening and closing marker lines of ``dataset``'s table."""
    return f"<!-- study:{dataset} -->", f"<!-- /study:{dataset} -->"


def _span(lines: list[str], dataset: str) -> tuple[int, int] | None:
    """Indices of the opening and closing marker lines, ``None`` when the README has no table of ``dataset``."""
    start, end = markers(dataset)
    stripped = [ln.strip() for ln in lines]
    if start not in stripped:
        return None
    i = stripped.index(start)
    if end not in stripped[i + 1 :]:
        raise ValueError(f"README: {start!r} on line {i + 1} has no closing {end!r} after it")
    return i, stripped.index(end, i + 1)


def block(text: str, dataset: str) -> list[str] | None:
    """The lines between ``dataset``'s markers, ``None`` when there are no markers."""
    lines = text.splitlines()
    span = _span(lines, dataset)
    return None if span is None else lines[span[0] + 1 : span[1]]


def replace_block(text: str, dataset: str, table: list[str]) -> str:
    """``text`` with the lines between ``dataset``'s markers replaced by ``table`` (unchanged without markers)."""
    lines = text.splitlines()
    span = _span(lines, dataset)
    if span is None:
        return text
    out = [*lines[: span[0] + 1], *table, *lines[span[1] :]]
    return "\n".join(out) + ("\n" if text.endswith("\n") else "")


def sync_readme(readme: str | os.PathLike, dataset: str, table: list[str]) -> bool:
    """Write ``table`` into ``readme``'s block of ``dataset``; ``True`` when the file changed."""
    path = Path(readme)
    if not path.is_file():
        return False
    text = path.read_text(encoding="utf-8")
    new = replace_block(text, dataset, table)
    if new == text:
        return False
    atomic_write(path, new)
    return True
