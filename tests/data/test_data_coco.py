"""COCO JSON reader: the real terrain fixture (ids, categories, boxes through letterbox and back) and
each kind of bad annotation or image reported, skipped, or raised under strict=True."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from data.datasets import CocoDataset
from data.letterbox import unletterbox_boxes
from data.report import DatasetError, DatasetNotFoundError, DatasetWarning

REAL = Path(__file__).resolve().parents[1] / "fixtures" / "coco" / "real-images"  # see tests/fixtures/README.md


@pytest.fixture(scope="module")
def terrain():
    return CocoDataset(REAL / "terrain_coco.json", REAL, imgsz=640)


def test_real_terrain_fixture(terrain):
    gt = json.loads((REAL / "terrain_coco.json").read_text())
    assert len(terrain) == 2 and terrain.image_ids == [2, 3]
    assert terrain.cat_ids == [1, 2] and terrain.names == ["human", "car"] and terrain.nc == 2
    assert terrain.shapes == [(682, 1024), (1365, 2048)]
    assert terrain.report.boxes == 12 and terrain.report.skipped == 0
    for i in range(2):
        img, lab, path, meta = terrain[i]
        assert img.shape == (3, 640, 640) and meta["image_id"] == terrain.image_ids[i]
        want = [a for a in gt["annotations"] if a["image_id"] == meta["image_id"]]
        assert len(lab) == len(want)
        # targets -> letterboxed pixels -> original pixels == the JSON boxes; classes -> category ids
        xyxy = torch.cat([lab[:, 2:4] - lab[:, 4:6] / 2, lab[:, 2:4] + lab[:, 4:6] / 2], 1) * 640
        back = unletterbox_boxes(xyxy, meta["ratio"], meta["pad"], meta["orig_shape"])
        ref = torch.tensor([[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in want)])
        torch.testing.assert_close(back, ref, atol=0.05, rtol=0)
        assert [terrain.cat_ids[int(c)] for c in lab[:, 1]] == [a["category_id"] for a in want]


def test_terrain_pixels_are_the_image_rgb(terrain):
    img, _, path, meta = terrain[0]
    bgr = cv2.imread(path)
    padh = int(meta["pad"][1])
    small = cv2.resize(bgr, (640, 640 - 2 * padh), interpolation=cv2.INTER_AREA)
    got = img.permute(1, 2, 0).numpy()[padh : 640 - padh, :, ::-1].astype(float)
    assert np.abs(got - small).mean() < 2


def coco_case(tmp_path, anns, images=None, sizes=((40, 30), (40, 30))):
    """Two 40x30 (w x h) images and the given annotations (image ids 1 and 2, categories 5 and 9)."""
    (tmp_path / "imgs").mkdir(exist_ok=True)
    for k, (w, h) in enumerate(sizes, start=1):
        cv2.imwrite(str(tmp_path / "imgs" / f"{k}.png"), np.full((h, w, 3), 60, np.uint8))
    data = {
        "images": images or [{"id": k, "file_name": f"{k}.png", "width": 40, "height": 30} for k in (1, 2)],
        "annotations": [{"id": i + 1, "iscrowd": 0, **a} for i, a in enumerate(anns)],
        "categories": [{"id": 9, "name": "nine"}, {"id": 5, "name": "five"}],
    }
    path = tmp_path / "instances_x.json"
    path.write_text(json.dumps(data, indent=1))
    return path, tmp_path / "imgs"


GOOD = {"image_id": 1, "category_id": 9, "bbox": [10, 5, 20, 10]}
BAD_ANNS = {
    "unknown image": ({"image_id": 7, "category_id": 9, "bbox": [1, 1, 2, 2]}, "not in 'images'"),
    "unknown category": ({"image_id": 1, "category_id": 3, "bbox": [1, 1, 2, 2]}, "category_id 3"),
    "short bbox": ({"image_id": 1, "category_id": 9, "bbox": [1, 1, 2]}, "4 finite numbers"),
    "nan bbox": ({"image_id": 1, "category_id": 9, "bbox": [1, float("nan"), 2, 2]}, "4 finite numbers"),
    "string bbox": ({"image_id": 1, "category_id": 9, "bbox": [1, "1", 2, 2]}, "4 finite numbers"),
    "zero width": ({"image_id": 1, "category_id": 9, "bbox": [1, 1, 0, 2]}, "must be > 0"),
    "outside": ({"image_id": 1, "category_id": 9, "bbox": [30, 1, 20, 2]}, "outside the 40x30 image"),
}


@pytest.mark.parametrize("kind", list(BAD_ANNS))
def test_bad_annotation(tmp_path, kind):
    bad, reason = BAD_ANNS[kind]
    path, imgs = coco_case(tmp_path, [GOOD, bad])
    with pytest.warns(DatasetWarning, match=r"annotations\[1\] id=2"):
        ds = CocoDataset(path, imgs, imgsz=64)
    assert ds.report.counts["bad_annotation"] == 1 and reason in ds.report.first("bad_annotation")[0].reason
    np.testing.assert_allclose(ds.labels[0], [[1, 0.5, 1 / 3, 0.5, 1 / 3]], atol=1e-6)  # id 9 -> class 1
    with pytest.raises(DatasetError, match=rf"instances_x.json: annotations\[1\] id=2: .*{reason[:10]}"):
        CocoDataset(path, imgs, imgsz=64, strict=True)


def test_crowd_kept_quietly_as_ignore_region_duplicates_and_clipping_reported(tmp_path):
    crowd = {"image_id": 2, "category_id": 5, "bbox": [0, 0, 5, 5], "iscrowd": 1}
    edge = {"image_id": 2, "category_id": 5, "bbox": [-0.5, 0, 10, 30.5]}
    path, imgs = coco_case(tmp_path, [GOOD, crowd, GOOD, edge])
    with pytest.warns(DatasetWarning) as rec:
        ds = CocoDataset(path, imgs, imgsz=64, strict=True)  # duplicates/clips are repairs, not errors
    assert len(rec) == 1 and "duplicate" in str(rec[0].message)
    c = ds.report.counts
    assert (c["crowd"], c["duplicate"], c["clipped"], ds.report.boxes, ds.report.ignore_regions) == (1, 1, 1, 2, 1)
    want = [[-1, 2.5 / 40, 2.5 / 30, 5 / 40, 5 / 30], [0, 4.75 / 40, 0.5, 9.5 / 40, 1.0]]  # crowd: class -1
    np.testing.assert_allclose(ds.labels[1], want, atol=1e-6)
    assert ds.cat_ids == [5, 9] and ds.names == ["five", "nine"]


def test_missing_and_mis_sized_images(tmp_path):
    images = [
        {"id": 1, "file_name": "1.png", "width": 40, "height": 30},
        {"id": 2, "file_name": "2.png", "width": 40, "height": 30},  # the file is 50x30
        {"id": 3, "file_name": "gone.png", "width": 40, "height": 30},
    ]
    path, imgs = coco_case(tmp_path, [GOOD], images=images, sizes=((40, 30), (50, 30)))
    with pytest.warns(DatasetWarning) as rec:
        ds = CocoDataset(path, imgs, imgsz=64)
    msg = str(rec[0].message)
    assert len(rec) == 1 and "gone.png" in msg and "annotation says 40x30 but the image is 50x30" in msg
    assert ds.image_ids == [1] and ds.report.counts["bad_image"] == 2
    with pytest.raises(DatasetError, match="2.png"):
        CocoDataset(path, imgs, imgsz=64, strict=True)


def test_invalid_files(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"images": [],\n "annotations": [,]}')
    with pytest.raises(DatasetError, match=r"bad.json:2: invalid JSON"):
        CocoDataset(bad, tmp_path)
    bad.write_text('{"images": [], "annotations": []}')
    with pytest.raises(DatasetError, match="'categories'"):
        CocoDataset(bad, tmp_path)
    bad.write_text("[1, 2]")
    with pytest.raises(DatasetError, match="JSON object"):
        CocoDataset(bad, tmp_path)
    with pytest.raises(DatasetNotFoundError, match="missing.json"):
        CocoDataset(tmp_path / "missing.json", tmp_path)
    with pytest.raises(DatasetNotFoundError, match="image folder"):
        CocoDataset(bad, tmp_path / "nope")


def test_column_path_equals_the_per_annotation_path(tmp_path):
    """Well-typed annotations are checked as numpy columns; an annotation with a string id takes the per-annotation
    path. Both must keep the same rows and report the same issues in the same order."""
    rng = np.random.default_rng(0)
    anns = []
    for _ in range(300):
        x, y = rng.uniform(-1.2, 25, 2).round(1).tolist()
        w, h = rng.uniform(-0.3, 8, 2).round(1).tolist()
        anns.append({"image_id": int(rng.integers(1, 4)), "category_id": int(rng.choice([5, 9, 3])),
                     "bbox": [x, y, w, h], "iscrowd": int(rng.random() < 0.1)})  # fmt: skip
    dup = {"image_id": 2, "category_id": 5, "bbox": [1, 2, 3, 4], "iscrowd": 0}
    anns[10:10] = [dup, {**dup, "iscrowd": 1}, dup, {**dup, "iscrowd": 1}, {**dup, "category_id": 9}]
    results = []
    for kind in ("int", "str"):
        folder = tmp_path / kind
        folder.mkdir()
        path, imgs = coco_case(folder, anns)
        data = json.loads(path.read_text())
        if kind == "str":
            for a in data["annotations"]:
                a["id"] = str(a["id"])
        path.write_text(json.dumps(data))
        with pytest.warns(DatasetWarning):
            ds = CocoDataset(path, imgs, imgsz=64)
        issues = [(i.kind, i.reason.replace("'", "")) for i in ds.report.issues]
        results.append((ds.labels, dict(ds.report.counts), issues))
    (lab_a, counts_a, issues_a), (lab_b, counts_b, issues_b) = results
    assert counts_a == counts_b and 10 < counts_a["bad_annotation"] < 250 and counts_a["duplicate"] >= 1
    assert lab_a == lab_b
    assert [k for k, _ in issues_a] == [k for k, _ in issues_b]
    norm = [r.split(": ", 1)[0] for _, r in issues_a], [r.split(": ", 1)[0] for _, r in issues_b]
    assert norm[0] == norm[1]  # same annotations named, in the same order
