"""Calibration metrics on hand-made cases with known answers, the operating thresholds, and a netcal cross-check."""

from __future__ import annotations

import numpy as np
import pytest

from tools.evaluation import check_detections, check_ground_truth
from tools.evaluation.calib_metrics import calibration_figures, laece, position_ece
from tools.evaluation.calibration import reliability
from tools.evaluation.matching import DetectionTable, detection_table


def _case(gt_boxes: list[tuple], dets: list[tuple], size: int = 100) -> DetectionTable:
    """gt_boxes: (category_id, [x, y, w, h]); dets: (category_id, [x, y, w, h], score); one image of size x size."""
    gt = check_ground_truth(
        {
            "images": [{"id": 1, "width": size, "height": size}],
            "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
            "annotations": [
                {"id": k + 1, "image_id": 1, "category_id": c, "bbox": b, "area": b[2] * b[3], "iscrowd": 0}
                for k, (c, b) in enumerate(gt_boxes)
            ],
        }
    )
    dt = check_detections([{"image_id": 1, "category_id": c, "bbox": b, "score": s} for c, b, s in dets], gt)
    return detection_table(gt, dt)


def _grid(n: int) -> list[list[float]]:
    """n disjoint 8x8 boxes."""
    return [[10.0 * (k % 10), 10.0 * (k // 10), 8.0, 8.0] for k in range(n)]


def test_dece_perfect_and_known_miscalibration():
    boxes = _grid(10)
    gts = [(1, b) for b in boxes[:8]]
    perfect = _case(gts, [(1, b, 0.8) for b in boxes])  # 8 of 10 at 0.8 correct
    assert reliability(perfect, 0.25).ece == pytest.approx(0.0, abs=1e-12)
    over = _case(gts[:5], [(1, b, 0.9) for b in boxes])  # 5 of 10 at 0.9 correct
    cal = reliability(over, 0.25)
    assert cal.ece == pytest.approx(0.4) and cal.n == 10
    assert reliability(over, 0.95).n == 0 and reliability(over, 0.95).ece == 0.0  # nothing above: 0 over 0


def test_position_aware_dece_sees_what_confidence_alone_hides():
    """All at 0.5: left half correct, right half wrong. Confidence only: precision 0.5 = confidence, D-ECE 0.
    Position-aware: the left bins have precision 1, the right ones 0, each |p - 0.5| = 0.5."""
    left = [[2.0, 10.0 * k, 6.0, 6.0] for k in range(4)]
    right = [[92.0, 10.0 * k, 6.0, 6.0] for k in range(4)]
    t = _case([(1, b) for b in left], [(1, b, 0.5) for b in left + right])
    assert reliability(t, 0.25).ece == pytest.approx(0.0, abs=1e-12)
    assert position_ece(t, 0.25) == (pytest.approx(0.5), 8)
    assert position_ece(t, 0.25, bins=(10, 1, 1, 1, 1))[0] == pytest.approx(0.0, abs=1e-12)  # = conf only


def test_laece_iou_weighted_per_class_mean():
    """Class a: one TP of IoU 1 at 0.5: |0.5 - 1| = 0.5. Class b: a TP of IoU 0.6 ([0,0,10,6] on [0,0,10,10])
    at 0.60 and an FP at 0.62, one bin of 1/25 ([0.6, 0.64)): |0.61 - (0.6 + 0) / 2| = 0.31. LaECE = 0.405.
    A TP of IoU 0.6 at 0.6 alone is LaECE-calibrated (0) though D-ECE calls it 0.4 under-confident."""
    t = _case(
        [(1, [50, 50, 10, 10]), (2, [0, 0, 10, 10])],
        [(1, [50, 50, 10, 10], 0.5), (2, [0, 0, 10, 6], 0.60), (2, [80, 80, 10, 10], 0.62)],
    )
    value, per_class, n = laece(t, 0.25)
    assert per_class == {"a": pytest.approx(0.5), "b": pytest.approx(0.31)} and value == pytest.approx(0.405)
    assert n == 3
    alone = _case([(2, [0, 0, 10, 10])], [(2, [0, 0, 10, 6], 0.6)])
    assert laece(alone, 0.25)[0] == pytest.approx(0.0, abs=1e-12)
    assert reliability(alone, 0.25).ece == pytest.approx(0.4)


def test_figures_at_both_operating_points_with_counts():
    boxes = _grid(6)
    t = _case([(1, b) for b in boxes[:3]], [(1, b, s) for b, s in zip(boxes, [0.9, 0.8, 0.3, 0.2, 0.1, 0.01])])
    hi, lo = calibration_figures(t)
    assert (hi.conf_thres, hi.n, lo.conf_thres, lo.n) == (0.25, 3, 0.001, 6)
    assert hi.d_ece == pytest.approx(reliability(t, 0.25).ece) and hi.laece == pytest.approx(laece(t, 0.25)[0])
    assert "conf >= 0.25: 3 detections" in hi.line() and set(hi.d_ece_per_class) == {"a"}


def test_no_image_size_means_no_position_figure():
    gt = check_ground_truth({"images": [{"id": 1}], "categories": [{"id": 1, "name": "a"}], "annotations": []})
    dt = check_detections([{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 0.5}], gt)
    t = detection_table(gt, dt)
    with pytest.raises(ValueError, match="width and height"):
        position_ece(t, 0.25)
    assert calibration_figures(t)[0].d_ece_position is None


def test_dece_matches_netcal():
    """Confidence-only and position-aware D-ECE against netcal's ECE(bins, detection=True) on random detections."""
    netcal = pytest.importorskip("netcal.metrics")
    rng = np.random.default_rng(0)
    n = 400
    feats = rng.random((n, 5)) * [1.0, 0.9, 0.9, 0.1, 0.1] + [0.0, 0.05, 0.05, 0.0, 0.0]
    correct = (rng.random(n) < feats[:, 0] ** 2).astype(np.int8)
    t = DetectionTable(feats[:, 0], correct, correct * 0.8, np.zeros(n, np.int64), feats[:, 1:], [1], ["a"])
    ours = reliability(t, 0.0, 10).ece
    theirs = netcal.ECE(10, detection=True).measure(feats[:, :1], correct)
    assert ours == pytest.approx(float(theirs), abs=1e-9)
    ours_pos = position_ece(t, 0.0, 3)[0]
    theirs_pos = netcal.ECE(3, detection=True).measure(feats, correct)
    assert ours_pos == pytest.approx(float(theirs_pos), abs=1e-9)
