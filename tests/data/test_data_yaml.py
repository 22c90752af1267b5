"""Data YAML: paths resolved, names as list or dict, clear errors naming the file/key; build_dataset picks the
reader from the split entry; coco_gt_for finds a split's COCO ground truth."""

import json
import warnings

import cv2
import numpy as np
import pytest

from data.datasets import CocoDataset, YoloDataset, build_dataset, coco_gt_for
from data.report import DatasetError, DatasetNotFoundError, DatasetWarning
from data.yaml_io import load_data_yaml


def write(tmp_path, text, name="data.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_paths_resolved_against_yaml_folder_and_names_forms(tmp_path):
    (tmp_path / "sub").mkdir()
    p = write(
        tmp_path / "sub",
        "path: ../ds\ntrain: images/train\nval: [images/a, /abs/b]\nnames: {0: cat, 1: dog}\n"
        "extra: 7\nval_json: ann/v.json\n",
    )
    d = load_data_yaml(p)
    root = (tmp_path / "ds").resolve()
    assert d["path"] == str(root) and d["train"] == str(root / "images/train")
    assert d["val"] == [str(root / "images/a"), "/abs/b"] and d["test"] is None
    assert d["names"] == ["cat", "dog"] and d["nc"] == 2 and d["extra"] == 7
    assert d["val_json"] == str(root / "ann/v.json") and d["yaml_file"] == str(p.resolve())
    d2 = load_data_yaml(write(tmp_path, "train: t\nval: v\nnames: [a, b, c]\nnc: 3\n", "list.yaml"))
    assert d2["names"] == ["a", "b", "c"] and d2["path"] == str(tmp_path.resolve())  # no path: the YAML's folder


def test_a_relative_path_missing_beside_the_yaml_is_looked_up_in_the_current_directory(tmp_path, monkeypatch):
    """A yolov5 YAML moved into another folder (``path: ../datasets/x``, meant from where the user stands)."""
    (tmp_path / "cfg").mkdir()
    (tmp_path / "work" / "ds").mkdir(parents=True)
    p = write(tmp_path / "cfg", "path: ds\ntrain: images/train\nval: images/val\nnames: [a]\n")
    monkeypatch.chdir(tmp_path / "work")
    with pytest.warns(DatasetWarning, match=r"not a folder beside the YAML .* \(relative to the current directory\)"):
        assert load_data_yaml(p)["path"] == str((tmp_path / "work" / "ds").resolve())
    (tmp_path / "cfg" / "ds").mkdir()  # beside the YAML wins when both exist, and says nothing
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_data_yaml(p)["path"] == str((tmp_path / "cfg" / "ds").resolve())


BAD_YAML = {
    "syntax": ("train: [a, b\nval: x\n", r"bad.yaml:\d+: invalid YAML"),
    "not-mapping": ("- a\n- b\n", "must be a mapping"),
    "missing-val": ("train: a\nnames: [x]\n", r"missing key\(s\) \['val'\]"),
    "empty-names": ("train: a\nval: b\nnames: []\n", "'names' is empty"),
    "names-gap": ("train: a\nval: b\nnames: {0: x, 2: y}\n", "without gaps"),
    "names-type": ("train: a\nval: b\nnames: cat\n", "list or a mapping"),
    "nc-mismatch": ("train: a\nval: b\nnames: [x, y]\nnc: 3\n", "'nc' is 3"),
    "blank-name": ("train: a\nval: b\nnames: [x, '']\n", r"names\[1\]"),
    "path-type": ("path: [1]\ntrain: a\nval: b\nnames: [x]\n", "'path' must be a string"),
    "split-type": ("train: 3\nval: b\nnames: [x]\n", "'train' must be a path"),
    "empty-file": ("", "must be a mapping"),
}


@pytest.mark.parametrize("kind", list(BAD_YAML))
def test_invalid_yaml_errors_name_the_file_and_key(tmp_path, kind):
    text, msg = BAD_YAML[kind]
    p = write(tmp_path, text, "bad.yaml")
    with pytest.raises(DatasetError, match=msg) as e:
        load_data_yaml(p)
    assert str(p) in str(e.value)


def test_missing_yaml_and_missing_split_paths(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="nope.yaml"):
        load_data_yaml(tmp_path / "nope.yaml")
    p = write(tmp_path, "train: images/train\nval: images/val\nnames: [a]\n")
    with pytest.raises(DatasetNotFoundError, match=r"dataset path not found: .*images/train"):
        build_dataset(p, "train", 64)
    with pytest.raises(DatasetError, match="no 'test' split"):
        build_dataset(p, "test", 64)


@pytest.fixture()
def mini(tmp_path):
    """A 3-image yolov5-layout dataset with a COCO JSON of the same content."""
    root = tmp_path / "mini"
    for d in ("images/val", "labels/val"):
        (root / d).mkdir(parents=True)
    images, anns = [], []
    for i in range(3):
        cv2.imwrite(str(root / "images/val" / f"{i}.png"), np.full((20, 40, 3), 30 * i, np.uint8))
        (root / "labels/val" / f"{i}.txt").write_text(f"{i % 2} 0.5 0.5 0.5 0.5\n")
        images.append({"id": i, "file_name": f"{i}.png", "width": 40, "height": 20})
        anns.append(
            {"id": i + 1, "image_id": i, "category_id": i % 2, "bbox": [10, 5, 20, 10], "area": 200, "iscrowd": 0}
        )
    cats = [{"id": 0, "name": "a"}, {"id": 1, "name": "b"}]
    (root / "val.json").write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    (root / "list.txt").write_text("images/val/0.png\nimages/val/2.png\n")
    return root


def test_build_dataset_picks_the_reader(mini):
    common = f"path: {mini}\nnames: [a, b]\n"
    p = write(
        mini, common + "train: list.txt\nval: images/val\nval_json: val.json\ntest: val.json\ntest_images: images/val\n"
    )
    val = build_dataset(p, "val", 64)
    train = build_dataset(p, "train", 64)
    test = build_dataset(load_data_yaml(p), "test", 64)  # a loaded dict works too
    assert isinstance(val, YoloDataset) and isinstance(train, YoloDataset) and isinstance(test, CocoDataset)
    assert len(val) == 3 and len(train) == 2 and len(test) == 3
    assert test.im_files == val.im_files  # file_names resolved against the test_images key
    for i in range(3):
        assert np.allclose(val.labels[i], test.labels[i]) and val[i][3]["image_id"] == test[i][3]["image_id"]
    assert coco_gt_for(p, "val") == mini / "val.json" and coco_gt_for(p, "test") == mini / "val.json"
    assert coco_gt_for(p, "train") is None
    p2 = write(mini, common + "train: list.txt\nval: images/val\nval_json: missing.json\n", "d2.yaml")
    with pytest.raises(DatasetNotFoundError, match="missing.json"):
        coco_gt_for(p2, "val")
    p3 = write(mini, "path: .\nnames: [a, b, c]\ntrain: val.json\nval: val.json\ntrain_images: images/val\n", "d3.yaml")
    with pytest.raises(DatasetError, match="2 categories but the data YAML has 3 names"):
        build_dataset(p3, "train", 64)
    p4 = write(mini, common + "train: list.txt\nval: val.json\n", "d4.yaml")
    coco_val = build_dataset(p4, "val", 64)  # no val_images key: images under path/images/val
    assert isinstance(coco_val, CocoDataset) and coco_val.im_files == val.im_files
