"""COCO evaluation on real fixtures: both backends reproduce pycocotools' published figures.

Fixtures, where they come from and their reference numbers: ``tests/fixtures/README.md``.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
from pathlib import Path

import numpy as np
import pytest

from tools import eval as eval_cli
from tools.evaluation import STAT_NAMES, EvalConfig, evaluate_results, read_json

FIX = Path(__file__).resolve().parents[2] / "fixtures" / "coco"

# From tests/fixtures/README.md (pycocotools bbox stats, 6 decimals).
VAL2014 = [0.504581, 0.696973, 0.572982, 0.585626, 0.519400, 0.501398, 0.386813, 0.593680, 0.595353, 0.639811, 0.566421]
VAL2014 += [0.564291]
CROWD = [0.709901, 1.000000, 0.841584, -1, 0.709901, -1, 0.000000, 0.453846, 0.715385, -1, 0.715385, -1]
SETS = {
    "val2014": ("instances_val2014_100.json", "instances_val2014_fakebbox100_results.json"),
    "crowd": ("crowd_gt.json", "crowd_dt.json"),
    "toy_id0": ("toy_gt_id0.json", "toy_dt.json"),
    "detectron2": ("more/detectron2/gt_val2017_139_285.json", "more/detectron2/dt_maskrcnn_139.json"),
    "rodm_voc": ("more/rodm/instances_v2.json", "more/rodm/coco_dets_matched.json"),
    "rodm_area": ("more/rodm/sampled_gts_bbox_area.json", "more/rodm/sampled_bbox_results.json"),
    "sahi": ("more/sahi/coco_evaluate/dataset.json", "more/sahi/coco_evaluate/result.json"),
}
AP = {"toy_id0": 0.495217, "detectron2": 0.750495, "rodm_voc": 0.346958, "rodm_area": 0.503647, "sahi": 0.071954}


def _evaluate(name: str, backend: str):
    gt, dt = SETS[name]
    if name == "toy_id0":
        with pytest.warns(UserWarning, match="id 0"):
            return evaluate_results(FIX / gt, FIX / dt, EvalConfig(backend=backend))
    return evaluate_results(FIX / gt, FIX / dt, EvalConfig(backend=backend))


@pytest.fixture(scope="module")
def results():
    """Every fixture set evaluated once with each backend (pycocotools on 100 images is ~1 s)."""
    return {(name, b): _evaluate(name, b) for name in SETS for b in ("pycocotools", "faster")}


@pytest.mark.parametrize("backend", ["pycocotools", "faster"])
@pytest.mark.parametrize("name, expected", [("val2014", VAL2014), ("crowd", CROWD)])
def test_all_twelve_stats_match_readme(results, name, expected, backend):
    res = results[name, backend]
    assert res.coco.backend == backend
    np.testing.assert_allclose(res.stats, expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("backend", ["pycocotools", "faster"])
@pytest.mark.parametrize("name", sorted(AP))
def test_ap_matches_readme(results, name, backend):
    assert abs(results[name, backend].map - AP[name]) < 1e-6


@pytest.mark.parametrize("name", sorted(SETS))
def test_backends_agree(results, name):
    a, b = results[name, "pycocotools"], results[name, "faster"]
    np.testing.assert_allclose(a.stats, b.stats, rtol=0, atol=1e-9)
    np.testing.assert_allclose(a.coco.precision, b.coco.precision, rtol=0, atol=1e-9)
    for ca, cb in zip(a.coco.per_class, b.coco.per_class):
        assert ca["category_id"] == cb["category_id"] and ca["instances"] == cb["instances"]
        assert abs(ca["ap"] - cb["ap"]) < 1e-9 and abs(ca["ap50"] - cb["ap50"]) < 1e-9


def test_summary_equals_pycocotools_own_summarize(results):
    """Our 12 numbers are read from the accumulated arrays; they must equal COCOeval.summarize() exactly."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt, dt = SETS["val2014"]
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(str(FIX / gt))
        ev = COCOeval(coco_gt, coco_gt.loadRes(str(FIX / dt)), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    np.testing.assert_allclose(results["val2014", "pycocotools"].stats, ev.stats, rtol=0, atol=1e-12)


def test_per_class_table_against_arrays(results):
    """Per-class AP is the mean of that class's precision over IoU and recall; the class mean is stats[0]."""
    res = results["val2014", "faster"]
    per = res.coco.per_class
    assert len(per) == 80 and [c["category_id"] for c in per] == sorted(c["category_id"] for c in per)
    person = next(c for c in per if c["name"] == "person")
    gt = read_json(FIX / SETS["val2014"][0])
    assert person["instances"] == sum(a["category_id"] == 1 and not a["iscrowd"] for a in gt["annotations"])
    valid = [c["ap"] for c in per if c["ap"] > -1]
    assert abs(np.mean(valid) - res.map) < 1e-12
    assert abs(np.mean([c["ap50"] for c in per if c["ap50"] > -1]) - res.map50) < 1e-12
    absent = [c for c in per if c["instances"] == 0]
    assert absent and all(c["ap"] == -1 for c in absent)  # e.g. 'keyboard': no ground truth in these 100 images


def test_gt_area_field_is_used_not_wh(results):
    """sahi's ground truth has bogus huge areas: every object is 'large', so small/medium are -1 despite tiny boxes."""
    res = results["sahi", "faster"]
    assert res.stats[3] == -1 and res.stats[4] == -1 and res.stats[5] > 0


def test_results_are_not_mutated_by_evaluation(tmp_path):
    gt = read_json(FIX / SETS["crowd"][0])
    dt = read_json(FIX / SETS["crowd"][1])
    gt0, dt0 = copy.deepcopy(gt), copy.deepcopy(dt)
    a = evaluate_results(gt, dt, EvalConfig(backend="pycocotools"))
    b = evaluate_results(gt, dt, EvalConfig(backend="faster"))
    assert gt == gt0 and dt == dt0 and a.stats == b.stats


def test_cli_results_mode_prints_and_writes(tmp_path, capsys):
    gt, dt = SETS["val2014"]
    out = tmp_path / "sub" / "metrics.json"
    res = eval_cli.main(
        ["--gt", str(FIX / gt), "--dt", str(FIX / dt), "--backend", "faster", "--json-out", str(out)]
        + ["--plots", str(tmp_path / "plots")]
    )
    text = capsys.readouterr().out
    # cocoapi's own printout of these stats: .505 .697 .573 .586 .519 .501 .387 .594 .595 .640 .566 .564
    lines = text.splitlines()[:12]
    assert all(line.startswith(" Average") for line in lines)
    printed = " ".join(line.rsplit("= ", 1)[1] for line in lines)
    assert printed == "0.505 0.697 0.573 0.586 0.519 0.501 0.387 0.594 0.595 0.640 0.566 0.564"
    assert "IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.505" in text
    assert "person" in text and "toothbrush" in text and "D-ECE" in text
    saved = json.loads(out.read_text())
    np.testing.assert_allclose(saved["stats"], VAL2014, rtol=0, atol=1e-6)
    assert saved["stats"] == res.stats and saved["stat_names"] == list(STAT_NAMES)
    assert saved["backend"] == "faster" and len(saved["per_class"]) == 80
    assert 0 < saved["calibration"]["ece"] < 1 and sum(saved["calibration"]["counts"]) == 734
    for png in ("PR_curve.png", "reliability.png"):
        assert (tmp_path / "plots" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in tmp_path.rglob("*.tmp")]
