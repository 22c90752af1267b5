"""Keep freed memory in the process: a training step allocates and frees the same large tensors every step.

glibc's ``malloc`` serves a block above its mmap threshold (128 KiB at start, then up to the largest block freed,
at most 32 MiB) with a fresh ``mmap`` and returns it to the kernel on free, and trims the heap top above its trim
threshold: the next step's tensor of the same size is fresh memory again, and the kernel faults it in a page
(4 KiB) at a time. On the CPU that costs several times the work on the data. Measured (glibc 2.36, 2-core AMD
EPYC, one thread): cloning a 10 MB tensor took 9.2 ms with glibc's defaults, 5.1 ms with the mmap threshold at
32 MiB, 1.5 ms at 1 GiB, and a copy into memory already held 0.5 ms. :func:`keep_freed_memory` sets the mmap
threshold to 1 GiB (32 MiB where a glibc refuses more) and the trim threshold as high (freed heap memory stays
mapped): what ``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_`` in the environment do, or the jemalloc /
tcmalloc that Intel's PyTorch CPU tuning guide preloads. The price is resident memory that is not handed back
while the process runs. Only the scripts call it (``tools/train.py``), never the ``detloss``
library: it is a setting of the whole process.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc malloc.h
MMAP_THRESHOLD = 1 << 30
MMAP_THRESHOLD_DOCUMENTED_MAX = 32 << 20  # the limit glibc's manual gives for 64-bit
TRIM_THRESHOLD = 1 << 30


def keep_freed_memory(mmap_threshold: int = MMAP_THRESHOLD, trim_threshold: int = TRIM_THRESHOLD) -> bool:
    """Set glibc's mmap and trim thresholds (module docstring); True when done, False where there is no glibc
    ``mallopt`` (macOS, Windows, musl): nothing changes there."""
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    ok = bool(mallopt(M_MMAP_THRESHOLD, mmap_threshold))
    if not ok:
        ok = bool(mallopt(M_MMAP_THRESHOLD, min(mmap_threshold, MMAP_THRESHOLD_DOCUMENTED_MAX)))
    return ok and bool(mallopt(M_TRIM_THRESHOLD, trim_threshold))


def add_malloc_flag(parser: argparse.ArgumentParser, default: str) -> None:
    """The benchmarks' ``--malloc keep|default``: freed memory kept as ``tools/train.py`` keeps it, or glibc's own
    thresholds (a plain process); :func:`apply_malloc_flag` acts on it."""
    parser.add_argument("--malloc", choices=["keep", "default"], default=default,
                        help="keep: freed memory kept in the process as tools/train.py does (tools/cli/heap.py); "
                             "default: glibc's own thresholds (run both to compare)")  # fmt: skip


def apply_malloc_flag(value: str) -> None:
    if value == "keep":
        print(f"malloc: freed memory kept in the process (as tools/train.py): {keep_freed_memory()}")
