"""Ignore regions (class -1 rows, COCO crowd) through the readers and augmentation; multi-label rows kept."""

import json

import cv2
import numpy as np
import pytest
import torch
from builders import COLOURS, check_boxes, scene, write_scenes

from data.augment import AugConfig, flip_lr, random_affine
from data.datasets import CocoDataset, YoloDataset, collate_fn
from data.mosaic import mosaic4
from data.report import DatasetWarning
from data.yaml_io import parse_data_dict
from detloss import split_ignore

IGNORE_COLOUR = COLOURS[-1]  # check_boxes draws class c with COLOURS[c]: class -1 is the last colour


def scene_with_region(rng, h=160, w=200, first=0):
    """:func:`scene` with 3 boxes whose last one becomes an ignore region (class -1, repainted)."""
    img, lab = scene(rng, h=h, w=w, k=3, first=first)
    x1, y1, x2, y2 = (int(v) for v in lab[-1, 1:])
    img[y1:y2, x1:x2] = IGNORE_COLOUR
    lab[-1, 0] = -1
    return img, lab


@pytest.mark.parametrize("seed", range(4))
def test_regions_survive_mosaic_and_affine(seed):
    rng = np.random.default_rng(seed)
    s = 160
    parts = [
        scene_with_region(rng, h=int(rng.integers(90, 161)), w=int(rng.integers(90, 161)), first=2 * j)
        for j in range(4)
    ]
    canvas, lab = mosaic4([p[0] for p in parts], [p[1] for p in parts], s, rng)
    assert (lab[:, 0] == -1).any()
    check_boxes(canvas, lab)
    originals = np.concatenate([p[1] for p in parts])
    out, lab2 = random_affine(canvas, lab, rng, AugConfig(degrees=10, scale=0.3, translate=0.1), border=-s // 2)
    check_boxes(out, lab2, originals)  # a region dropped only once most of it is out of frame, like a box


@pytest.mark.parametrize("seed", range(3))
def test_regions_follow_affine_and_flip(seed):
    rng = np.random.default_rng(10 + seed)
    img, lab = scene_with_region(rng)
    out, lab2 = random_affine(img, lab, rng, AugConfig(degrees=20, shear=5, scale=0.4, translate=0.1))
    check_boxes(out, lab2, lab)
    out, lab3 = flip_lr(out, lab2)
    check_boxes(out, lab3)


def write_dataset(root, n=4, seed=0):
    def draw(rng, i):
        return scene_with_region(rng, h=int(rng.integers(120, 200)), w=int(rng.integers(120, 200)), first=2 * i)

    return write_scenes(root, n, draw, seed)


def test_yolo_reader_keeps_class_minus_one_through_augmentation_and_collate(tmp_path):
    src = write_dataset(tmp_path / "ds")
    names = [str(k) for k in range(12)]
    plain = YoloDataset(src, imgsz=128, names=names)
    assert plain.report.ignore_regions == 4 and plain.report.boxes == 8
    hyp = dict(hsv_h=0, hsv_s=0, hsv_v=0, degrees=5, scale=0.3, translate=0.1, fliplr=0.5, mosaic=1.0)
    ds = YoloDataset(src, imgsz=128, augment=True, hyp=hyp, names=names, seed=2)
    batch = [ds[i] for i in range(len(ds))]
    for img, lab, _, _ in batch:
        bgr = np.ascontiguousarray(img.permute(1, 2, 0).numpy()[:, :, ::-1])
        xyxy = torch.cat([lab[:, 1:2], (lab[:, 2:4] - lab[:, 4:6] / 2) * 128, (lab[:, 2:4] + lab[:, 4:6] / 2) * 128], 1)
        check_boxes(bgr, xyxy.numpy(), margin=3)
    _, targets, _, _ = collate_fn(batch)
    boxes, ignore = split_ignore(targets)
    assert len(ignore) >= 2 and (boxes[:, 1] >= 0).all()
    assert set(ignore[:, 0].tolist()) <= set(range(len(batch)))


def test_coco_crowd_arrives_as_ignore_region(tmp_path):
    (tmp_path / "imgs").mkdir()
    cv2.imwrite(str(tmp_path / "imgs" / "1.png"), np.full((30, 40, 3), 60, np.uint8))
    anns = [
        {"id": 1, "image_id": 1, "category_id": 9, "bbox": [10, 5, 20, 10], "iscrowd": 0},
        {"id": 2, "image_id": 1, "category_id": 9, "bbox": [0, 10, 20, 20], "iscrowd": 1},
    ]
    data = {"images": [{"id": 1, "file_name": "1.png", "width": 40, "height": 30}], "annotations": anns}
    data["categories"] = [{"id": 9, "name": "nine"}]
    (tmp_path / "gt.json").write_text(json.dumps(data))
    ds = CocoDataset(tmp_path / "gt.json", tmp_path / "imgs", imgsz=40)
    _, targets, _, _ = collate_fn([ds[0]])
    boxes, ignore = split_ignore(targets)
    torch.testing.assert_close(boxes, torch.tensor([[0, 0, 0.5, 0.375, 0.5, 0.25]]))
    # letterboxed to 40 x 40 (5 px padding top): crowd box x 0..20, y 15..35 of 40
    torch.testing.assert_close(ignore, torch.tensor([[0, 0.25, 25 / 40, 0.5, 0.5]]))


def test_multi_label_rows_kept_exact_duplicates_dropped(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    cv2.imwrite(str(tmp_path / "images" / "a.png"), np.full((20, 20, 3), 90, np.uint8))
    rows = "1 0.5 0.5 0.2 0.2\n3 0.5 0.5 0.2 0.2\n1 0.5 0.5 0.2 0.2\n"
    (tmp_path / "labels" / "a.txt").write_text(rows)
    with pytest.warns(DatasetWarning, match="duplicate of line 1"):
        ds = YoloDataset(tmp_path / "images", imgsz=32, names=list("abcd"))
    assert ds.labels[0][:, 0].tolist() == [1, 3]
    d = {"train": "x", "val": "x", "names": ["a"]}
    assert parse_data_dict(d)["multi_label"] is False
    assert parse_data_dict({**d, "multi_label": True})["multi_label"] is True
    with pytest.raises(ValueError, match="multi_label"):
        parse_data_dict({**d, "multi_label": "yes"})


def test_convert_round_trip_keeps_the_region(tmp_path):
    from data.convert import coco_to_yolo, yolo_to_coco

    (tmp_path / "ds" / "images").mkdir(parents=True)
    (tmp_path / "ds" / "labels").mkdir()
    cv2.imwrite(str(tmp_path / "ds" / "images" / "a.png"), np.full((20, 40, 3), 90, np.uint8))
    (tmp_path / "ds" / "labels" / "a.txt").write_text("0 0.25 0.5 0.2 0.4\n-1 0.7 0.5 0.4 0.6\n")
    data = {"path": str(tmp_path / "ds"), "train": "images", "val": "images", "names": ["a", "b"]}
    out = yolo_to_coco(data, "val", tmp_path / "instances_val.json")
    anns = json.loads(out.read_text())["annotations"]
    assert [(a["category_id"], a["iscrowd"]) for a in anns] == [(0, 0), (0, 1), (1, 1)]  # a region per class
    yaml_path = coco_to_yolo(out, tmp_path / "ds" / "images", tmp_path / "back", link=False)
    rows = (yaml_path.parent / "labels" / "val" / "a.txt").read_text().split("\n")
    assert [r.split()[0] for r in rows if r] == ["0", "-1"]  # one ignore region again, no duplicate notice
