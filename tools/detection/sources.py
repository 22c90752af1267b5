"""What ``tools/detect.py --source`` accepts: an image, a folder, a glob pattern or a video file.

A folder is listed non-recursively (as yolov5 ``LoadImages`` does), images and videos by suffix, sorted by
name; a glob (``*``, ``?``, ``[``) is expanded with ``**`` allowed. Frames come out one at a time from
:func:`iter_frames`; a file OpenCV cannot decode yields a frame with ``img=None`` and the reason, so the
caller reports it by path and goes on.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from data.sources import IMG_SUFFIXES, read_image

VID_SUFFIXES = (".asf", ".avi", ".gif", ".m4v", ".mkv", ".mov", ".mp4", ".mpeg", ".mpg", ".ts", ".wmv", ".webm")

__all__ = ["IMG_SUFFIXES", "VID_SUFFIXES", "Frame", "count_frames", "is_video", "iter_frames", "list_sources"]


@dataclass
class Frame:
    """One image to detect on: ``img`` BGR ``uint8 [H, W, 3]`` or None (then ``error`` says why).

    ``index`` is the frame number in a video (0 for an image); ``fps`` and ``n_frames`` are the video's.
    """

    path: Path
    img: np.ndarray | None
    index: int = 0
    video: bool = False
    error: str = ""
    fps: float = 0.0
    n_frames: int = 1


def is_video(path: str | os.PathLike[str]) -> bool:
    return Path(path).suffix.lower() in VID_SUFFIXES


def _media(paths: list[Path]) -> list[Path]:
    return [p for p in paths if p.is_file() and p.suffix.lower() in IMG_SUFFIXES + VID_SUFFIXES]


def list_sources(source: str | os.PathLike[str]) -> list[Path]:
    """The image and video files of ``source`` (a file, a folder or a glob pattern), sorted.

    Raises ``ValueError`` naming ``source`` when it does not exist, matches nothing, or holds no image or
    video file (suffixes ``IMG_SUFFIXES`` and ``VID_SUFFIXES``).
    """
    s = str(source)
    kinds = f"images ({' '.join(IMG_SUFFIXES)}) or videos ({' '.join(VID_SUFFIXES)})"
    if any(ch in s for ch in "*?["):
        files = _media(sorted(Path(p) for p in glob.glob(os.path.expanduser(s), recursive=True)))
        if not files:
            raise ValueError(f"--source {s!r}: the pattern matches no {kinds}")
        return files
    p = Path(s).expanduser()
    if p.is_dir():
        files = _media(sorted(p.iterdir()))
        if not files:
            raise ValueError(f"--source {s!r}: the folder holds no {kinds}")
        return files
    if p.is_file():
        if p.suffix.lower() not in IMG_SUFFIXES + VID_SUFFIXES:
            raise ValueError(f"--source {s!r}: not one of the {kinds}")
        return [p]
    raise ValueError(f"--source {s!r} does not exist (give an image, a folder, a glob pattern or a video file)")


def count_frames(files: list[Path]) -> int:
    """Images count 1, videos their frame count as OpenCV reports it (for the progress bar's total)."""
    total = 0
    for f in files:
        if is_video(f):
            cap = cv2.VideoCapture(str(f))
            total += max(int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), 0) if cap.isOpened() else 1
            cap.release()
        else:
            total += 1
    return total


def _video_frames(path: Path) -> Iterator[Frame]:
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        yield Frame(path, None, video=True, error="OpenCV cannot open the video")
        return
    fps = float(cap.get(cv2.CAP_PROP_FPS)) or 30.0
    n = max(int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), 0)
    k = 0
    try:
        while True:
            ok, img = cap.read()
            if not ok:
                break
            yield Frame(path, img, k, video=True, fps=fps, n_frames=n)
            k += 1
    finally:
        cap.release()
    if k == 0:
        yield Frame(path, None, video=True, error="the video has no readable frame")


def iter_frames(files: list[Path]) -> Iterator[Frame]:
    """Every frame of ``files`` in order: images once (``data.sources.read_image``), videos frame by frame."""
    for f in files:
        if is_video(f):
            yield from _video_frames(f)
        else:
            img, why = read_image(f)
            yield Frame(f, img, error=why)
