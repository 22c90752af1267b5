"""tools/crowd_demo.py: the crowd group of an image's rows and the false-positive count, by hand."""

import numpy as np
import pytest

from tools.crowd_demo import count_false_positives, group_rows


def test_group_rows_replaces_the_cluster_by_one_ignore_row():
    rows = np.array([[0, 0.2, 0.2, 0.1, 0.1], [1, 0.3, 0.25, 0.1, 0.1], [2, 0.8, 0.8, 0.1, 0.1]])
    out = group_rows(rows, radius=0.3)
    assert out[:, 0].tolist() == [2, -1]  # the two near shapes are inside the group, the far one stays
    np.testing.assert_allclose(out[1, 1:], [0.25, 0.225, 0.22, 0.17], atol=1e-9)  # union + 0.01 margin
    assert group_rows(rows[2:], radius=0.3) is None and group_rows(rows[[0, 2]], radius=0.3) is None


def test_count_false_positives():
    gt = {
        "annotations": [
            {"id": 1, "image_id": 0, "category_id": 0, "bbox": [0, 0, 10, 10], "iscrowd": 0},
            {"id": 2, "image_id": 0, "category_id": 0, "bbox": [50, 50, 40, 40], "iscrowd": 1},
        ]
    }
    dets = [
        {"image_id": 0, "category_id": 0, "bbox": [0, 0, 10, 10], "score": 0.9},  # TP
        {"image_id": 0, "category_id": 0, "bbox": [1, 0, 10, 10], "score": 0.8},  # duplicate: FP, not in crowd
        {"image_id": 0, "category_id": 0, "bbox": [60, 60, 10, 10], "score": 0.7},  # FP inside the crowd region
        {"image_id": 0, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 0.6},  # wrong class: FP
        {"image_id": 0, "category_id": 0, "bbox": [60, 60, 10, 10], "score": 0.1},  # below conf: not counted
    ]
    got = count_false_positives(dets, gt, conf=0.25)
    assert got == {"detections": 4, "tp": 1, "fp": 3, "fp_in_crowd": 1}
    assert count_false_positives([], gt) == pytest.approx({"detections": 0, "tp": 0, "fp": 0, "fp_in_crowd": 0})
