"""tools.inference.slicing: tile shifting, the merge (a box cut by a tile edge comes out once), an exact oracle
detector through the whole sliced path, and sliced evaluation end to end with a tiny model."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
import yaml
from torchvision.ops import box_iou

from data.datasets import build_dataset
from data.letterbox import unletterbox_boxes
from models import build_model, save_checkpoint
from tools import eval as eval_cli
from tools.evaluation import EvalConfig
from tools.inference import slicing
from tools.inference.evaluate import evaluate_model
from tools.inference.slicing import (
    SliceConfig,
    cut_by_inner_edge,
    evaluate_sliced,
    merge_detections,
    shift_to_image,
    sliced_detections,
)

CFG = SliceConfig(128, 48)


def test_shift_to_image_adds_each_tiles_origin():
    windows = np.array([[0, 0, 128, 128], [80, 72, 208, 200]])
    dets = [torch.tensor([[1.0, 2, 3, 4, 0.875, 0]]), torch.tensor([[1.0, 2, 3, 4, 0.75, 1], [0, 0, 10, 10, 0.5, 0]])]
    out, tile = shift_to_image(dets, windows)
    assert out.tolist() == [[1, 2, 3, 4, 0.875, 0], [81, 74, 83, 76, 0.75, 1], [80, 72, 90, 82, 0.5, 0]]
    assert tile.tolist() == [0, 1, 1]
    with pytest.raises(ValueError, match="2 detection tensors for 1 tiles"):
        shift_to_image(dets, windows[:1])


def test_cut_means_touching_an_inner_edge_not_the_image_border():
    win = torch.tensor([[0, 0, 128, 128]] * 3 + [[80, 0, 208, 128]])
    boxes = torch.tensor([[100.0, 10, 128, 50], [0, 10, 20, 50], [10, 10, 50, 50], [80, 10, 100, 50]])
    assert cut_by_inner_edge(boxes, win, (128, 208)).tolist() == [True, False, False, True]


def _merge(rows, windows, shape=(100, 200), **kw):
    return merge_detections(torch.tensor(rows), torch.tensor(windows), shape, 0.6, 300, CFG, **kw)


def test_a_box_cut_by_a_tile_edge_comes_out_once():
    # image 200x100, tiles x 0..128 and 72..200; an object at x 100..140 is cut at x 128 in the first tile
    cut, whole = [100.0, 10, 128, 50, 0.875, 0], [100.0, 10, 140, 50, 0.75, 0]
    a, b = [0, 0, 128, 100], [72, 0, 200, 100]
    assert box_iou(torch.tensor([cut[:4]]), torch.tensor([whole[:4]])).item() == pytest.approx(0.7)  # 28x40 of 40x40
    out = _merge([cut, whole], [a, b])
    assert out.tolist() == [whole]  # the whole one stays, although the cut one scored higher
    half = [100.0, 10, 128, 50, 0.875, 0]  # the same with the whole object twice as wide: IoU 0.5 < NMS's 0.6
    wide = [100.0, 10, 156, 50, 0.75, 0]
    assert _merge([half, wide], [a, b]).tolist() == [wide]
    seen_twice = [[90.0, 10, 110, 50, 0.875, 0], [90.5, 10, 110, 50, 0.625, 0]]  # whole in both tiles: NMS
    assert _merge(seen_twice, [a, b]).tolist() == [seen_twice[0]]


def test_the_merge_keeps_other_classes_and_objects_no_tile_sees_whole():
    a, b = [0, 0, 128, 100], [72, 0, 200, 100]
    cut, whole_other = [100.0, 10, 128, 50, 0.875, 1], [100.0, 10, 140, 50, 0.75, 0]
    assert len(_merge([cut, whole_other], [a, b])) == 2
    assert _merge([cut, whole_other], [a, b], agnostic=True).tolist() == [whole_other]
    big_a, big_b = [20.0, 10, 128, 50, 0.875, 0], [72.0, 10, 200, 50, 0.75, 0]  # x 20..200 > overlap: both cut
    assert len(_merge([big_a, big_b], [a, b])) == 2


def _scene() -> tuple[np.ndarray, list[list[int]]]:
    """300x200 black image with white rectangles (x1, y1, x2, y2), two across tile edges of 128/48 tiles."""
    img = np.zeros((200, 300, 3), np.uint8)
    rects = [[20, 20, 60, 60], [100, 30, 140, 70], [150, 100, 190, 150], [240, 150, 290, 195]]
    for x1, y1, x2, y2 in rects:
        img[y1:y2, x1:x2] = 255
    return img, rects


def _oracle(batch: torch.Tensor, metas: list[dict]) -> list[torch.Tensor]:
    """Detects white rectangles exactly: connected components of each letterboxed tile, mapped back to the tile."""
    out = []
    for x, meta in zip(batch, metas):
        mask = (x[0].numpy() > 127).astype(np.uint8)
        n, _, stats, _ = cv2.connectedComponentsWithStats(mask)
        boxes = torch.tensor([[s[0], s[1], s[0] + s[2], s[1] + s[3]] for s in stats[1:n]], dtype=torch.float32)
        boxes = unletterbox_boxes(boxes.reshape(-1, 4), meta["ratio"], meta["pad"], meta["orig_shape"])
        out.append(torch.cat([boxes, torch.full((len(boxes), 1), 0.9), torch.zeros((len(boxes), 1))], 1))
    return out


def test_sliced_oracle_finds_every_rectangle_once(monkeypatch):
    img, rects = _scene()
    det = sliced_detections(img, _oracle, 128, CFG, iou_thres=0.6, max_det=100, batch_size=3)
    assert sorted(det[:, :4].round().int().tolist()) == sorted(rects)
    with monkeypatch.context() as m:  # NMS alone (no cut-box rule) leaves the cut pieces as duplicates
        m.setattr(slicing, "_covered", lambda dets, *a: torch.zeros(len(dets), dtype=torch.bool))
        assert len(sliced_detections(img, _oracle, 128, CFG, iou_thres=0.6, max_det=100)) > len(rects)
    whole = sliced_detections(img, _oracle, 320, SliceConfig(320, 0), iou_thres=0.6, max_det=100)
    assert sorted(whole[:, :4].round().int().tolist()) == sorted(rects)  # one tile: plain inference


def test_slice_config_is_validated():
    with pytest.raises(ValueError, match="must be smaller than the slice size"):
        SliceConfig(64, 64)
    with pytest.raises(ValueError, match="slice size"):
        SliceConfig(0)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict:
    """One 200x150 image with two labelled squares as train/val/val_full, and an untrained yolov4-tiny-n."""
    root = tmp_path_factory.mktemp("sliced")
    img = np.full((150, 200, 3), 40, np.uint8)
    img[20:60, 30:70] = (0, 200, 0)
    img[90:130, 120:170] = (0, 0, 220)
    for split in ("train", "val_full"):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        cv2.imwrite(str(root / "images" / split / "s.png"), img)
        (root / "labels" / split / "s.txt").write_text("0 0.25 0.266667 0.2 0.266667\n1 0.725 0.733333 0.25 0.266667\n")
    y = root / "d.yaml"
    y.write_text(yaml.safe_dump({"train": "images/train", "val": "images/train", "val_full": "images/val_full",
                                 "names": ["g", "r"]}))  # fmt: skip
    torch.manual_seed(0)
    model = build_model("yolov4-tiny-n", nc=2, names=["g", "r"])
    return {"yaml": y, "model": model, "weights": save_checkpoint(root / "w.pt", model)}


def test_sliced_eval_with_one_tile_equals_plain_eval(tiny):
    ds = build_dataset(tiny["yaml"], "val_full", 64)
    cfg = EvalConfig(batch_size=2, backend="faster")
    plain = evaluate_model(tiny["model"], ds, cfg, None, "cpu")
    sliced = evaluate_sliced(tiny["model"], ds, cfg, SliceConfig(256, 0), 64, None, "cpu")
    key = lambda d: (d["category_id"], d["score"], *d["bbox"])  # noqa: E731
    assert len(plain.detections) > 0
    got, want = sorted(map(key, sliced.detections)), sorted(map(key, plain.detections))
    np.testing.assert_allclose(np.array(got), np.array(want), atol=1e-3)
    assert sliced.stats == pytest.approx(plain.stats)


def test_eval_cli_slices_the_full_images_of_a_split(tiny, tmp_path, capsys):
    args = ["--weights", str(tiny["weights"]), "--data", str(tiny["yaml"]), "--task", "val_full", "--slice", "96"]
    res = eval_cli.main(args + ["--slice-overlap", "32", "--imgsz", "64", "--device", "cpu", "--project",
                                str(tmp_path), "--noplots", "--backend", "faster"])  # fmt: skip
    assert res.n_images == 1 and res.n_detections > 0 and set(res.speed) == {"pre", "inference", "nms"}
    for d in res.detections:
        x, y, w, h = d["bbox"]
        assert x >= 0 and y >= 0 and x + w <= 200 + 1e-3 and y + h <= 150 + 1e-3  # in original-image pixels
    assert "maxDets=100" in capsys.readouterr().out


def test_detect_cli_slice(tiny, tmp_path):
    from tools import detect as detect_cli

    src = tiny["yaml"].parent / "images" / "val_full" / "s.png"
    base = ["--weights", str(tiny["weights"]), "--source", str(src), "--imgsz", "64", "--conf-thres", "0.001",
            "--device", "cpu", "--project", str(tmp_path), "--nosave"]  # fmt: skip
    plain = detect_cli.main(base)
    one_tile = detect_cli.main(base + ["--slice", "256"])
    torch.testing.assert_close(one_tile.detections[0][2], plain.detections[0][2])
    sliced = detect_cli.main(base + ["--slice", "96", "--slice-overlap", "32", "--batch-size", "4"])
    det = sliced.detections[0][2]
    assert len(det) > 0 and det[:, [0, 1]].min() >= 0 and det[:, 2].max() <= 200 and det[:, 3].max() <= 150


@pytest.mark.parametrize("backend", ["pycocotools", "faster"])
def test_coco_max_dets_lets_ap_count_every_object_of_a_crowded_image(backend):
    from tools.evaluation import evaluate_results

    boxes = [[20.0 * (k % 15), 20.0 * (k // 15), 10.0, 10.0] for k in range(150)]  # 150 objects, one image
    gt = {"images": [{"id": 1, "width": 300, "height": 200}], "categories": [{"id": 1, "name": "tree"}],
          "annotations": [{"id": k + 1, "image_id": 1, "category_id": 1, "bbox": b, "area": 100.0, "iscrowd": 0}
                          for k, b in enumerate(boxes)]}  # fmt: skip
    dt = [{"image_id": 1, "category_id": 1, "bbox": b, "score": 0.9 - 0.001 * k} for k, b in enumerate(boxes)]
    capped = evaluate_results(gt, dt, EvalConfig(backend=backend))
    assert capped.map50 == pytest.approx(0.67, abs=0.01)  # 100 of 150 found, precision 1: AP = 67/101 points
    full = evaluate_results(gt, dt, EvalConfig(backend=backend, coco_max_dets=200))
    assert full.map50 == pytest.approx(1.0) and full.stats[8] == pytest.approx(1.0)  # AR at maxDets 200
    assert "maxDets=200 ] = 1.000" in full.report()
    with pytest.raises(ValueError, match="coco_max_dets"):
        EvalConfig(coco_max_dets=0)
