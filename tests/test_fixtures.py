"""The fixtures the tests read are in the repository, each folder with its licence (tests/fixtures/README.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent / "fixtures"

# every fixture file a test reads, and the licence file that covers it
FILES = {
    "coco/instances_val2014_100.json": "coco/LICENSE-faster_coco_eval.txt",
    "coco/instances_val2014_fakebbox100_results.json": "coco/LICENSE-cocoapi.txt",
    "coco/crowd_gt.json": "coco/LICENSE-faster_coco_eval.txt",
    "coco/crowd_dt.json": "coco/LICENSE-faster_coco_eval.txt",
    "coco/toy_gt_id0.json": "coco/LICENSE-review_object_detection_metrics.txt",
    "coco/toy_dt.json": "coco/LICENSE-review_object_detection_metrics.txt",
    "coco/more/detectron2/gt_val2017_139_285.json": "coco/more/detectron2/LICENSE",
    "coco/more/detectron2/dt_maskrcnn_139.json": "coco/more/detectron2/LICENSE",
    "coco/more/rodm/instances_v2.json": "coco/more/rodm/LICENSE",
    "coco/more/rodm/coco_dets_matched.json": "coco/more/rodm/LICENSE",
    "coco/more/rodm/sampled_gts_bbox_area.json": "coco/more/rodm/LICENSE",
    "coco/more/rodm/sampled_bbox_results.json": "coco/more/rodm/LICENSE",
    "coco/more/sahi/coco_evaluate/dataset.json": "coco/more/sahi/LICENSE",
    "coco/more/sahi/coco_evaluate/result.json": "coco/more/sahi/LICENSE",
    "coco/real-images/terrain_coco.json": "coco/real-images/LICENSE-sahi.txt",
    "coco/real-images/terrain1.jpg": "coco/real-images/LICENSE-sahi.txt",
    "coco/real-images/terrain2.png": "coco/real-images/LICENSE-sahi.txt",
}


# folders of fixtures written by hand for this project (its own licence, the repository's LICENSE)
OWN = ("voc/",)


@pytest.mark.parametrize("name", sorted(FILES))
def test_fixture_present_with_its_licence(name):
    path, licence = FIXTURES / name, FIXTURES / FILES[name]
    assert path.is_file(), f"missing fixture {path} (see tests/fixtures/README.md)"
    assert licence.is_file() and licence.stat().st_size > 500, f"missing licence {licence} for {name}"
    if path.suffix == ".json":
        json.loads(path.read_text())


def test_no_unlisted_files():
    """Everything shipped under tests/fixtures is listed above (so nothing unlicensed slips in)."""
    licences = set(FILES.values())
    shipped = {p.relative_to(FIXTURES).as_posix() for p in FIXTURES.rglob("*") if p.is_file()}
    shipped = {n for n in shipped if not n.startswith(OWN)}
    assert shipped - set(FILES) - licences == {"README.md"}
    assert sum((FIXTURES / n).stat().st_size for n in shipped) < 3_000_000  # keep the checkout small
