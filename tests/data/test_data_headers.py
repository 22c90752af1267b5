"""Image sizes from headers equal the decoded sizes, per format, EXIF orientation included; files the headers
cannot answer for are decoded; bad files give a reason."""

import cv2
import numpy as np
import pytest
from PIL import Image

from data.headers import probe
from data.sources import read_image
from data.verify import image_shape

H, W = 37, 53  # odd, unequal sizes: a swapped or rounded field shows


def picture() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 255, (H, W, 3), np.uint8)


def write_cv2(path, img, params=()):
    assert cv2.imwrite(str(path), img, list(params))
    return path


FORMATS = {
    "jpeg": lambda p, img: write_cv2(p / "a.jpg", img),
    "jpeg-progressive": lambda p, img: Image.fromarray(img).save(p / "b.jpg", progressive=True) or p / "b.jpg",
    "jpeg-grey": lambda p, img: write_cv2(p / "g.jpg", img[:, :, 0]),
    "png": lambda p, img: write_cv2(p / "a.png", img),
    "png-grey-alpha": lambda p, img: Image.fromarray(img).convert("LA").save(p / "la.png") or p / "la.png",
    "webp-lossy (VP8)": lambda p, img: Image.fromarray(img).save(p / "a.webp", quality=80) or p / "a.webp",
    "webp-lossless (VP8L)": lambda p, img: Image.fromarray(img).save(p / "b.webp", lossless=True) or p / "b.webp",
    "webp-extended (VP8X)": lambda p, img: (
        Image.fromarray(np.dstack([img, img[:, :, :1]])).save(p / "c.webp") or p / "c.webp"
    ),  # an alpha channel needs the extended layout
    "bmp": lambda p, img: write_cv2(p / "a.bmp", img),
    "bmp-pil": lambda p, img: Image.fromarray(img).save(p / "b.bmp") or p / "b.bmp",
}


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_header_shape_equals_decoded_shape(tmp_path, fmt):
    path = FORMATS[fmt](tmp_path, picture())
    if fmt == "webp-extended (VP8X)":
        assert path.read_bytes()[12:16] == b"VP8X"
    img, _ = read_image(path)
    assert probe(path) == ((H, W), "") == ((img.shape[0], img.shape[1]), "")


@pytest.mark.parametrize("orientation", range(1, 9))
def test_jpeg_exif_orientation_swaps_like_the_decoder(tmp_path, orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"o{orientation}.jpg"
    Image.fromarray(picture()).save(path, exif=exif)
    img, _ = read_image(path)  # OpenCV applies the EXIF rotation
    want = (W, H) if orientation >= 5 else (H, W)
    assert img.shape[:2] == want and probe(path) == (want, "")


def test_big_endian_exif_and_segments_before_the_frame(tmp_path):
    """An APP1 in Motorola byte order and a long comment before SOF0 still give the rotated size."""
    base = cv2.imencode(".jpg", picture())[1].tobytes()
    tiff = b"MM\x00\x2a\x00\x00\x00\x08" + b"\x00\x01" + b"\x01\x12\x00\x03\x00\x00\x00\x01\x00\x06\x00\x00" + b"\0" * 4
    app1 = b"Exif\x00\x00" + tiff
    com = b"x" * 3000
    seg = (
        b"\xff\xe1" + (len(app1) + 2).to_bytes(2, "big") + app1 + b"\xff\xfe" + (len(com) + 2).to_bytes(2, "big") + com
    )
    path = tmp_path / "rot.jpg"
    path.write_bytes(base[:2] + seg + base[2:])
    img, _ = read_image(path)
    assert img.shape[:2] == (W, H) and probe(path) == ((W, H), "")


def test_other_formats_are_decoded_and_bad_files_named(tmp_path):
    tif = write_cv2(tmp_path / "a.tiff", picture())
    assert probe(tif) == (None, "")  # no header reader: the caller decodes
    assert image_shape(str(tif)) == ((H, W), "")
    good = cv2.imencode(".jpg", picture())[1].tobytes()
    (tmp_path / "cut.jpg").write_bytes(good[: len(good) // 2])
    assert probe(tmp_path / "cut.jpg") == (None, "truncated JPEG (no end-of-image marker)")
    (tmp_path / "empty.png").write_bytes(b"")
    assert probe(tmp_path / "empty.png") == (None, "empty image file")
    (tmp_path / "junk.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)  # signature, no IHDR: decode says no
    shape, why = image_shape(str(tmp_path / "junk.png"))
    assert shape is None and "cannot decode" in why
    assert "cannot read image" in probe(tmp_path / "missing.jpg")[1]
