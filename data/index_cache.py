"""The verification cache of a split, like yolov5's ``labels.cache``: a start with nothing changed reads
one file instead of every image header and label file.

Where (yolov5 ``LoadImagesAndLabels``): beside a ``.txt`` image list as ``<list>.cache``, else beside the
labels folder of the first image (``labels/train2017`` -> ``labels/train2017.cache``); when that folder is
read-only, under the detloss cache folder (:func:`cache_root`) in ``index/``, which keeps the
:data:`KEEP_FALLBACK` most recently written files (:func:`prune_fallback`).

What: the verification result (:class:`data.verify.Verified`: keep flags, shapes, labels as one array plus
offsets, the report's counts and issues) and a hash of every image and label path with its size and
modification time (and the reader settings that change the result, e.g. the number of classes). A
different hash means files changed: the cache is rebuilt. The file is a numpy ``.npz`` read with
``allow_pickle=False`` (a foreign file cannot run code); a file that does not read back as a cache of this
version is reported and rebuilt, never trusted. Written atomically (:func:`fileio.atomic_write`).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import time
import zipfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

from fileio import atomic_write

from .cache import cache_root
from .report import DatasetReport, Issue
from .store import Column, RaggedRows
from .verify import Verified

MAGIC = "detloss verification cache"
VERSION = 1
SUFFIX = ".cache"
# The fallback folder holds one file per dataset path (COCO JSON sources, read-only label folders); temporary
# datasets would otherwise fill it without end: past this many files the least recently written go.
KEEP_FALLBACK = 256


def cache_path(source: object, label_files: list[str]) -> Path:
    """The cache file of a split (yolov5's place for it; see the module docstring)."""
    if isinstance(source, str | os.PathLike) and Path(source).suffix.lower() == ".txt":
        return Path(os.path.abspath(source)).with_suffix(SUFFIX)
    folder = Path(label_files[0]).parent
    return folder.with_name(folder.name + SUFFIX)


def fallback_path(primary: Path) -> Path:
    """Where the cache of ``primary`` goes when its folder is read-only."""
    key = hashlib.blake2b(os.fsencode(str(primary)), digest_size=8).hexdigest()
    return cache_root() / "index" / f"{primary.stem}-{key}{SUFFIX}"


def files_hash(files: list[str], label_files: list[str] | None, settings: str) -> str:
    """Hash of the paths, sizes and modification times of ``files`` and ``label_files`` plus ``settings``."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{VERSION}\0{settings}\0".encode())
    for group in (files, label_files or []):
        stats = np.array([_stat(f) for f in group], np.int64)
        h.update("\0".join(group).encode("utf-8", "surrogateescape"))
        h.update(stats.tobytes())
    return h.hexdigest()


def _stat(path: str) -> tuple[int, int]:
    try:
        st = os.stat(path)
    except OSError:
        return -1, -1
    return st.st_size, st.st_mtime_ns


def load(path: Path, want: str) -> tuple[Verified | None, str]:
    """``(result, "")`` on a hit; ``(None, why)`` otherwise (``why`` is ``""`` when there is no file)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["magic"]) != MAGIC or int(z["version"]) != VERSION:
                return None, f"{path} is not a detloss cache of version {VERSION}"
            if str(z["hash"]) != want:
                return None, f"{path} is out of date (files changed)"
            keep, shapes = z["keep"].astype(bool), z["shapes"]
            labels = RaggedRows(z["label_rows"], z["label_offsets"])
            meta = json.loads(str(z["report"]))
    except FileNotFoundError:
        return None, ""
    except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile, json.JSONDecodeError) as e:
        return None, f"{path} is corrupt or not a detloss cache ({type(e).__name__}: {e})"
    if not (len(keep) == len(labels) and shapes.shape == (len(keep), 2)):
        return None, f"{path} is corrupt (its tables disagree in length)"
    report = DatasetReport(source="")
    try:
        report.counts = Counter({str(k): int(v) for k, v in meta["counts"].items()})
        report.issues = [
            Issue(str(k), str(p), None if ln is None else int(ln), str(r)) for k, p, ln, r in meta["issues"]
        ]
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        return None, f"{path} is corrupt (report: {type(e).__name__}: {e})"
    return Verified(keep, Column(shapes), labels, report), ""


def save(path: Path, result: Verified, hash_: str) -> Path | None:
    """Write the cache to ``path``, else to :func:`fallback_path`; the path written, ``None`` if neither could."""
    meta = {
        "counts": dict(result.report.counts),
        "issues": [[i.kind, i.path, i.line, i.reason] for i in result.report.issues],
    }
    buf = io.BytesIO()
    np.savez(buf, magic=np.array(MAGIC), version=np.array(VERSION), hash=np.array(hash_), keep=result.keep,
             shapes=result.shapes.values, label_rows=result.labels.rows, label_offsets=result.labels.offsets,
             report=np.array(json.dumps(meta)))  # fmt: skip
    for target in (path, fallback_path(path)):
        try:
            written = atomic_write(target, buf.getvalue())
        except OSError:
            continue
        if written.parent == fallback_path(path).parent:  # the shared folder (COCO JSON sources always)
            prune_fallback(written.parent)
        return written
    return None


def prune_fallback(folder: Path, keep: int | None = None) -> int:
    """Delete all but the ``keep`` (default :data:`KEEP_FALLBACK`) most recently written ``*.cache`` files in
    ``folder``; returns how many went.

    A deleted cache only costs its dataset one verification pass at its next start (it is rebuilt)."""
    files = []
    for f in folder.glob(f"*{SUFFIX}"):
        try:
            files.append((f.stat().st_mtime_ns, f))
        except OSError:  # removed by another process meanwhile
            continue
    old = sorted(files, reverse=True)[KEEP_FALLBACK if keep is None else keep :]
    for _, f in old:
        f.unlink(missing_ok=True)
    return len(old)


def cached_verify(primary: Path, hash_: str, verify: Callable[[], Verified], source: str) -> Verified:
    """The cached result under ``hash_`` (``primary`` or its fallback), else ``verify()`` written to the cache.

    Prints ``cache found: N images, M backgrounds, K corrupt`` on a hit (yolov5's line), the reason a cache
    file was not used, and where a new cache was written.
    """
    reasons = []
    for path in (primary, fallback_path(primary)):
        result, why = load(path, hash_)
        if result is not None:
            print(f"{source}: cache found: {_counts(result)} ({path})")
            return result
        reasons += [why] if why else []
    for why in reasons:
        print(f"{source}: {why}: verifying again")
    t0 = time.perf_counter()
    result = verify()
    written = save(primary, result, hash_)
    where = f"new cache {written}" if written else "no cache written (folders read-only)"
    print(
        f"{source}: verified {len(result.keep)} images in {time.perf_counter() - t0:.1f} s: {_counts(result)}; {where}"
    )
    return result


def _counts(r: Verified) -> str:
    kept = int(r.keep.sum())
    per_image = np.zeros(len(r.keep), np.int64)
    if len(r.labels.rows):
        owner = np.repeat(np.arange(len(r.keep)), r.labels.counts())
        np.add.at(per_image, owner[r.labels.rows[:, 0] >= 0], 1)
    backgrounds = int((r.keep & (per_image == 0)).sum())
    return f"{kept} images, {backgrounds} backgrounds, {len(r.keep) - kept} corrupt"
