"""Dataset errors and the report of what a reader skipped, dropped or clipped.

Readers never lose data silently: every skipped row, image or annotation becomes an :class:`Issue`
(file, line, reason) counted in a :class:`DatasetReport`. By default a reader skips the bad item and
emits ONE :class:`DatasetWarning` with the counts and the first few issues; with ``strict=True`` the
first bad item raises :class:`DatasetError` naming the file and line.
"""

from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import dataclass, field

# Issue kinds that are errors in the input (skipped by default, raised under strict=True).
ERROR_KINDS = ("bad_row", "bad_label_file", "bad_image", "bad_annotation", "bad_json")
# Issue kinds that are repaired and reported but never raised.
NOTICE_KINDS = ("duplicate", "clipped", "missing_size")
# Kinds that are normal dataset content: counted in the report, never warned about.
INFO_KINDS = ("missing_label", "crowd", "difficult")
MAX_KEPT_ISSUES = 1000  # counts stay exact; only the first issues keep their text
SUMMARY_SHOWN = 5


class DatasetError(ValueError):
    """Malformed dataset input: a bad label row, image, annotation, data YAML or dataset path."""


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """A dataset file or folder that does not exist (also a ``FileNotFoundError``)."""


class DatasetWarning(UserWarning):
    """The one-per-dataset summary of skipped or repaired input."""


@dataclass(frozen=True)
class Issue:
    """One problem found in the input. ``line`` is 1-based (``None`` where the file has no lines)."""

    kind: str
    path: str
    line: int | None
    reason: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line is not None else self.path
        return f"{where}: {self.reason}"


@dataclass
class DatasetReport:
    """What a reader found.

    Attributes:
        source: what was read (folder, list file or annotation JSON).
        images_found: image files listed by the source.
        images: images kept (``len(dataset)``).
        boxes: boxes kept over all kept images (ignore regions, class -1, not counted).
        ignore_regions: ignore regions (class -1 rows, COCO crowd annotations, VOC difficult objects) kept.
        backgrounds: kept images with no boxes.
        counts: issues per kind (``bad_row``, ``bad_image``, ``bad_label_file``, ``bad_annotation``,
            ``duplicate``, ``clipped``, ``missing_size`` (VOC: size from the image header), ``missing_label``,
            ``crowd``, ``difficult`` (VOC difficult objects kept as ignore regions)).
        issues: the first :data:`MAX_KEPT_ISSUES` issues, in the order found.
    """

    source: str
    strict: bool = False
    images_found: int = 0
    images: int = 0
    boxes: int = 0
    ignore_regions: int = 0
    backgrounds: int = 0
    counts: Counter = field(default_factory=Counter)
    issues: list[Issue] = field(default_factory=list)

    def add(self, kind: str, path: object, line: int | None, reason: str) -> None:
        """Record an issue; under ``strict`` an error kind raises :class:`DatasetError` instead."""
        if kind not in ERROR_KINDS + NOTICE_KINDS + INFO_KINDS:
            raise ValueError(f"unknown issue kind {kind!r}")
        issue = Issue(kind, str(path), line, reason)
        if self.strict and kind in ERROR_KINDS:
            raise DatasetError(f"{issue} (strict=True; use strict=False to skip and report it)")
        self.counts[kind] += 1
        if len(self.issues) < MAX_KEPT_ISSUES:
            self.issues.append(issue)

    def merge(self, other: DatasetReport) -> None:
        """Add ``other``'s counts and kept issues (a part verified elsewhere, or a cache), in order.

        Under ``strict`` an error in ``other`` raises :class:`DatasetError` naming the first one.
        """
        if self.strict and any(other.counts[k] for k in ERROR_KINDS):
            first = next((i for i in other.issues if i.kind in ERROR_KINDS), None)
            what = str(first) if first is not None else f"{other.skipped} errors"
            raise DatasetError(f"{what} (strict=True; use strict=False to skip and report it)")
        self.counts.update(other.counts)
        self.issues.extend(other.issues[: max(0, MAX_KEPT_ISSUES - len(self.issues))])

    @property
    def skipped(self) -> int:
        """Number of errors skipped (rows, images, label files, annotations)."""
        return sum(self.counts[k] for k in ERROR_KINDS)

    def first(self, *kinds: str) -> list[Issue]:
        """The kept issues of the given kinds (all kinds when none given)."""
        return [i for i in self.issues if not kinds or i.kind in kinds]

    def summary(self) -> str:
        """One paragraph: totals, counts per issue kind, and the first few warnings."""
        parts = [f"{self.images} images kept of {self.images_found}, {self.boxes} boxes"]
        parts[0] += f", {self.backgrounds} backgrounds"
        if self.ignore_regions:
            parts[0] += f", {self.ignore_regions} ignore regions"
        shown = {k: v for k, v in sorted(self.counts.items()) if v}
        if shown:
            parts.append(", ".join(f"{k}: {v}" for k, v in shown.items()))
        worth = [i for i in self.issues if i.kind not in INFO_KINDS][:SUMMARY_SHOWN]
        text = f"{self.source}: " + "; ".join(parts)
        if worth:
            text += "\n  first issues:\n" + "\n".join(f"    [{i.kind}] {i}" for i in worth)
        return text

    def warn_if_needed(self, stacklevel: int = 3) -> bool:
        """Emit one :class:`DatasetWarning` if anything was skipped or repaired; return whether it did."""
        if not any(self.counts[k] for k in ERROR_KINDS + NOTICE_KINDS):
            return False
        warnings.warn(self.summary(), DatasetWarning, stacklevel=stacklevel)
        return True
