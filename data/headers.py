"""Image sizes read from file headers (a few hundred bytes), without decoding the pixels.

Formats and the fields read (each from its specification):

- JPEG (ITU-T T.81 annex B): markers ``FF xx``; a start-of-frame segment (``SOF0..SOF15`` except ``DHT``
  ``C4``, ``JPG`` ``C8`` and ``DAC`` ``CC``) holds ``precision(1) height(2) width(2)`` big-endian. The EXIF
  ``Orientation`` tag (``0x0112`` in IFD0 of the ``APP1 "Exif"`` segment, TIFF 6.0 layout) values 5..8
  rotate the picture by 90 degrees; OpenCV's ``imdecode(..., IMREAD_COLOR)`` applies it, so those swap
  height and width here too.
- PNG (RFC 2083 / ISO 15948): the 8-byte signature, then the ``IHDR`` chunk: ``width(4) height(4)``.
- WebP (Google "WebP Container Specification"): ``RIFF....WEBP`` then the first chunk: ``VP8 `` (lossy:
  after the 3-byte frame tag and the ``9d 01 2a`` start code, 14-bit width and height little-endian),
  ``VP8L`` (lossless: signature ``0x2f``, then 14 bits width-1 and 14 bits height-1) or ``VP8X``
  (extended: 24-bit canvas width-1 and height-1 after 4 bytes of flags).
- BMP (Microsoft ``BITMAPFILEHEADER`` + DIB header): ``BITMAPCOREHEADER`` (12 bytes) has 16-bit width and
  height, later headers 32-bit signed ones (a negative height means rows stored top-down).

:func:`probe` answers ``(shape, "")``, ``(None, reason)`` for a file that is surely bad (empty, unreadable,
a JPEG without its end-of-image marker, as :func:`data.sources.read_image` rules), or ``(None, "")`` where
the header gives no answer (another format, an odd header): the caller then decodes the image.
"""

from __future__ import annotations

import os
import struct
from typing import BinaryIO

Shape = tuple[int, int]  # (height, width)

_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_JPEG_NO_LENGTH = {0x01, *range(0xD0, 0xD8)}  # TEM and RST0..7 stand alone
_MAX_JPEG_SEGMENTS = 256  # a header this long is not worth walking: decode instead
_TAIL = 64  # bytes read at the end of a JPEG to find its end-of-image marker after padding


def probe(path: str | os.PathLike) -> tuple[Shape | None, str]:
    """``((h, w), "")`` from the header; ``(None, reason)`` for a bad file; ``(None, "")`` when unknown."""
    try:
        with open(path, "rb") as f:
            head = f.read(32)
            if not head:
                return None, "empty image file"
            if head[:2] == b"\xff\xd8":
                return _jpeg(f)
            if head[:8] == b"\x89PNG\r\n\x1a\n":
                return _png(head), ""
            if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
                return _webp(head), ""
            if head[:2] == b"BM":
                return _bmp(head), ""
    except OSError as e:
        return None, f"cannot read image: {e.strerror or e}"
    return None, ""


def _png(head: bytes) -> Shape | None:
    if head[12:16] != b"IHDR":
        return None
    w, h = struct.unpack(">II", head[16:24])
    return _valid(h, w)


def _webp(head: bytes) -> Shape | None:
    kind, body = head[12:16], head[20:32]
    if kind == b"VP8 " and body[3:6] == b"\x9d\x01\x2a":
        w, h = struct.unpack("<HH", body[6:10])
        return _valid(h & 0x3FFF, w & 0x3FFF)
    if kind == b"VP8L" and body[:1] == b"\x2f":
        bits = int.from_bytes(body[1:5], "little")
        return _valid(((bits >> 14) & 0x3FFF) + 1, (bits & 0x3FFF) + 1)
    if kind == b"VP8X":
        w = int.from_bytes(body[4:7], "little") + 1
        h = int.from_bytes(body[7:10], "little") + 1
        return _valid(h, w)
    return None


def _bmp(head: bytes) -> Shape | None:
    (size,) = struct.unpack("<I", head[14:18])
    if size == 12:
        w, h = struct.unpack("<HH", head[18:22])
    elif size >= 40:
        w, h = struct.unpack("<ii", head[18:26])
        h = abs(h)
    else:
        return None
    return _valid(h, w)


def _valid(h: int, w: int) -> Shape | None:
    return (h, w) if h > 0 and w > 0 else None


def _jpeg(f: BinaryIO) -> tuple[Shape | None, str]:
    f.seek(0, os.SEEK_END)
    end = f.tell()
    f.seek(max(0, end - _TAIL))
    if not f.read().rstrip(b"\x00").endswith(b"\xff\xd9"):
        return None, "truncated JPEG (no end-of-image marker)"
    f.seek(2)
    rotated = False
    for _ in range(_MAX_JPEG_SEGMENTS):
        b = f.read(1)
        while b == b"\xff":  # fill bytes before a marker
            b = f.read(1)
        if not b:
            return None, ""
        marker = b[0]
        if marker in _JPEG_NO_LENGTH:
            continue
        raw = f.read(2)
        if len(raw) < 2:
            return None, ""
        (length,) = struct.unpack(">H", raw)
        if length < 2:
            return None, ""
        if marker in _JPEG_SOF:
            seg = f.read(5)
            if len(seg) < 5:
                return None, ""
            h, w = struct.unpack(">HH", seg[1:5])
            shape = _valid(h, w)  # height 0: given later by a DNL segment; let the decoder say
            if shape is None:
                return None, ""
            return ((w, h) if rotated else shape), ""
        if marker == 0xE1:
            seg = f.read(length - 2)
            rotated = rotated or _exif_orientation(seg) in (5, 6, 7, 8)
            continue
        if marker == 0xDA:  # scan data before any frame header: not a JPEG we can read
            return None, ""
        f.seek(length - 2, os.SEEK_CUR)
    return None, ""


def _exif_orientation(seg: bytes) -> int:
    """The Orientation value of an ``APP1`` payload (``Exif\\0\\0`` + TIFF), 1 (upright) when absent or odd."""
    if seg[:6] != b"Exif\x00\x00":
        return 1
    tiff = seg[6:]
    order = {b"II": "<", b"MM": ">"}.get(tiff[:2])
    if order is None or len(tiff) < 8:
        return 1
    (ifd,) = struct.unpack(order + "I", tiff[4:8])
    if ifd + 2 > len(tiff):
        return 1
    (count,) = struct.unpack(order + "H", tiff[ifd : ifd + 2])
    for k in range(count):
        at = ifd + 2 + 12 * k
        if at + 12 > len(tiff):
            break
        tag, typ = struct.unpack(order + "HH", tiff[at : at + 4])
        if tag == 0x0112 and typ == 3:  # SHORT, value in the first 2 bytes of the value field
            (value,) = struct.unpack(order + "H", tiff[at + 8 : at + 10])
            return value
    return 1
