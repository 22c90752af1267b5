"""data.tiling: tile placement (stride, overlap, edges, small images) and the boxes of a tile (clip, keep rule)."""

from __future__ import annotations

import numpy as np
import pytest

from data.tiling import boxes_in_window, tile_labels, tile_starts, tile_windows


def test_starts_step_by_tile_minus_overlap_and_the_last_ends_at_the_edge():
    assert tile_starts(1000, 320, 64).tolist() == [0, 256, 512, 680]  # stride 256; 680 + 320 = 1000
    assert tile_starts(832, 320, 64).tolist() == [0, 256, 512]  # 512 + 320 = 832: no extra tile
    assert tile_starts(321, 320, 0).tolist() == [0, 1]
    assert tile_starts(320, 320, 64).tolist() == [0] and tile_starts(100, 320, 64).tolist() == [0]


@pytest.mark.parametrize("h,w,tile,overlap", [(1035, 1249, 320, 64), (400, 400, 320, 64), (700, 333, 128, 0)])
def test_windows_are_full_size_cover_every_pixel_and_overlap_at_least_as_asked(h, w, tile, overlap):
    win = tile_windows(h, w, tile, overlap)
    assert ((win[:, 2] - win[:, 0]) == tile).all() and ((win[:, 3] - win[:, 1]) == tile).all()
    seen = np.zeros((h, w), int)
    for x0, y0, x1, y1 in win:
        seen[y0:y1, x0:x1] += 1
    assert seen.min() >= 1
    xs = np.unique(win[:, 0])
    assert (np.diff(xs) <= tile - overlap).all()  # neighbours share at least `overlap` pixels
    assert win[-1, 2] == w and win[-1, 3] == h


def test_an_image_smaller_than_the_tile_is_one_tile_of_its_own_size():
    assert tile_windows(50, 80, 320, 64).tolist() == [[0, 0, 80, 50]]
    assert tile_windows(50, 700, 320, 64)[:, 3].tolist() == [50, 50, 50]  # tall enough in x only


def test_bad_parameters_are_value_errors():
    with pytest.raises(ValueError, match="overlap must be smaller"):
        tile_starts(1000, 64, 64)
    with pytest.raises(ValueError, match="tile"):
        tile_starts(1000, 0, 0)
    with pytest.raises(ValueError, match="min_visible"):
        boxes_in_window([0], [[0, 0, 1, 1]], (0, 0, 10, 10), min_visible=0)
    with pytest.raises(ValueError, match="cls has 2"):
        boxes_in_window([0, 1], [[0, 0, 1, 1]], (0, 0, 10, 10))


def test_boxes_are_clipped_shifted_and_kept_by_the_visible_fraction():
    window = (100, 50, 200, 150)
    boxes = [
        [110, 60, 130, 80],  # inside: kept as is, shifted by (100, 50)
        [180, 60, 220, 80],  # half inside (20 of 40 px): kept at min_visible 0.5
        [190, 60, 240, 80],  # 10 of 50 px inside: an ignore region
        [300, 300, 310, 310],  # outside: dropped
        [90, 140, 120, 170],  # an ignore region of the source, 2/3 x 1/3 inside: stays one
        [199.5, 60, 230, 80],  # 0.5 px inside: a sliver, dropped
    ]
    cls, out = boxes_in_window([3, 4, 5, 6, -1, 7], boxes, window, min_visible=0.5)
    assert cls.tolist() == [3, 4, -1, -1]
    np.testing.assert_allclose(out, [[10, 10, 30, 30], [80, 10, 100, 30], [90, 10, 100, 30], [0, 90, 20, 100]])
    cls, _ = boxes_in_window([3, 4, 5], boxes[:3], window, min_visible=0.2)
    assert cls.tolist() == [3, 4, 5]  # 10/50 = 0.2 inside now suffices


def test_tile_labels_normalise_to_the_tile_and_the_whole_image_is_the_identity():
    labels = np.array([[0, 0.5, 0.5, 0.2, 0.4], [1, 0.1, 0.9, 0.2, 0.2]], np.float32)
    np.testing.assert_allclose(tile_labels(labels, (100, 200), (0, 0, 200, 100)), labels, atol=1e-6)
    # the first box is x 80..120, y 30..70 px; the tile x 100..200, y 0..100 sees half of it
    rows = tile_labels(labels, (100, 200), (100, 0, 200, 100))
    np.testing.assert_allclose(rows, [[0, 0.1, 0.5, 0.2, 0.4]], atol=1e-6)
