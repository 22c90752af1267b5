"""data.coco_gt.coco_from_labels: known boxes by hand, the category-id rule, and the two former writers
(data.convert.yolo_to_coco, tools.inference ground_truth_from_dataset) now giving the same ground truth."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from data.coco_gt import coco_from_labels
from data.convert import yolo_to_coco
from data.datasets import CocoDataset, YoloDataset
from data.demo import generate_demo
from data.yaml_io import load_data_yaml
from tools.inference.datasets import ground_truth_from_dataset


def _fake(labels, cat_ids, shapes=((50, 100),)):
    return SimpleNamespace(
        labels=[np.array(lb, np.float32).reshape(-1, 5) for lb in labels],
        shapes=list(shapes),
        image_ids=list(range(len(labels))),
        cat_ids=cat_ids,
        names=[f"c{c}" for c in cat_ids],
        im_files=[f"/data/images/{k}.jpg" for k in range(len(labels))],
    )


def test_known_box_category_and_crowd():
    # image 100 wide, 50 high; box centre (0.5, 0.5), size 0.2 x 0.4 -> x = 40, y = 15, w = 20, h = 20
    ds = _fake([[[1, 0.5, 0.5, 0.2, 0.4], [-1, 0.5, 0.5, 1.0, 1.0]]], cat_ids=[3, 7])
    gt = coco_from_labels(ds, root="/data")
    assert gt["images"] == [{"id": 0, "file_name": "images/0.jpg", "width": 100, "height": 50}]
    first = gt["annotations"][0]
    assert first["category_id"] == 7 and first["iscrowd"] == 0  # class 1 -> cat_ids[1]
    assert first["bbox"] == pytest.approx([40, 15, 20, 20]) and first["area"] == pytest.approx(400)
    crowd = gt["annotations"][1:]  # the ignore region: one crowd annotation per category
    assert [a["category_id"] for a in crowd] == [3, 7] and all(a["iscrowd"] == 1 for a in crowd)
    assert [a["id"] for a in gt["annotations"]] == [1, 2, 3]  # from 1: pycocotools reads id 0 as unmatched
    assert gt["categories"] == [{"id": 3, "name": "c3"}, {"id": 7, "name": "c7"}]
    assert "file_name" not in coco_from_labels(ds)["images"][0]


def test_class_outside_cat_ids_is_a_value_error():
    with pytest.raises(ValueError, match="image 0: class 2 but the dataset has 2 cat_ids"):
        coco_from_labels(_fake([[[2, 0.5, 0.5, 0.2, 0.2]]], cat_ids=[0, 1]))


def test_both_former_paths_give_the_same_ground_truth(tmp_path):
    data = generate_demo(tmp_path / "demo", seed=3, n_train=2, n_val=4)
    d = load_data_yaml(data)
    written = json.loads(yolo_to_coco(data, "val", tmp_path / "val.json").read_text())
    ds = YoloDataset(d["val"], names=d["names"])
    built = ground_truth_from_dataset(torch.utils.data.Subset(ds, [0, 1]))  # a Subset is unwrapped
    assert built["annotations"] == written["annotations"] and built["categories"] == written["categories"]
    assert [{k: v for k, v in im.items() if k != "file_name"} for im in written["images"]] == built["images"]
    assert [c["id"] for c in built["categories"]] == list(range(len(d["names"])))  # yolov5 layout: class index
    # read back from COCO JSON, the ids are the file's own, also when not contiguous
    ids = [1, 3, 7, 8, 20, 42]
    remap = {**written, "categories": [{**c, "id": ids[c["id"]]} for c in written["categories"]]}
    remap["annotations"] = [{**a, "category_id": ids[a["category_id"]]} for a in written["annotations"]]
    (tmp_path / "remap.json").write_text(json.dumps(remap))
    coco_ds = CocoDataset(tmp_path / "remap.json", d["val"])
    again = ground_truth_from_dataset(coco_ds)
    assert coco_ds.cat_ids == ids and [c["id"] for c in again["categories"]] == ids
    assert sorted(map(json.dumps, again["annotations"])) == sorted(map(json.dumps, remap["annotations"]))
