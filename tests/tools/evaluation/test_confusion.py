"""Confusion matrix and P/R/F1-confidence curves on hand-made cases whose answers are worked out in the comments."""

from __future__ import annotations

import numpy as np
import pytest

from tools.evaluation.confusion import confusion_from_coco, confusion_matrix, match_greedy
from tools.evaluation.curves import confidence_curves

BG = 2  # background index with nc = 2


def test_counts_of_a_hand_made_case():
    preds = [
        np.array(
            [
                [0, 0, 10, 10, 0.9, 0],  # on the class-0 object, right class -> [0, 0]
                [20, 20, 30, 30, 0.8, 0],  # on the class-1 object, wrong class -> [0, 1]
                [50, 50, 60, 60, 0.7, 1],  # on nothing -> [1, background]
                [0, 0, 10, 10, 0.1, 1],  # below conf 0.25: not counted at all
            ]
        ),
        np.zeros((0, 6)),  # image 1: no prediction, its class-1 object is missed -> [background, 1]
        np.array([[0, 0, 5, 5, 0.3, 0]]),  # image 2: no object -> [0, background]
    ]
    gts = [
        np.array([[0, 0, 0, 10, 10], [1, 20, 20, 30, 30]]),
        np.array([[1, 0, 0, 10, 10]]),
        np.zeros((0, 5)),
    ]
    cm = confusion_matrix(preds, gts, nc=2, names=["a", "b"])
    expected = np.zeros((3, 3), dtype=np.int64)
    expected[0, 0] = expected[0, 1] = expected[1, BG] = expected[BG, 1] = expected[0, BG] = 1
    np.testing.assert_array_equal(cm.matrix, expected)
    tp, fp, fn = cm.tp_fp_fn()
    np.testing.assert_array_equal(tp, [1, 0])
    np.testing.assert_array_equal(fp, [2, 1])  # class 0: the wrong-class box and the background box
    np.testing.assert_array_equal(fn, [0, 2])  # class 1: one confused, one missed
    norm = cm.normalised()
    np.testing.assert_allclose(norm[:, 1], [0.5, 0.0, 0.5])  # true class 1: half as class 0, half missed
    np.testing.assert_allclose(norm[:, BG], [0.5, 0.5, 0.0])
    np.testing.assert_allclose(norm.sum(0), [1, 1, 1])


def test_thresholds_are_inclusive():
    # IoU of [0,0,10,10] and [0,0,10,8] is 80/100 = 0.8; at iou_thres 0.8 and conf exactly 0.25 it still matches
    cm = confusion_matrix([np.array([[0, 0, 10, 8, 0.25, 0]])], [np.array([[0, 0, 0, 10, 10]])], 1, None, 0.25, 0.8)
    assert cm.matrix[0, 0] == 1 and cm.matrix.sum() == 1
    cm = confusion_matrix([np.array([[0, 0, 10, 8, 0.25, 0]])], [np.array([[0, 0, 0, 10, 10]])], 1, None, 0.25, 0.81)
    assert cm.matrix[0, 1] == 1 and cm.matrix[1, 0] == 1  # no match: a background box and a miss


def test_greedy_matching_keeps_every_matchable_pair():
    """A=[0,0,10,10], B=[5,0,15,10]; P1=[0,0,10,10]: IoU(A)=1, IoU(B)=50/150; P2=[2,0,12,10]: IoU(A)=80/120=0.667,
    IoU(B)=70/130=0.538. Both predictions prefer A. yolov5's rule keeps P1-A only (P2 a false positive, B missed);
    greedy takes A-P1 (1.0), skips A-P2, then matches B-P2 (0.538 >= 0.45)."""
    preds = [np.array([[0, 0, 10, 10, 0.9, 0], [2, 0, 12, 10, 0.8, 0]])]
    gts = [np.array([[0, 0, 0, 10, 10], [0, 5, 0, 15, 10]])]
    cm = confusion_matrix(preds, gts, nc=1)
    np.testing.assert_array_equal(cm.matrix, [[2, 0], [0, 0]])
    iou = np.array([[1.0, 80 / 120], [50 / 150, 70 / 130]])  # rows A, B; columns P1, P2
    assert match_greedy(iou, 0.45) == [(0, 0), (1, 1)]


def test_bad_input_names_the_problem():
    with pytest.raises(ValueError, match=r"preds\[0\] must be \[n, 6\]"):
        confusion_matrix([np.zeros((1, 5))], [np.zeros((0, 5))], 2)
    with pytest.raises(ValueError, match="class outside 0..1"):
        confusion_matrix([np.array([[0, 0, 1, 1, 0.9, 2]])], [np.zeros((0, 5))], 2)
    with pytest.raises(ValueError, match="preds has 1 images, gts 2"):
        confusion_matrix([np.zeros((0, 6))], [np.zeros((0, 5))] * 2, 2)


def _coco_case() -> tuple[dict, list[dict]]:
    """One image, two class-0 objects; class-0 detections 0.9 (hits object 1), 0.6 (on nothing), 0.3 (hits
    object 2); class 1 (id 7) has no ground truth and one detection."""
    gt = {
        "images": [{"id": 1, "width": 100, "height": 100}],
        "categories": [{"id": 3, "name": "a"}, {"id": 7, "name": "b"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 3, "bbox": [0, 0, 10, 10], "area": 100, "iscrowd": 0},
            {"id": 2, "image_id": 1, "category_id": 3, "bbox": [50, 50, 10, 10], "area": 100, "iscrowd": 0},
        ],
    }
    dt = [
        {"image_id": 1, "category_id": 3, "bbox": [0, 0, 10, 10], "score": 0.9},
        {"image_id": 1, "category_id": 3, "bbox": [80, 0, 10, 10], "score": 0.6},
        {"image_id": 1, "category_id": 3, "bbox": [50, 50, 10, 10], "score": 0.3},
        {"image_id": 1, "category_id": 7, "bbox": [0, 80, 10, 10], "score": 0.5},
    ]
    return gt, dt


def test_confidence_curves_by_hand():
    gt, dt = _coco_case()
    cur = confidence_curves(gt, dt, [3, 7], points=101)
    assert cur.names == ["a", "b"]
    # t = 0.5: detections 0.9, 0.6 -> 1 TP of 2 detections and 2 objects: P = R = F1 = 0.5
    # t = 0.2: all three, 2 TP -> P = 2/3, R = 1, F1 = 2 * (2/3) / (5/3) = 0.8
    # t = 0.95: no detection -> P = 1 (by convention), R = 0, F1 = 0
    for t, p, r, f in ((50, 0.5, 0.5, 0.5), (20, 2 / 3, 1.0, 0.8), (95, 1.0, 0.0, 0.0)):
        assert (cur.precision[0, t], cur.recall[0, t], cur.f1[0, t]) == pytest.approx((p, r, f))
    assert np.isnan(cur.recall[1]).all() and list(cur.valid) == [0]  # class without ground truth: left out
    np.testing.assert_allclose(cur.mean("f1"), cur.f1[0])
    best, at = cur.best_f1()
    assert best == pytest.approx(0.8) and at <= 0.3


def test_confusion_from_coco_maps_category_ids_to_classes():
    gt, dt = _coco_case()
    cm = confusion_from_coco(gt, dt, [3, 7], conf_thres=0.25)
    # class 0: 0.9 and 0.3 hit the two objects, 0.6 is on background; the class-1 box (0.5) is on background
    np.testing.assert_array_equal(cm.matrix, [[2, 0, 1], [0, 0, 1], [0, 0, 0]])
    assert cm.names == ["a", "b"]
