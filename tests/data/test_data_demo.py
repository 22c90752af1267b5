"""Built-in demo dataset: deterministic bytes per seed, COCO size ranges all present, both layouts agree,
atomic and concurrency-safe caching, and the COCO JSON fields the evaluator relies on."""

import hashlib
import json
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from data.datasets import CocoDataset, YoloDataset, build_dataset, coco_gt_for
from data.demo import DEMO_IMGSZ, DEMO_NAMES, DEMO_TRAIN, DEMO_VAL, ensure_demo, generate_demo
from data.report import DatasetError
from data.yaml_io import load_data_yaml


def digest(root: Path) -> str:
    """Hash of every generated file except the YAML (which names its own absolute folder)."""
    h = hashlib.sha256()
    for f in sorted(p for p in root.rglob("*") if p.is_file() and p.name != "demo.yaml"):
        h.update(str(f.relative_to(root)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def full_demo(tmp_path_factory):
    """The default-size demo (seed 0), generated once for this module."""
    root = tmp_path_factory.mktemp("cache") / "demo"
    t = time.perf_counter()
    yaml_path = ensure_demo(root)
    elapsed = time.perf_counter() - t
    print(f"demo generation: {elapsed:.1f} s")
    return yaml_path


def test_same_seed_same_bytes_different_seed_differs(tmp_path):
    a = generate_demo(tmp_path / "a", seed=5, n_train=6, n_val=3).parent
    b = generate_demo(tmp_path / "b", seed=5, n_train=6, n_val=3).parent
    c = generate_demo(tmp_path / "c", seed=6, n_train=6, n_val=3).parent
    assert len(list((a / "images" / "train").iterdir())) == 6
    assert digest(a) == digest(b) != digest(c)


def test_full_demo_content_and_size_ranges(full_demo):
    d = load_data_yaml(full_demo)
    assert d["names"] == DEMO_NAMES and d["nc"] == 6
    sizes, classes = Counter(), Counter()
    for split, n in (("train", DEMO_TRAIN), ("val", DEMO_VAL)):
        gt = json.loads(Path(d[f"{split}_json"]).read_text())
        assert len(gt["images"]) == n and [im["id"] for im in gt["images"]] == list(range(n))
        assert all(im["width"] == im["height"] == DEMO_IMGSZ for im in gt["images"])
        ids = [a["id"] for a in gt["annotations"]]
        assert ids == list(range(1, len(ids) + 1))  # annotation ids from 1 (pycocotools treats 0 as unmatched)
        for a in gt["annotations"]:
            x, y, w, h = a["bbox"]
            assert a["area"] == w * h and a["iscrowd"] == 0 and w > 0 and h > 0
            assert 0 <= x and x + w <= DEMO_IMGSZ and 0 <= y and y + h <= DEMO_IMGSZ
            sizes["small" if w * h < 32**2 else "medium" if w * h < 96**2 else "large"] += 1
            classes[a["category_id"]] += 1
    total = sum(sizes.values())
    print("demo boxes:", total, dict(sizes), dict(sorted(classes.items())))
    assert total > 4 * (DEMO_TRAIN + DEMO_VAL) * 0.8
    assert all(sizes[k] > 0.1 * total for k in ("small", "medium", "large")), sizes
    assert all(classes[k] > 0.1 * total for k in range(6)), classes


def test_yolo_and_coco_readers_agree_on_demo(full_demo):
    d = load_data_yaml(full_demo)
    yolo = build_dataset(full_demo, "val", 256)
    coco = CocoDataset(coco_gt_for(d, "val"), Path(d["path"]) / "images" / "val", imgsz=256)
    assert isinstance(yolo, YoloDataset) and len(yolo) == len(coco) == DEMO_VAL
    assert yolo.image_ids == coco.image_ids and yolo.cat_ids == coco.cat_ids == list(range(6))
    assert yolo.report.skipped == coco.report.skipped == 0 and yolo.report.boxes == coco.report.boxes
    assert 0 < yolo.report.backgrounds < 0.15 * DEMO_VAL
    for i in range(0, DEMO_VAL, 5):
        yi, yl, yp, ym = yolo[i]
        ci, cl, cp, cm = coco[i]
        assert yp == cp and ym == cm and torch.equal(yi, ci)
        torch.testing.assert_close(yl, cl, atol=2e-6, rtol=0)


def test_ensure_demo_caches_and_is_safe_under_concurrency(tmp_path, monkeypatch):
    monkeypatch.setenv("DETLOSS_CACHE", str(tmp_path / "cache"))
    results, errors = [], []

    def call():
        try:
            results.append(ensure_demo(None, seed=3, n_train=4, n_val=2))
        except Exception as e:  # noqa: BLE001 - collected for the assertion below
            errors.append(e)

    threads = [threading.Thread(target=call) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(set(results)) == 1
    path = results[0]
    assert path.parent.parent == tmp_path / "cache" and path.parent.name == "demo-seed3-4-2"
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["demo-seed3-4-2"]  # no temp folders left
    before = digest(path.parent)
    assert ensure_demo(None, seed=3, n_train=4, n_val=2) == path and digest(path.parent) == before
    assert len(build_dataset(path, "train", 64)) == 4 and load_data_yaml(path)["path"] == str(path.parent)


def test_ensure_demo_refuses_a_foreign_folder(tmp_path):
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "mine.txt").write_text("keep me")
    with pytest.raises(DatasetError, match="not a complete demo dataset"):
        ensure_demo(tmp_path / "demo")
    assert (tmp_path / "demo" / "mine.txt").read_text() == "keep me"


def test_demo_generation_is_deterministic_per_image():
    from data.demo_draw import draw_image

    a, boxes_a = draw_image(64, np.random.default_rng([1, 0, 2]))
    b, boxes_b = draw_image(64, np.random.default_rng([1, 0, 2]))
    assert np.array_equal(a, b) and boxes_a == boxes_b
