"""EvalConfig (frozen, validated), the metric names shared by EvalResult / results.csv / the trainer, the numpy box
overlap and the class-id map: each written once in tools.evaluation."""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np
import pytest

from tools.evaluation import EvalConfig, check_detections, check_ground_truth, class_index, evaluate_results
from tools.evaluation import metric_names as mn
from tools.evaluation.boxes import box_overlap, xywh_to_xyxy
from tools.evaluation.cocojson import class_indices


def test_defaults_are_yolov5_val_and_frozen():
    c = EvalConfig()
    assert (c.conf_thres, c.iou_thres, c.max_det, c.batch_size) == (0.001, 0.6, 300, 32)
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.conf_thres = 0.5  # type: ignore[misc]


@pytest.mark.parametrize(
    "field, value",
    [("batch_size", 0), ("max_det", 2.5), ("calib_bins", True), ("workers", -1), ("conf_thres", 1.5),
     ("iou_thres", float("nan")), ("calib_conf", "0.1"), ("half", 1), ("backend", "cocoapi")],
)  # fmt: skip
def test_bad_values_name_the_field(field, value):
    with pytest.raises(ValueError, match=f"EvalConfig.{field}"):
        EvalConfig(**{field: value})


def test_from_args_reads_known_fields_only():
    ns = argparse.Namespace(conf_thres=0.25, iou_thres=0.45, half=True, weights="w.pt", backend="faster")
    c = EvalConfig.from_args(ns, max_det=1000)
    assert (c.conf_thres, c.iou_thres, c.half, c.backend, c.max_det, c.batch_size) == (0.25, 0.45, True, "faster",
                                                                                         1000, 32)  # fmt: skip
    with pytest.raises(ValueError, match="no field"):
        EvalConfig.from_args(ns, max_dets=5)
    with pytest.raises(ValueError, match="EvalConfig.conf_thres"):
        EvalConfig.from_args(argparse.Namespace(conf_thres=2.0))


def _gt_dt() -> tuple[dict, list[dict]]:
    gt = check_ground_truth(
        {
            "images": [{"id": 1, "width": 100, "height": 100}],
            "categories": [{"id": 3, "name": "a"}, {"id": 5, "name": "b"}],
            "annotations": [
                {"id": 1, "image_id": 1, "category_id": 3, "bbox": [0, 0, 20, 20], "area": 400},
                {"id": 2, "image_id": 1, "category_id": 5, "bbox": [50, 50, 20, 20], "area": 400},
            ],
        }
    )
    dt = [
        {"image_id": 1, "category_id": 3, "bbox": [0, 0, 20, 20], "score": 0.9},  # a: found
        {"image_id": 1, "category_id": 5, "bbox": [0, 60, 10, 10], "score": 0.8},  # b: a false positive, b missed
    ]
    return gt, check_detections(dt, gt)


def test_metrics_use_the_shared_names_and_best_f1_pr():
    from tools.training.results import COLUMNS

    gt, dt = _gt_dt()
    res = evaluate_results(gt, dt, EvalConfig(backend="faster"))
    m = res.metrics()
    assert set(m) == set(mn.METRICS)  # no val losses: none were computed
    # class a: P = R = 1 at its best F1; class b: nothing right, (0, 0); the mean over both classes
    assert m[mn.PRECISION] == pytest.approx(0.5) and m[mn.RECALL] == pytest.approx(0.5)
    assert m[mn.MAP50] == pytest.approx(0.5) and m[mn.MAP] == res.map
    assert m[mn.D_ECE] == pytest.approx(res.calibration.ece)
    res.val_loss = [0.1, 0.2, 0.3]
    m = res.metrics()
    assert [m[k] for k in mn.VAL_LOSSES] == pytest.approx([0.1, 0.2, 0.3])
    assert set(m) <= set(COLUMNS)  # every validation number has its results.csv column
    assert mn.fitness(m) == pytest.approx(0.1 * res.map50 + 0.9 * res.map)


def test_trainer_rows_and_console_read_the_same_names():
    from tools.training import console
    from tools.training.trainer import _empty_val

    assert set(_empty_val()) == {*mn.METRICS, *mn.VAL_LOSSES}
    gt, dt = _gt_dt()
    res = evaluate_results(gt, dt)
    table = console.class_table(res).splitlines()
    assert table[1].split()[:3] == ["all", "1", "2"]  # images, instances
    assert [float(v) for v in table[1].split()[3:5]] == pytest.approx([0.5, 0.5])  # P, R of metrics()
    assert [float(v) for v in table[2].split()[3:5]] == pytest.approx([1.0, 1.0])  # class a


def test_box_overlap_known_values():
    a = np.array([[0, 0, 10, 10]])
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30], [2, 2, 4, 4], [3, 3, 3, 8]])
    np.testing.assert_allclose(box_overlap(a, b)[0], [1.0, 50 / 150, 0.0, 4 / 100, 0.0])
    np.testing.assert_allclose(box_overlap(b[3:4], a, over="first")[0], [1.0])  # inside a crowd region: 1
    np.testing.assert_allclose(box_overlap(b, b), box_overlap(b, b).T)  # IoU is symmetric
    assert box_overlap(np.zeros((0, 4)), b).shape == (0, 5)
    np.testing.assert_allclose(xywh_to_xyxy([[1, 2, 3, 4]]), [[1, 2, 4, 6]])
    with pytest.raises(ValueError, match="over"):
        box_overlap(a, b, over="second")


def test_class_id_map():
    assert class_index([3, 5]) == {3: 0, 5: 1}
    assert class_indices([{"category_id": 5}, {"category_id": 3}], [3, 5]).tolist() == [1, 0]
    with pytest.raises(ValueError, match="repeat"):
        class_index([3, 3])
    with pytest.raises(ValueError, match=r"not in cat_ids.*\[7\]"):
        class_indices([{"category_id": 7}], [3, 5])
