"""Target assignment: hand-worked cells, batched == per-image loop, darknet best-anchor rule."""

from __future__ import annotations

import torch

from detloss import assign_darknet, assign_yolov5

ANCHORS3 = torch.tensor([[[10, 13], [16, 30], [33, 23]], [[30, 61], [62, 45], [59, 119]],
                         [[116, 90], [156, 198], [373, 326]]], dtype=torch.float32)  # fmt: skip
STRIDES = torch.tensor([8.0, 16.0, 32.0])
GRIDS = [(80, 80), (40, 40), (20, 20)]
GRID_ANCHORS = ANCHORS3 / STRIDES.view(-1, 1, 1)


def rows(lt):
    """Positives as a sorted list of (b, a, gj, gi, tidx, rounded tbox) for order-free comparison."""
    out = [
        (int(b), int(a), int(j), int(i), int(k), tuple(round(v, 5) for v in box.tolist()))
        for b, a, j, i, k, box in zip(lt.b, lt.a, lt.gj, lt.gi, lt.tidx, lt.tbox)
    ]
    return sorted(out)


def test_yolov5_three_cells_hand_worked():
    # on the 20x20 level: x = 0.3275*20 = 6.55 (frac .55 -> right neighbour), y = 0.4225*20 = 8.45 (frac .45 -> up)
    # w, h = 0.2*640 = 128 px: ratio to anchor (116, 90) is (1.10, 1.42) < 4, to (373, 326) is (2.9, 2.5) < 4
    t = torch.tensor([[0, 2, 0.3275, 0.4225, 0.2, 0.2]])
    lv = assign_yolov5(t, GRID_ANCHORS, GRIDS)[2]
    cells = sorted({(int(j), int(i)) for j, i in zip(lv.gj, lv.gi)})
    assert cells == [(7, 6), (8, 6), (8, 7)]  # centre (8, 6), up (7, 6), right (8, 7)
    assert len(lv) == 3 * 3  # all three anchors match, three cells each
    centre = (lv.gj == 8) & (lv.gi == 6)
    torch.testing.assert_close(lv.tbox[centre][0], torch.tensor([0.55, 0.45, 4.0, 4.0]), atol=1e-5, rtol=0)
    right = lv.gi == 7
    assert torch.allclose(lv.tbox[right][:, 0], torch.tensor(-0.45), atol=1e-5)  # offset relative to the neighbour
    assert (lv.tcls == 2).all() and (lv.b == 0).all()


def test_yolov5_ratio_filter_and_border():
    # a 4 px box matches no anchor of the 32-stride level (ratio 116/4 > 4)
    t = torch.tensor([[0, 0, 0.5, 0.5, 4 / 640, 4 / 640]])
    assert len(assign_yolov5(t, GRID_ANCHORS, GRIDS)[2]) == 0
    # x = 0.8 cells from the left border (frac .8): right neighbour only; y = 79.2 (frac .2): the row above,
    # and no row below since only 0.8 cells remain to the bottom border
    t = torch.tensor([[0, 0, 0.01, 0.99, 0.02, 0.02]])
    lv = assign_yolov5(t, GRID_ANCHORS, GRIDS)[0]
    assert set(lv.gi.tolist()) == {0, 1}
    assert set(lv.gj.tolist()) == {78, 79}


def test_yolov5_batched_equals_per_image_loop():
    g = torch.Generator().manual_seed(0)
    n = 40
    wh = torch.rand(n, 2, generator=g) * 0.6 + 0.005
    xy = wh / 2 + torch.rand(n, 2, generator=g) * (1 - wh)
    t = torch.cat((torch.randint(0, 4, (n, 1), generator=g).float(), torch.randint(0, 7, (n, 1), generator=g).float(),
                   xy, wh), 1)  # fmt: skip
    for fn in (lambda x: assign_yolov5(x, GRID_ANCHORS, GRIDS), lambda x: assign_darknet(x, GRID_ANCHORS, STRIDES,
                                                                                       GRIDS, 0.213)):  # fmt: skip
        batched = fn(t)
        for level in range(3):
            looped = []
            for img in range(4):
                idx = (t[:, 0] == img).nonzero().flatten()
                lv = fn(t[idx])[level]
                looped += [(b, a, j, i, int(idx[k]), box) for b, a, j, i, k, box in rows(lv)]
            assert rows(batched[level]) == sorted(looped)


def test_darknet_best_anchor_and_threshold():
    # 30x60 px box: best anchor (30, 61) on the 16-stride level; only that one above 0.9
    t = torch.tensor([[1, 0, 0.5, 0.5, 30 / 640, 60 / 640]])
    out = assign_darknet(t, GRID_ANCHORS, STRIDES, GRIDS, iou_thresh=1.0)
    assert [len(lv) for lv in out] == [0, 1, 0]
    lv = out[1]
    assert (int(lv.a[0]), int(lv.gj[0]), int(lv.gi[0]), int(lv.b[0])) == (0, 20, 20, 1)
    # with a low threshold more anchors join (e.g. (16, 30) and (33, 23) on P3 are well below 0.5, (59,119) ~0.26)
    out = assign_darknet(t, GRID_ANCHORS, STRIDES, GRIDS, iou_thresh=0.213)
    assert sum(len(lv) for lv in out) > 1
    for lv in out:  # centre cell only
        assert len(set(zip(lv.gj.tolist(), lv.gi.tolist()))) <= 1


def test_empty_targets():
    for out in (assign_yolov5(torch.zeros(0, 6), GRID_ANCHORS, GRIDS),
                assign_darknet(torch.zeros(0, 6), GRID_ANCHORS, STRIDES, GRIDS, 0.5)):  # fmt: skip
        assert [len(lv) for lv in out] == [0, 0, 0]
