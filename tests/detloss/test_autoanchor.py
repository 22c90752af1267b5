"""detloss.autoanchor: BPR and fitness on hand-made shapes, k-means + evolution never worse, trainer wiring."""

from __future__ import annotations

import pytest
import torch

from detloss.autoanchor import anchor_fitness, best_possible_recall, check_anchors, kmean_anchors, label_wh

pytestmark = pytest.mark.usefixtures("one_thread")


def test_bpr_by_hand():
    anchors = torch.tensor([[[10.0, 10.0]]])
    # ratios to the 10x10 anchor: 20x20 -> 0.5 (ok at thr 4), 50x10 -> 0.2 (beyond 1/4), 10x39 -> 0.256 (ok)
    wh = torch.tensor([[20.0, 20.0], [50.0, 10.0], [10.0, 39.0], [10.0, 10.0]])
    assert best_possible_recall(wh, anchors, thr=4.0) == pytest.approx(0.75)
    assert best_possible_recall(wh, anchors, thr=6.0) == pytest.approx(1.0)
    # fitness: mean best ratio, 0 for the box no anchor takes
    assert anchor_fitness(wh, anchors, thr=4.0) == pytest.approx((0.5 + 0 + 10 / 39 + 1.0) / 4)


def test_fitted_anchors_raise_bpr_and_fitness():
    gen = torch.Generator().manual_seed(0)
    # two clusters the default-like anchors miss: thin tall boxes and tiny boxes
    tall = torch.stack((torch.full((200,), 6.0), torch.empty(200).uniform_(60, 80, generator=gen)), 1)
    tiny = torch.empty(200, 2).uniform_(3, 5, generator=gen)
    wh = torch.cat((tall, tiny))
    bad = torch.tensor([[[40.0, 40.0], [60.0, 60.0], [80.0, 80.0]], [[100.0, 100.0], [150, 150], [200, 200]]])
    res = check_anchors(wh, bad, thr=4.0, generations=100)
    assert res.changed and res.bpr_before < 0.1
    assert res.bpr_after > 0.98 and res.fitness_after > res.fitness_before
    assert res.anchors.shape == bad.shape
    areas = res.anchors.reshape(-1, 2).prod(1)
    assert torch.all(areas[1:] >= areas[:-1])  # smallest anchors go to the finest level
    assert "->" in res.message()


def test_good_anchors_are_kept_and_never_worsened():
    wh = torch.tensor([[10.0, 10.0], [20.0, 22.0], [40.0, 38.0]] * 10)
    good = torch.tensor([[[10.0, 10.0], [20.0, 20.0], [40.0, 40.0]]])
    res = check_anchors(wh, good)
    assert not res.changed and torch.equal(res.anchors, good) and res.bpr_before == 1.0
    # forced refit (min_bpr above 1): replaced only if strictly better
    forced = check_anchors(wh, good, min_bpr=1.01, generations=50)
    assert forced.bpr_after >= forced.bpr_before
    if forced.changed:
        assert forced.fitness_after > forced.fitness_before


def test_kmeans_is_seeded_and_validates():
    wh = torch.rand(100, 2, generator=torch.Generator().manual_seed(1)) * 50 + 3
    a, b = kmean_anchors(wh, 4, seed=3, generations=20), kmean_anchors(wh, 4, seed=3, generations=20)
    assert torch.equal(a, b) and a.shape == (4, 2)
    with pytest.raises(ValueError, match="at least n=4"):
        kmean_anchors(wh[:3], 4)
    with pytest.raises(ValueError, match="finite and > 0"):
        best_possible_recall(torch.tensor([[1.0, float("nan")]]), torch.ones(1, 1, 2))
    with pytest.raises(ValueError, match=r"Tensor\[n, 2\]"):
        anchor_fitness(torch.ones(3), torch.ones(1, 1, 2))


def test_label_wh_scales_to_imgsz_and_skips_ignore_rows():
    labels = [torch.tensor([[0, 0.5, 0.5, 0.5, 0.25], [-1, 0.5, 0.5, 0.9, 0.9]]).numpy()]
    wh = label_wh([(100, 200)], labels, imgsz=400, seed=0)  # long side 200 -> 400: factor 2
    assert wh.shape == (1, 2)
    assert 0.9 * 200 <= wh[0, 0] <= 1.1 * 200 and 0.9 * 50 <= wh[0, 1] <= 1.1 * 50
