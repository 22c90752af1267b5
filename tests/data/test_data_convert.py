"""Converter: yolo -> coco -> yolo gives the same labels; coco -> yolo on the real terrain fixture; CLI."""

import json
from pathlib import Path

import numpy as np
import pytest

from data.convert import coco_to_yolo, main, yolo_to_coco
from data.datasets import CocoDataset, YoloDataset, build_dataset
from data.demo import generate_demo
from data.report import DatasetWarning
from data.yaml_io import load_data_yaml

REAL = Path(__file__).resolve().parents[1] / "fixtures" / "coco" / "real-images"  # see tests/fixtures/README.md


def test_yolo_coco_yolo_round_trip(tmp_path):
    data = generate_demo(tmp_path / "demo", seed=2, n_train=3, n_val=8)
    out_json = yolo_to_coco(data, "val", tmp_path / "out" / "instances_val.json")
    gt = json.loads(out_json.read_text())
    assert [a["id"] for a in gt["annotations"]] == list(range(1, len(gt["annotations"]) + 1))
    assert all(abs(a["area"] - a["bbox"][2] * a["bbox"][3]) < 1e-6 for a in gt["annotations"])
    d = load_data_yaml(data)
    orig = YoloDataset(d["val"], names=d["names"])
    via_coco = CocoDataset(out_json, d["val"])
    assert via_coco.image_ids == orig.image_ids and via_coco.cat_ids == orig.cat_ids
    yaml2 = coco_to_yolo(out_json, d["val"], tmp_path / "back")
    d2 = load_data_yaml(yaml2)
    assert d2["names"] == d["names"] and d2["coco_cat_ids"] == list(range(6)) and d2["val"].endswith("images/val")
    back = build_dataset(yaml2, "val", 64)
    assert [Path(f).name for f in back.im_files] == [Path(f).name for f in orig.im_files]
    for a, b in zip(orig.labels, back.labels):
        np.testing.assert_allclose(a, b, atol=1.5e-6)
    for f in ("000000.txt", "000007.txt"):  # the label files themselves round-trip to the same text
        assert (tmp_path / "back" / "labels" / "val" / f).read_text() == (
            tmp_path / "demo" / "labels" / "val" / f
        ).read_text()


def test_coco_to_yolo_on_real_terrain(tmp_path):
    out = coco_to_yolo(REAL / "terrain_coco.json", REAL, tmp_path / "terrain", split="val", link=False)
    d = load_data_yaml(out)
    assert d["names"] == ["human", "car"] and d["coco_cat_ids"] == [1, 2] and d["train"] == d["val"]
    ds = build_dataset(out, "val", 320)
    ref = CocoDataset(REAL / "terrain_coco.json", REAL, imgsz=320)
    assert len(ds) == 2 and ds.report.boxes == 12
    by_name = {Path(f).name: lb for f, lb in zip(ref.im_files, ref.labels)}
    for f, lb in zip(ds.im_files, ds.labels):
        np.testing.assert_allclose(lb, by_name[Path(f).name], atol=1e-6)
    # the source folder is untouched
    assert sorted(p.name for p in REAL.iterdir()) == [
        "LICENSE-sahi.txt",
        "terrain1.jpg",
        "terrain2.png",
        "terrain_coco.json",
    ]


def test_cli(tmp_path, capsys):
    data = generate_demo(tmp_path / "demo", seed=1, n_train=2, n_val=2)
    out = tmp_path / "v.json"
    assert main(["yolo2coco", str(data), "--split", "train", "--out", str(out)]) == 0
    assert len(json.loads(out.read_text())["images"]) == 2
    assert (
        main(["coco2yolo", str(out), "--images", str(tmp_path / "demo/images/train"), "--out", str(tmp_path / "y")])
        == 0
    )
    assert (tmp_path / "y" / "labels" / "v").is_dir()  # split named after the JSON
    assert main(["yolo2coco", str(tmp_path / "missing.yaml"), "--out", str(out)]) == 1
    assert "missing.yaml" in capsys.readouterr().err
    bad = tmp_path / "demo/labels/val/000000.txt"
    bad.write_text("9 0.5 0.5 0.1 0.1\n")
    with pytest.warns(DatasetWarning):
        assert main(["yolo2coco", str(data), "--split", "val", "--out", str(out)]) == 0
    assert main(["yolo2coco", str(data), "--split", "val", "--out", str(out), "--strict"]) == 1
    assert "000000.txt:1" in capsys.readouterr().err
