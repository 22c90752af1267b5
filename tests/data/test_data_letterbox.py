"""Letterbox forward geometry (worked by hand) and the inverse mapping of boxes, on synthetic and real images."""

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from data.letterbox import letterbox, letterbox_boxes, unletterbox_boxes

REAL = Path(__file__).resolve().parents[1] / "fixtures" / "coco" / "real-images"  # see tests/fixtures/README.md


def test_landscape_to_square_by_hand():
    # 200x100 (w x h) into 64: r = 0.32 -> 64x32 resized, 32 rows of padding split 16/16
    img = np.full((100, 200, 3), 200, np.uint8)
    out, ratio, pad = letterbox(img, 64)
    assert out.shape == (64, 64, 3)
    assert ratio == (0.32, 0.32) and pad == (0.0, 16.0)
    assert (out[:16] == 114).all() and (out[48:] == 114).all() and (out[16:48] == 200).all()


def test_odd_padding_goes_bottom_right_and_ratio_is_the_applied_one():
    img = np.zeros((33, 100, 3), np.uint8)  # r = 0.5 -> 50 x round(16.5) = 16 or 17 rows
    out, (rw, rh), (pw, ph) = letterbox(img, (50, 50))
    uh = round(33 * 0.5)
    assert rh == uh / 33 and rw == 0.5 and pw == 0
    assert ph == (50 - uh) // 2 and out.shape[:2] == (50, 50)


def test_auto_pads_to_stride_and_scaleup_false_never_enlarges():
    img = np.zeros((100, 200, 3), np.uint8)
    out, ratio, pad = letterbox(img, 640, auto=True, stride=32)
    assert out.shape[:2] == (320, 640)  # 640x320 already a multiple of 32: no padding
    assert pad == (0.0, 0.0) and ratio == (3.2, 3.2)
    out, ratio, pad = letterbox(img, 640, scaleup=False)
    assert ratio == (1.0, 1.0) and pad == (220.0, 270.0) and out.shape[:2] == (640, 640)


def test_bad_arguments():
    with pytest.raises(ValueError, match="new_shape"):
        letterbox(np.zeros((4, 4, 3), np.uint8), 0)
    with pytest.raises(ValueError, match="img"):
        letterbox(np.zeros((0, 4, 3), np.uint8), 32)
    with pytest.raises(ValueError, match=r"\[N, 4\]"):
        unletterbox_boxes(np.zeros((2, 3)), (1, 1), (0, 0), (10, 10))


@pytest.mark.parametrize("shape", [(100, 200), (333, 97), (640, 640), (17, 1000)])
def test_box_round_trip_numpy_and_torch(shape):
    rng = np.random.default_rng(sum(shape))
    h0, w0 = shape
    xy = rng.uniform(0, 1, (20, 2, 2)) * [w0, h0]
    boxes = np.concatenate([xy.min(1), xy.max(1)], 1)
    _, ratio, pad = letterbox(np.zeros((h0, w0, 3), np.uint8), 320)
    fwd = letterbox_boxes(boxes, ratio, pad)
    assert fwd.min() >= 0 and fwd.max() <= 320 + 1e-3
    back = unletterbox_boxes(fwd, ratio, pad, (h0, w0))
    np.testing.assert_allclose(back, boxes, atol=1e-3)
    t = torch.from_numpy(fwd).double()
    back_t = unletterbox_boxes(t, ratio, pad, (h0, w0))
    assert isinstance(back_t, torch.Tensor) and torch.equal(t, torch.from_numpy(fwd).double())  # input untouched
    torch.testing.assert_close(back_t, torch.from_numpy(boxes), atol=1e-3, rtol=0)


def test_inverse_clips_to_the_original_image():
    _, ratio, pad = letterbox(np.zeros((100, 200, 3), np.uint8), 64)
    back = unletterbox_boxes(np.array([[-5.0, 0.0, 70.0, 64.0]]), ratio, pad, (100, 200))
    np.testing.assert_allclose(back, [[0, 0, 200, 100]])


@pytest.mark.parametrize("name", ["terrain1.jpg", "terrain2.png"])
def test_real_image_content_lands_where_the_mapping_says(name):
    path = REAL / name
    img = cv2.imread(str(path))
    h0, w0 = img.shape[:2]
    out, ratio, pad = letterbox(img, 640)
    assert out.shape == (640, 640, 3)
    # a patch of the original maps onto the same content of the letterboxed image
    box = np.array([[w0 * 0.3, h0 * 0.4, w0 * 0.6, h0 * 0.7]])
    x1, y1, x2, y2 = letterbox_boxes(box, ratio, pad)[0].round().astype(int)
    a = cv2.resize(img[int(box[0, 1]) : int(box[0, 3]), int(box[0, 0]) : int(box[0, 2])], (x2 - x1, y2 - y1))
    diff = np.abs(a.astype(float) - out[y1:y2, x1:x2].astype(float)).mean()
    assert diff < 6, diff
    # padding rows are exactly the fill colour, content rows are not
    top = int(pad[1])
    assert (out[: top - 1] == 114).all() and (out[640 - top + 1 :] == 114).all()
    np.testing.assert_allclose(
        unletterbox_boxes(letterbox_boxes(box, ratio, pad), ratio, pad, (h0, w0)), box, atol=1e-2
    )
