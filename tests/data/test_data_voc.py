"""Pascal VOC reading (data.voc, VocDataset, data YAML entries) and VOC <-> yolov5 conversion.

Fixtures: tests/fixtures/voc/ (hand-written; see tests/fixtures/README.md). Expected rows are worked by hand
from the XML with the 1-based rule x1 = xmin - 1, x2 = xmax.
"""

from __future__ import annotations

import shutil
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import yaml

from data.convert import main as convert_main
from data.datasets import VocDataset, build_dataset
from data.report import DatasetError, DatasetReport, DatasetWarning
from data.voc import is_voc_source, read_voc
from data.voc_convert import voc_to_yolo, voc_xml, yolo_to_voc

VOC = Path(__file__).resolve().parents[1] / "fixtures" / "voc"
NAMES = ["cat", "dog"]


def _read(source=VOC / "VOC", names=NAMES, name_map=None):
    report = DatasetReport(source=str(source))
    return read_voc(source, report, names, name_map), report


def _by_stem(index):
    return {Path(f).stem: (lab, tr, shape) for f, lab, tr, shape in
            zip(index.image_files, index.labels, index.truncated, index.shapes)}  # fmt: skip


def test_reads_size_boxes_difficult_truncated_with_1_based_coordinates():
    index, _ = _read()
    lab, trunc, shape = _by_stem(index)["a"]
    assert shape == (30, 40)
    expected = [
        [0, 5 / 40, 7.5 / 30, 10 / 40, 15 / 30],  # cat xmin 1..xmax 10 -> x 0..10; ymin 1..15 -> y 0..15
        [-1, 30 / 40, 20 / 30, 20 / 40, 20 / 30],  # difficult dog 21..40 -> 20..40: an ignore region
        [1, 15.5 / 40, 5.5 / 30, 10 / 40, 7 / 30],  # fractional VOC coordinates 11.5..20.5 -> 10.5..20.5
    ]
    np.testing.assert_allclose(lab, expected, atol=1e-6)
    assert trunc.tolist() == [True, False, False]


def test_each_bad_input_is_reported_by_file_and_element_and_the_rest_loads():
    index, report = _read()
    assert sorted(Path(f).stem for f in index.image_files) == ["a", "b", "e", "f"]
    assert report.counts["bad_label_file"] == 1 and report.counts["bad_image"] == 2
    assert report.counts["clipped"] == 1 and report.counts["missing_size"] == 1 and report.counts["difficult"] == 1
    text = {i.kind: [] for i in report.issues}
    for i in report.issues:
        text[i.kind].append(str(i))
    malformed = text["bad_label_file"][0]
    assert "c.xml:5" in malformed and "malformed XML" in malformed  # the parser's line number
    assert any("d.xml" in t and "'d.jpg' not found" in t for t in text["bad_image"])
    assert any("g.xml" in t and "no usable <size>" in t for t in text["bad_image"])  # no size, image unreadable
    bad = "\n".join(text["bad_annotation"])
    assert "b.xml: object[1] (dog)" in bad and "outside the 40x30 image" in bad
    assert "b.xml: object[2] (bird): class 'bird' not in names" in bad
    assert "f.xml: object[0] (cat): <bndbox> needs numbers" in bad
    assert "f.xml: object[1] (cat): <difficult> must be 0 or 1" in bad
    assert "f.xml: object[2] (dog): <bndbox>" in bad and "xmax < xmin" in bad
    assert "f.xml: object[3]: no <name>" in bad
    assert report.counts["bad_annotation"] == 6


def test_box_past_the_edge_is_clipped_and_missing_size_comes_from_the_header():
    rows = _by_stem(_read()[0])
    np.testing.assert_allclose(rows["b"][0], [[0, 35 / 40, 25 / 30, 10 / 40, 10 / 30]], atol=1e-6)  # 30..50 -> 30..40
    lab, _, shape = rows["e"]
    assert shape == (20, 24)  # e.png's header: no <size> in e.xml
    np.testing.assert_allclose(lab, [[0, 8 / 24, 9.5 / 20, 12 / 24, 11 / 20]], atol=1e-6)
    np.testing.assert_allclose(rows["f"][0], [[1, 4.5 / 40, 3.5 / 30, 7 / 40, 5 / 30]], atol=1e-6)


def test_names_default_to_the_sorted_set_and_a_map_renames_them():
    index, _ = _read(names=None)
    assert index.names == ["bird", "cat", "dog"]  # difficult-only names would not count; all three are objects
    index, report = _read(VOC / "beside", names=None, name_map={"Alive": "tree", "Dead": "tree"})
    assert index.names == ["tree"] and report.skipped == 0
    assert index.image_files == [str(VOC / "beside" / "x.png")]  # <filename> says x.tif: found by stem
    np.testing.assert_allclose(index.labels[0][:, 0], [0, 0])
    with pytest.raises(DatasetError, match="name_map"):
        _read(name_map={"Alive": ""})


def test_voc_dataset_strict_and_split_list():
    with pytest.raises(DatasetError, match=r"b.xml: object\[1\] \(dog\).*outside"):
        VocDataset(VOC / "VOC", names=NAMES, strict=True)
    with pytest.warns(DatasetWarning, match="bad_annotation: 2, clipped: 1"):  # b.xml's dog and bird
        ds = VocDataset(VOC / "VOC" / "ImageSets" / "Main" / "train.txt", names=NAMES)  # ids a, b only
    assert [Path(f).stem for f in ds.im_files] == ["a", "b"]
    assert ds.report.boxes == 3 and ds.report.ignore_regions == 1 and ds.cat_ids == [0, 1]
    img, labels, _, meta = ds[0]
    assert img.shape == (3, 640, 640) and labels.shape == (3, 6) and meta["orig_shape"] == (30, 40)


def test_data_yaml_names_a_voc_folder(tmp_path):
    assert is_voc_source(str(VOC / "VOC")) and is_voc_source(str(VOC / "beside"))
    assert is_voc_source(str(VOC / "VOC" / "ImageSets" / "Main" / "train.txt"))
    assert not is_voc_source(str(VOC / "VOC" / "JPEGImages"))
    both = tmp_path / "both" / "images" / "train"
    both.mkdir(parents=True)
    shutil.copy(VOC / "beside" / "x.xml", both)
    assert is_voc_source(str(both))
    (tmp_path / "both" / "labels" / "train").mkdir(parents=True)
    assert not is_voc_source(str(both))  # XML beside the images and yolov5 label files: the label files win
    y = tmp_path / "d.yaml"
    y.write_text(yaml.safe_dump({"path": str(VOC), "train": "beside", "val": "VOC/ImageSets/Main/train.txt",
                                 "names": ["tree"], "name_map": {"Alive": "tree", "Dead": "tree"}}))  # fmt: skip
    ds = build_dataset(y, "train", 64)
    assert isinstance(ds, VocDataset) and ds.report.boxes == 2
    with pytest.warns(DatasetWarning, match="class 'cat' not in names"):
        assert len(build_dataset(y, "val", 64)) == 2  # every object unknown: images kept as backgrounds


def _clean_voc(tmp_path: Path) -> Path:
    """A VOC root of a.xml and f.xml only (f's bad objects removed)."""
    root = tmp_path / "src"
    for sub in ("Annotations", "JPEGImages"):
        (root / sub).mkdir(parents=True)
    shutil.copy(VOC / "VOC" / "Annotations" / "a.xml", root / "Annotations")
    shutil.copy(VOC / "VOC" / "JPEGImages" / "a.png", root / "JPEGImages")
    shutil.copy(VOC / "VOC" / "JPEGImages" / "f.png", root / "JPEGImages")
    tree = ET.parse(VOC / "VOC" / "Annotations" / "f.xml")
    for obj in tree.getroot().findall("object")[:4]:
        tree.getroot().remove(obj)
    tree.write(root / "Annotations" / "f.xml")
    return root


def test_voc_to_yolo_to_voc_round_trip(tmp_path):
    src = _clean_voc(tmp_path)
    data_yaml = voc_to_yolo(src, tmp_path / "yolo", "val", names=NAMES, link=False)
    d = yaml.safe_load(data_yaml.read_text())
    assert d["names"] == NAMES and d["val"] == "images/val" and "coco_cat_ids" not in d
    rows = (tmp_path / "yolo" / "labels" / "val" / "a.txt").read_text().splitlines()
    assert rows[1].startswith("-1 0.750000 0.666667")  # the difficult dog is an ignore row
    out = yolo_to_voc(data_yaml, "val", tmp_path / "back")
    a = ET.parse(out / "Annotations" / "a.xml").getroot()
    got = [(o.findtext("name"), o.findtext("difficult"), [o.findtext(f"bndbox/{t}") for t in ("xmin", "ymin",
            "xmax", "ymax")]) for o in a.iter("object")]  # fmt: skip
    assert got == [("cat", "0", ["1", "1", "10", "15"]), ("ignore", "1", ["21", "11", "40", "30"]),
                   ("dog", "0", ["11.5", "3", "20.5", "9"])]  # fmt: skip
    assert a.findtext("size/width") == "40" and a.findtext("size/height") == "30"
    first = VocDataset(src, names=NAMES)
    again = VocDataset(out, names=NAMES)
    for x, y in zip(first.labels, again.labels):
        np.testing.assert_allclose(x, y, atol=1e-6)


def test_convert_command_line_voc2yolo_with_a_name_map(tmp_path, capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DatasetWarning)
        assert convert_main(["voc2yolo", str(VOC / "beside"), "--out", str(tmp_path), "--map", "Alive=tree",
                             "Dead=tree", "--copy"]) == 0  # fmt: skip
    assert yaml.safe_load((tmp_path / "data.yaml").read_text())["names"] == ["tree"]
    assert (tmp_path / "labels" / "train" / "x.txt").read_text().splitlines() == [
        "0 0.250000 0.250000 0.500000 0.500000", "0 0.750000 0.750000 0.500000 0.500000"]  # fmt: skip
    assert convert_main(["voc2yolo", str(VOC / "beside"), "--out", str(tmp_path), "--map", "Alive"]) == 1
    assert "FROM=TO" in capsys.readouterr().err


def test_voc_xml_writes_whole_pixels_as_integers():
    text = voc_xml("z.png", (10, 20), np.array([[0, 0.5, 0.5, 0.5, 0.4]]), ["a"])
    box = ET.fromstring(text).find("object/bndbox")
    assert [box.findtext(t) for t in ("xmin", "ymin", "xmax", "ymax")] == ["6", "4", "15", "7"]
