"""tools/make_digits.py: a seeded yolov5-layout dataset that the readers accept, boxes on the drawn digits."""

from __future__ import annotations

import numpy as np

from data.datasets import build_dataset
from tools import make_digits


def test_digits_dataset_is_seeded_and_readable(tmp_path):
    a = make_digits.main(["--out", str(tmp_path / "a"), "--train", "4", "--val", "2"])
    b = make_digits.main(["--out", str(tmp_path / "b"), "--train", "4", "--val", "2"])
    for split, n in (("train", 4), ("val", 2)):
        la = sorted((a.parent / "labels" / split).iterdir())
        assert len(la) == n
        assert [p.read_text() for p in la] == [p.read_text() for p in sorted((b.parent / "labels" / split).iterdir())]
    ds = build_dataset(a, "train", 320)
    assert ds.nc == 10 and len(ds) == 4 and ds.shapes[0] == (240, 320)
    assert sum(len(lb) for lb in ds.labels) > 0


def test_boxes_cover_the_drawn_pixels():
    img, boxes = make_digits.draw(np.random.default_rng([0, 0, 1]))
    assert img.shape == (240, 320, 3) and boxes
    for c, x, y, w, h in boxes:
        assert 0 <= c < 10 and w > 0 and h > 0
        assert x >= 0 and y >= 0 and x + w <= 320 and y + h <= 240
