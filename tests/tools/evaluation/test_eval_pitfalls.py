"""The known COCO-evaluation pitfalls, handled: empty results, id 0, unknown ids, bad JSON, id mapping, writing."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tools import eval as eval_cli
from tools.evaluation import (
    CocoFormatError,
    EvalConfig,
    atomic_write_json,
    coco80_to_91,
    detections_to_coco,
    evaluate_results,
    read_json,
)

ROOT = Path(__file__).resolve().parents[3]
FIX = ROOT / "tests" / "fixtures" / "coco"  # see tests/fixtures/README.md


def _gt(n_images: int = 2) -> dict:
    """Two 100x100 images; image 1 has a small 'a' box and a crowd region, image 2 a medium 'b' box."""
    return {
        "images": [{"id": i, "width": 100, "height": 100} for i in range(1, n_images + 1)],
        "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}, {"id": 3, "name": "c"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20], "area": 400, "iscrowd": 0},
            {"id": 2, "image_id": 2, "category_id": 2, "bbox": [0, 0, 50, 50], "area": 2500, "iscrowd": 0},
            {"id": 3, "image_id": 1, "category_id": 2, "bbox": [50, 50, 50, 50], "area": 2500, "iscrowd": 1},
        ],
    }


@pytest.mark.parametrize("backend", ["pycocotools", "faster"])
def test_empty_detections_give_zeros_and_minus_one_for_absent_ranges(backend):
    res = evaluate_results(_gt(), [], EvalConfig(backend=backend))
    # objects: small (a) and medium (b); no large non-crowd object (the large-ish crowd region does not count)
    assert res.stats == [0, 0, 0, 0, 0, -1, 0, 0, 0, 0, 0, -1]
    assert res.coco.backend == "none" and res.n_detections == 0
    assert [(c["ap"], c["instances"]) for c in res.coco.per_class] == [(0, 1), (0, 1), (-1, 0)]
    assert res.calibration is not None and res.calibration.ece == 0 and res.calibration.n == 0


def test_pycocotools_itself_fails_on_empty_results():
    """The pitfall we route around: pycocotools' loadRes([]) raises (it reads anns[0])."""
    from pycocotools.coco import COCO

    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = _gt()
        coco.createIndex()
        with pytest.raises(IndexError):
            coco.loadRes([])


@pytest.mark.filterwarnings("ignore:Found annotation id 0")  # faster-coco-eval's own warning
@pytest.mark.parametrize("name", ["crowd_gt.json", "toy_gt_id0.json"])
def test_empty_detections_equal_faster_coco_evals_native_handling(name):
    """faster-coco-eval evaluates an empty list itself; our backend-free numbers must equal its arrays."""
    from faster_coco_eval import COCO, COCOeval_faster

    gt = read_json(FIX / name)
    with pytest.warns(UserWarning) if "id0" in name else contextlib.nullcontext():
        ours = evaluate_results(gt, [], EvalConfig(backend="faster"))
    coco = COCO(gt)
    ev = COCOeval_faster(coco, coco.loadRes([]), "bbox", print_function=lambda *a: None)
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    np.testing.assert_array_equal(ours.stats, ev.stats[:12])
    np.testing.assert_array_equal(ours.coco.precision, ev.eval["precision"][:, :, :, 0, 2])


@pytest.mark.parametrize("backend", ["pycocotools", "faster"])
def test_annotation_id_zero_warns_and_reindex_fixes(backend):
    gt, dt = FIX / "toy_gt_id0.json", FIX / "toy_dt.json"
    with pytest.warns(UserWarning, match="annotation has id 0"):
        as_is = evaluate_results(gt, dt, EvalConfig(backend=backend))
    assert abs(as_is.map - 0.495217) < 1e-6
    fixed = evaluate_results(gt, dt, EvalConfig(backend=backend), reindex_ann_ids=True)  # no warning
    assert abs(fixed.map - 0.597923) < 1e-6


def test_detections_on_unknown_images_list_a_few(tmp_path):
    dt = [{"image_id": i, "category_id": 1, "bbox": [0, 0, 5, 5], "score": 0.5} for i in (1, 7, 8, 9, 10, 11, 12)]
    path = tmp_path / "dets.json"
    path.write_text(json.dumps(dt))
    msg = r"dets\.json: image ids not in the ground truth.*\[7, 8, 9, 10, 11, \.\.\.\]"
    with pytest.raises(CocoFormatError, match=msg):
        evaluate_results(_gt(), path)
    with pytest.raises(ValueError, match="6 in all"):
        evaluate_results(_gt(), dt)
    with pytest.raises(CocoFormatError, match="1 and '1' differ"):
        evaluate_results(_gt(), [{"image_id": "1", "category_id": 1, "bbox": [0, 0, 1, 1], "score": 0.5}])


def test_unknown_category_ids_are_an_error_not_silently_dropped():
    dt = [{"image_id": 1, "category_id": c, "bbox": [10, 10, 20, 20], "score": 0.9} for c in (1, 0, 80)]
    with pytest.raises(CocoFormatError, match=r"category ids not in the ground truth.*\[0, 80\].*coco80_to_91"):
        evaluate_results(_gt(), dt)


@pytest.mark.parametrize(
    "det, match",
    [
        ({"image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5]}, "no 'score'"),
        ({"image_id": 1, "category_id": 1, "bbox": [0, 0, 5], "score": 0.5}, "4 finite numbers"),
        ({"image_id": 1, "category_id": 1, "bbox": [0, 0, 5, float("nan")], "score": 0.5}, "4 finite numbers"),
        ({"image_id": 1, "category_id": 1, "bbox": [0, 0, -5, 5], "score": 0.5}, "negative width"),
        ({"image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5], "score": "high"}, "'score' must be"),
    ],
)
def test_malformed_detection_entries(det, match):
    good = {"image_id": 2, "category_id": 2, "bbox": [0, 0, 50, 50], "score": 0.9}
    with pytest.raises(CocoFormatError, match=f"<detections>: detection 1.*{match}"):
        evaluate_results(_gt(), [good, det])


def test_truncated_and_malformed_json_name_the_file(tmp_path):
    text = (FIX / "crowd_dt.json").read_text()
    cut = tmp_path / "cut.json"
    cut.write_text(text[: len(text) // 2])
    with pytest.raises(CocoFormatError, match=r"cut\.json: not valid JSON"):
        evaluate_results(FIX / "crowd_gt.json", cut)
    bad_gt = tmp_path / "gt.json"
    bad_gt.write_text("{'images': []}")
    with pytest.raises(ValueError, match=r"gt\.json: not valid JSON .*line 1, column 2"):
        evaluate_results(bad_gt, FIX / "crowd_dt.json")
    binary = tmp_path / "bin.json"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(CocoFormatError, match=r"bin\.json: not a UTF-8"):
        read_json(binary)
    with pytest.raises(CocoFormatError, match="got an object.*a ground-truth file"):
        evaluate_results(FIX / "crowd_gt.json", FIX / "crowd_gt.json")


def test_ground_truth_checks():
    gt = _gt()
    del gt["categories"]
    with pytest.raises(CocoFormatError, match="missing or non-list 'categories'"):
        evaluate_results(gt, [])
    gt = _gt()
    gt["annotations"][1]["id"] = 1
    with pytest.raises(CocoFormatError, match=r"annotations\[1\] repeats annotation id 1"):
        evaluate_results(gt, [])
    assert evaluate_results(gt, [], reindex_ann_ids=True).stats[0] == 0  # renumbering resolves duplicates too
    gt = _gt()
    gt["annotations"][0]["image_id"] = 99
    with pytest.raises(CocoFormatError, match="image_id 99 is not in 'images'"):
        evaluate_results(gt, [])


def test_missing_area_uses_wh_with_a_warning_and_missing_iscrowd_is_zero():
    gt = _gt()
    for a in gt["annotations"]:
        del a["area"]
    del gt["annotations"][0]["iscrowd"]
    dt = [{"image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20], "score": 0.9}]
    with pytest.warns(UserWarning, match="3 annotations have no 'area'"):
        res = evaluate_results(gt, dt, EvalConfig(backend="pycocotools"))
    assert res.stats[3] == pytest.approx(1.0, abs=1e-12)  # the 20x20 box is small (w*h = 400): AP_small perfect
    assert "area" not in gt["annotations"][0]  # the caller's dict is untouched


def test_img_ids_restricts_like_a_filtered_ground_truth():
    gt = _gt(3)
    dt = [
        {"image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20], "score": 0.9},
        {"image_id": 2, "category_id": 2, "bbox": [0, 0, 40, 50], "score": 0.8},
        {"image_id": 2, "category_id": 1, "bbox": [0, 0, 40, 50], "score": 0.7},
    ]
    sub = evaluate_results(gt, dt, EvalConfig(backend="faster"), img_ids=[2])
    gt_f = dict(gt, images=[im for im in gt["images"] if im["id"] == 2])
    gt_f["annotations"] = [a for a in gt["annotations"] if a["image_id"] == 2]
    ref = evaluate_results(gt_f, [d for d in dt if d["image_id"] == 2], EvalConfig(backend="pycocotools"))
    np.testing.assert_allclose(sub.stats, ref.stats, atol=1e-12)
    assert sub.n_images == 1 and sub.n_detections == 2 and sub.calibration.n == 2
    with pytest.raises(ValueError, match="img_ids not in the ground truth"):
        evaluate_results(gt, dt, img_ids=[2, 42])


def test_scores_outside_unit_interval_skip_calibration_with_a_warning():
    dt = [{"image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20], "score": 3.5}]
    with pytest.warns(UserWarning, match="no calibration"):
        res = evaluate_results(_gt(), dt)
    assert res.calibration is None and res.map > 0 and res.to_dict()["calibration"] is None


def test_coco80_to_91():
    ids = coco80_to_91()
    assert len(ids) == 80 == len(set(ids)) and ids == sorted(ids)
    assert ids[0] == 1 and ids[11] == 13 and ids[79] == 90  # person, stop sign (12 unused), toothbrush
    assert ids == sorted(c["id"] for c in read_json(FIX / "instances_val2014_100.json")["categories"])


def test_detections_to_coco_writes_xywh_ids_and_rounded_scores():
    boxes = torch.tensor([[10.0, 20.0, 40.5, 60.25], [0.12345, 0.0, 1.0, 2.0]])
    out = detections_to_coco(boxes, torch.tensor([0.9, 0.123456789]), torch.tensor([0.0, 79.0]), 42, coco80_to_91())
    assert out == [
        {"image_id": 42, "category_id": 1, "bbox": [10.0, 20.0, 30.5, 40.25], "score": 0.9},
        {"image_id": 42, "category_id": 90, "bbox": [0.123, 0.0, 0.877, 2.0], "score": 0.12346},
    ]
    assert abs(out[0]["score"] - 0.9) < 1e-7  # float32 0.9 written as 0.9, not 0.8999999762
    generic = detections_to_coco([[0, 0, 1, 1]], [0.5], [2], "img.jpg", cat_ids=[5, 6, 7])
    assert generic[0]["category_id"] == 7 and generic[0]["image_id"] == "img.jpg"
    assert detections_to_coco([[0, 0, 1, 1]], [0.5], [2], 1)[0]["category_id"] == 2  # no mapping: identity
    with pytest.raises(ValueError, match="class index 3 outside cat_ids"):
        detections_to_coco([[0, 0, 1, 1]], [0.5], [3], 1, cat_ids=[5, 6, 7])
    with pytest.raises(ValueError, match="differ in length"):
        detections_to_coco([[0, 0, 1, 1]], [0.5, 0.6], [0], 1)


def test_written_results_evaluate_to_a_perfect_score(tmp_path):
    """Round trip: ground-truth boxes written as detections (xyxy -> xywh) give AP 1 on the non-crowd boxes."""
    gt = _gt()
    dets = []
    for a in gt["annotations"]:
        if not a["iscrowd"]:
            x, y, w, h = a["bbox"]
            dets += detections_to_coco([[x, y, x + w, y + h]], [0.9], [a["category_id"] - 1], a["image_id"], [1, 2, 3])
    path = atomic_write_json(tmp_path / "dt.json", dets)
    res = evaluate_results(gt, path)
    assert res.stats[:3] == pytest.approx([1.0, 1.0, 1.0], abs=1e-12)


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    path = tmp_path / "out.json"
    atomic_write_json(path, {"ok": 1})
    with pytest.raises(ValueError):
        atomic_write_json(path, {"bad": float("nan")})
    assert json.loads(path.read_text()) == {"ok": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_cli_argument_errors(capsys):
    with pytest.raises(SystemExit) as e:
        eval_cli.main(["--dt", "x.json"])
    assert e.value.code == 2 and "--dt needs --gt" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        eval_cli.main(["--gt", "g.json", "--dt", "d.json", "--weights", "w.pt"])


def test_cli_script_reports_bad_input_with_exit_status_2(tmp_path):
    (tmp_path / "gt.json").write_text(json.dumps(_gt()))
    (tmp_path / "dt.json").write_text('[{"image_id": 1, ')
    out = tmp_path / "metrics.json"
    cmd = [sys.executable, str(ROOT / "tools" / "eval.py"), "--gt", str(tmp_path / "gt.json")]
    cmd += ["--dt", str(tmp_path / "dt.json"), "--json-out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "dt.json: not valid JSON" in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()
