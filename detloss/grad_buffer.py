"""Reusable gradient memory for the fused loss path (CPU).

A prediction-sized gradient is written every step. Fresh memory of that size comes from the kernel
(glibc maps allocations above 32 MiB with ``mmap`` and unmaps them on free), so each step pays a page
fault per 4 KiB page: at batch 16 x 640 x 80 classes that costs several times the write itself. A
:class:`GradBuffers` keeps one buffer per level and hands it out again **only when nothing else still
refers to its memory**: the count of references to the buffer's storage is compared with the count it
had when the cache alone held it. Whatever kept the previous gradient (a leaf's ``.grad`` that autograd
took without copying, a tensor returned by ``torch.autograd.grad``, a hook, an autograd input buffer
of the current backward) holds a reference, so the buffer is not overwritten and a fresh one replaces
it in the cache. With ``zero_grad(set_to_none=True)`` (the default) the old ``.grad`` is dropped and
the memory is reused.

A reused buffer still holds the last gradient written into it. The fused loss writes a level's gradient as zeros
everywhere, the objectness channel, and the rows of the positives; :meth:`GradBuffers.mark` records those rows and
the buffer's version counter after the writes, and :meth:`GradBuffers.dirty` hands them back next step when the
counter has not moved since (nothing wrote into the buffer in place: an autograd input buffer that accumulated into
it, a ``clip_grad_norm_`` of a kept ``.grad``): then only those rows need zeroing, not the whole level (the
memset of 137 MB at batch 16 x 640, the largest single write of the step). Otherwise (a fresh buffer, a moved
counter) :meth:`dirty` returns ``None`` and the caller zeroes all of it.

Off the CPU (the CUDA caching allocator already reuses memory without faults) and while tracing under
``torch.compile``, :meth:`GradBuffers.get` returns a fresh ``empty_like``. The reference count comes from
``torch._C._storage_Use_Count``, a private torch function; on a torch without it the cache is never
reused (every call returns fresh memory: correct, only slower), rather than guessing.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


def _use_count_fn() -> Any:
    """``torch._C._storage_Use_Count`` where this torch has it, else ``None`` (looked up at call time)."""
    return getattr(torch._C, "_storage_Use_Count", None)


def _storage_refs(t: Tensor) -> int | None:
    """References to ``t``'s storage, or ``None`` when this torch cannot tell."""
    fn = _use_count_fn()
    return None if fn is None else int(fn(t.untyped_storage()._cdata))


class GradBuffers:
    """One reusable buffer per key: a level's gradient (key = level index) or its rows of the positives (see
    :mod:`detloss.fused`: ``ROWS_KEY + level``, ``GRAD_ROWS_KEY + level``)."""

    def __init__(self) -> None:
        self._bufs: dict[int, tuple[Tensor, int | None]] = {}
        self._marks: dict[int, tuple[int, int, Tensor]] = {}  # key: (storage id, version after the writes, rows)

    def get(self, key: int, like: Tensor) -> Tensor:
        """Uninitialised memory with the shape, strides, dtype and device of ``like``; write all of it."""

        def fits(buf: Tensor) -> bool:
            return buf.shape == like.shape and buf.stride() == like.stride() and buf.dtype == like.dtype

        return self._take(key, like.device, fits, lambda: torch.empty_like(like))

    def rows(self, key: int, n: int, width: int, dtype: torch.dtype, device: torch.device) -> Tensor:
        """Uninitialised contiguous ``Tensor[n, width]`` (e.g. the gathered rows of the positives); write all of it.

        ``n`` changes from step to step (the positives of a batch), so the cached buffer has room for more rows
        (a quarter more than asked when it is made) and the first ``n`` rows of it are handed out."""

        def fits(buf: Tensor) -> bool:
            return buf.shape[0] >= n and buf.shape[1] == width and buf.dtype == dtype

        buf = self._take(key, device, fits, lambda: torch.empty(n + n // 4, width, dtype=dtype, device=device))
        return buf[:n]

    def _take(self, key: int, device: torch.device, fits: Any, fresh: Any) -> Tensor:
        """The cached buffer of ``key`` when it ``fits`` and nothing else refers to its memory, else ``fresh()``
        (cached in its place on the CPU); always a new tensor object on that memory, never the cached one."""
        if device.type != "cpu" or torch.compiler.is_compiling() or _use_count_fn() is None:
            return fresh()
        entry = self._bufs.get(key)
        if entry is not None:
            buf, alone = entry
            if fits(buf) and alone is not None and _storage_refs(buf) == alone:
                return buf.detach()
        self._bufs.pop(key, None)
        self._marks.pop(key, None)
        buf = fresh()
        self._bufs[key] = (buf, _storage_refs(buf))
        return buf.detach()

    def mark(self, key: int, buf: Tensor, rows: Tensor) -> None:
        """Record that ``buf`` (from :meth:`get`) is zero but at ``rows`` (``LongTensor`` of rows of ``buf`` viewed
        as ``[-1, buf.shape[-1]]``) and at whatever its writer rewrites whole each time; call after the last write."""
        if key in self._bufs:
            self._marks[key] = (buf.untyped_storage()._cdata, buf._version, rows)

    def dirty(self, key: int, buf: Tensor) -> Tensor | None:
        """The rows :meth:`mark` recorded when ``buf`` is that same memory and nothing has written into it since;
        else ``None`` (fresh or changed memory: zero all of it)."""
        entry = self._marks.pop(key, None)
        if entry is None or entry[0] != buf.untyped_storage()._cdata or entry[1] != buf._version:
            return None
        return entry[2]

    def clear(self) -> None:
        """Drop the cached buffers (their memory is freed once no gradient refers to it)."""
        self._bufs.clear()
        self._marks.clear()

    def nbytes(self) -> int:
        return sum(b.untyped_storage().nbytes() for b, _ in self._bufs.values())

    def __getstate__(self) -> dict[str, Any]:  # pickling and deepcopy start empty
        return {"_bufs": {}, "_marks": {}}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._bufs, self._marks = {}, {}
