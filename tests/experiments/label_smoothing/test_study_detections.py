"""Known answers of the study's error analysis (experiments/label_smoothing/detections.py), worked by hand."""

import math

import pytest

from experiments.label_smoothing.detections import class_agnostic, mean_tp_score, top_class_only, wrong_class_fraction

GT = {
    "images": [{"id": 1, "width": 100, "height": 100}, {"id": 2, "width": 100, "height": 100}],
    "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
    "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20], "area": 400, "iscrowd": 0}],
}


def _det(cat, box, score, img=1):
    return {"image_id": img, "category_id": cat, "bbox": box, "score": score}


def test_wrong_class_fraction_counts_duplicates_of_a_located_box():
    dt = [_det(1, [10, 10, 20, 20], 0.9),  # correct
          _det(2, [10, 10, 20, 20], 0.1),  # the same box named b: a wrong-class detection
          _det(2, [11, 11, 20, 20], 0.05),  # IoU 361/439 = 0.82 with the a-box: wrong class too
          _det(2, [60, 60, 20, 20], 0.3)]  # background: a false positive but not a wrong class  # fmt: skip
    out = wrong_class_fraction(GT, dt)
    assert out["dets@0.001"] == 4 and out["wrong_class@0.001"] == pytest.approx(2 / 4)
    assert out["dets@0.25"] == 2 and out["wrong_class@0.25"] == 0.0
    assert math.isnan(wrong_class_fraction(GT, [])["wrong_class@0.25"])


def test_top_class_only_and_agnostic_and_tp_score():
    dt = [_det(1, [10, 10, 20, 20], 0.9), _det(2, [10, 10, 20, 20], 0.1), _det(2, [10, 10, 20, 20], 0.2, img=2)]
    top = top_class_only(dt)
    assert sorted((d["image_id"], d["category_id"], d["score"]) for d in top) == [(1, 1, 0.9), (2, 2, 0.2)]
    gt1, dt1 = class_agnostic(GT, dt)
    assert {a["category_id"] for a in gt1["annotations"]} == {1} and {d["category_id"] for d in dt1} == {1}
    assert gt1["categories"] == [{"id": 1, "name": "object"}]
    assert mean_tp_score(GT, dt) == pytest.approx(0.9) and math.isnan(mean_tp_score(GT, dt[1:]))
