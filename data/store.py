"""Compact per-image tables: a few numpy arrays instead of one Python object per image.

A dataset's index (paths, shapes, labels, image ids) is read by every forked DataLoader worker. A Python
list holds one object per image, and reading an object writes its reference count, so each worker's
pages are copied as it touches them: resident memory grows over an epoch by the size of the index, in
every worker (pytorch/pytorch#13246, "copy-on-read"). Numpy arrays have no per-element objects; these
classes keep everything in a handful of them and hand out small copies.

- :class:`RaggedRows`: ``float32 rows [total, k]`` plus ``int64 offsets [n + 1]``; ``store[i]`` is image
  ``i``'s ``[n_i, k]`` rows (a copy).
- :class:`Strings`: UTF-8 bytes of all strings in one ``uint8`` array plus offsets; ``store[i]`` is a ``str``.
- :class:`Column`: one ``ndarray`` (``[n]`` ids or ``[n, 2]`` shapes) read as ints or int tuples.

All three are read-only sequences that compare equal to a list of the same items.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np


class _Table(Sequence):
    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence) and not isinstance(other, str | bytes):
            return len(self) == len(other) and all(_same(a, b) for a, b in zip(self, other))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self)} items)"

    def __getitem__(self, i):
        """Item ``i`` (negative counts from the end), or a list of items for a slice."""
        if isinstance(i, slice):
            return [self._item(k) for k in range(*i.indices(len(self)))]
        return self._item(_index(i, len(self)))

    def _item(self, i: int) -> Any:
        """Item ``i``, ``0 <= i < len(self)``."""
        raise NotImplementedError

    def take(self, keep: np.ndarray | Sequence[int]) -> _Table:
        """The rows at ``keep`` (indices, in that order) as a new table of the same kind."""
        raise NotImplementedError


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return bool(np.array_equal(np.asarray(a), np.asarray(b)))
    return bool(a == b)


def _offsets(lengths: np.ndarray) -> np.ndarray:
    off = np.zeros(len(lengths) + 1, np.int64)
    np.cumsum(lengths, out=off[1:])
    return off


def _all(keep: np.ndarray, n: int) -> bool:
    """Whether ``keep`` is ``0..n-1`` in order (then a table's ``take`` is the table itself)."""
    return len(keep) == n and bool((keep == np.arange(n)).all())


def _gather(data: np.ndarray, off: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the ragged ``(data, off)`` for images ``keep``: the new data and offsets, no Python loop."""
    if _all(keep, len(off) - 1):
        return data, off
    lengths = off[1:][keep] - off[:-1][keep]
    new_off = _offsets(lengths)
    starts = np.repeat(off[:-1][keep] - new_off[:-1], lengths)
    return data[np.arange(new_off[-1]) + starts], new_off


class RaggedRows(_Table):
    """Per-image ``float32 [n_i, k]`` arrays stored as ``rows [sum n_i, k]`` and ``offsets [n + 1]``."""

    def __init__(self, rows: np.ndarray, offsets: np.ndarray):
        rows = np.ascontiguousarray(rows, np.float32)
        offsets = np.ascontiguousarray(offsets, np.int64)
        if rows.ndim != 2 or offsets.ndim != 1 or len(offsets) < 1 or offsets[0] != 0 or offsets[-1] != len(rows):
            raise ValueError(f"RaggedRows needs rows [m, k] and offsets [n + 1] from 0 to m, got "
                             f"{rows.shape} and {offsets.shape}")  # fmt: skip
        if np.any(np.diff(offsets) < 0):
            raise ValueError("RaggedRows offsets must not decrease")
        self.rows, self.offsets = rows, offsets

    @classmethod
    def from_arrays(cls, arrays: Iterable[np.ndarray], width: int = 5) -> RaggedRows:
        parts = [np.asarray(a, np.float32).reshape(-1, width) for a in arrays]
        rows = np.concatenate(parts) if parts else np.zeros((0, width), np.float32)
        return cls(rows, _offsets(np.array([len(p) for p in parts], np.int64)))

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def _item(self, i: int) -> np.ndarray:
        return self.rows[self.offsets[i] : self.offsets[i + 1]].copy()

    def counts(self) -> np.ndarray:
        """Rows per image, ``int64 [n]``."""
        return np.diff(self.offsets)

    def take(self, keep) -> RaggedRows:
        rows, off = _gather(self.rows, self.offsets, np.asarray(keep, np.int64))
        return RaggedRows(rows, off)


class Strings(_Table):
    """Strings (file paths) as one UTF-8 ``uint8`` array plus offsets; undecodable file names round-trip."""

    def __init__(self, data: np.ndarray, offsets: np.ndarray):
        self.data = np.ascontiguousarray(data, np.uint8)
        self.offsets = np.ascontiguousarray(offsets, np.int64)

    @classmethod
    def from_list(cls, items: Iterable[str]) -> Strings:
        items = list(items)
        joined = "".join(items)
        if joined.isascii():  # the usual case: byte lengths are string lengths
            lengths = np.array([len(s) for s in items], np.int64)
            return cls(np.frombuffer(joined.encode("ascii"), np.uint8).copy(), _offsets(lengths))
        encoded = [os.fsencode(s) for s in items]
        data = np.frombuffer(b"".join(encoded), np.uint8).copy()
        return cls(data, _offsets(np.array([len(b) for b in encoded], np.int64)))

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def _item(self, i: int) -> str:
        return os.fsdecode(self.data[self.offsets[i] : self.offsets[i + 1]].tobytes())

    def take(self, keep) -> Strings:
        data, off = _gather(self.data, self.offsets, np.asarray(keep, np.int64))
        return Strings(data, off)


class Column(_Table):
    """An ``int64 [n]`` (ids: items are ``int``) or ``int32 [n, 2]`` (shapes: items are ``(h, w)``) array."""

    def __init__(self, values: np.ndarray | Sequence):
        arr = np.asarray(values)
        if arr.size == 0:
            arr = arr.reshape(0, *arr.shape[1:]) if arr.ndim > 1 else arr.reshape(0)
        self.values = np.ascontiguousarray(arr, np.int64 if arr.ndim == 1 else np.int32)

    def __len__(self) -> int:
        return len(self.values)

    def _item(self, i: int) -> int | tuple[int, ...]:
        v = self.values[i]
        return int(v) if v.ndim == 0 else tuple(int(x) for x in v)

    def __iter__(self) -> Iterator:
        if self.values.ndim == 1:
            return iter(self.values.tolist())
        return iter(tuple(r) for r in self.values.tolist())

    def take(self, keep) -> Column:
        return Column(self.values[np.asarray(keep, np.int64)])


def _index(i: Any, n: int) -> int:
    i = int(i)
    if i < 0:
        i += n
    if not 0 <= i < n:
        raise IndexError(f"index {i} out of range for {n} images")
    return i
