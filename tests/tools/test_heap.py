"""tools/cli/heap.py: with freed memory kept, a step's large tensors come from the reused heap, not fresh mmaps."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tools.cli import heap

ROOT = Path(__file__).resolve().parents[2]
# a live 10 MB tensor: is it in an mmapped block (glibc mallinfo2's hblkhd) or in the heap (arena)?
PROBE = """
import ctypes, sys, torch
sys.path.insert(0, {root!r})
from tools.cli import heap
{setup}
names = "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in names]
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = Info
x = torch.ones(2_500_000)
info = libc.mallinfo2()
print(info.hblkhd, info.arena)
"""


def _mapped_and_heap(setup: str) -> tuple[int, int]:
    code = PROBE.format(root=str(ROOT), setup=setup)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    return int(out[0]), int(out[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt / mallinfo2")
def test_kept_memory_serves_large_tensors_from_the_heap():
    """glibc's start thresholds (128 KiB, set explicitly: the dynamic threshold depends on what was freed before):
    the 10 MB tensor is an mmapped block, unmapped on free and faulted in anew next time; with
    keep_freed_memory it lies in the heap, which keeps its pages when it is freed."""
    mapped, _ = _mapped_and_heap("heap.keep_freed_memory(128 * 1024, 128 * 1024)")
    kept_mapped, kept_heap = _mapped_and_heap("assert heap.keep_freed_memory()")
    assert mapped >= 10_000_000 and kept_mapped < 10_000_000 <= kept_heap, (mapped, kept_mapped, kept_heap)


def test_no_glibc_is_a_no_op(monkeypatch):
    monkeypatch.setattr(heap.sys, "platform", "darwin")
    assert heap.keep_freed_memory() is False
