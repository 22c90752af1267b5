"""examples/: each script run on tiny data (8 images, 128 px, one or a few epochs), plus a known-answer test of
the detector example's box mapping (decode, NMS, back to the original image's pixels)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from detloss import YoloLoss

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
if str(EXAMPLES) not in sys.path:
    sys.path.insert(0, str(EXAMPLES))

import detector  # noqa: E402
import smoothing_kinds  # noqa: E402
import yolov5_dropin  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")
TINY = ["--max-images", "8", "--imgsz", "128", "--batch-size", "4"]


def test_detector_trains_and_is_scored_by_eval_py(tiny_data, tmp_path, capsys):
    res = detector.main(["--data", str(tiny_data), "--epochs", "2", "--project", str(tmp_path), *TINY])
    assert len(res["stats"]) == 12 and 0.0 <= res["stats"][0] <= res["stats"][1] <= 1.0
    assert f"COCO mAP50-95 {res['stats'][0]:.4f}" in capsys.readouterr().out
    gt = json.loads((tmp_path / "gt.json").read_text())
    _, labels, sizes = detector.load_split(__import__("yaml").safe_load(tiny_data.read_text()), "val", 128, 8)
    assert len(gt["images"]) == 8 and len(gt["annotations"]) == sum(len(lab) for lab in labels) > 0
    assert [(im["width"], im["height"]) for im in gt["images"]] == [tuple(s) for s in sizes]
    dets = json.loads((tmp_path / "predictions.json").read_text())
    assert dets and {d["category_id"] for d in dets} <= set(range(6))
    assert all(d["bbox"][2] > 0 and d["bbox"][3] > 0 and 0.001 < d["score"] <= 1 for d in dets)
    assert res["images"] == 8 and res["detections"] == len(dets)


class _OneBox(nn.Module):
    """Logits with one confident box: level 0 (stride 16), anchor 0, cell (row 2, col 3), class 1."""

    def forward(self, x):
        p = [torch.full((1, 3, 8, 8, 7), -10.0), torch.full((1, 3, 4, 4, 7), -10.0)]
        p[0][0, 0, 2, 3, :4] = 0.0  # sigmoid 0.5: centre at the cell's middle, size = the anchor
        p[0][0, 0, 2, 3, 4] = 10.0  # objectness
        p[0][0, 0, 2, 3, 6] = 10.0  # class 1
        return p


def test_predict_maps_a_known_box_back_to_the_original_image():
    loss_fn = YoloLoss([[32, 16, 10, 10, 20, 20], [40, 40, 60, 60, 80, 80]], (16, 32), num_classes=2)
    dets = detector.predict(_OneBox(), loss_fn, torch.zeros(1, 3, 128, 128, dtype=torch.uint8), [(256, 64)])
    assert len(dets) == 1  # every other score is below 0.001
    d = dets[0]
    # 128 px input: centre ((3 + 0.5) * 16, (2 + 0.5) * 16) = (56, 40), size 32 x 16; the original is 256 x 64,
    # so x scales by 2 and y by 0.5: centre (112, 20), size 64 x 8 -> COCO [x, y, w, h] = [80, 16, 64, 8]
    assert d["image_id"] == 1 and d["category_id"] == 1
    assert d["bbox"] == pytest.approx([80.0, 16.0, 64.0, 8.0], abs=1e-4)
    assert d["score"] == pytest.approx(torch.sigmoid(torch.tensor(10.0)).item() ** 2, rel=1e-6)


def test_yolov5_dropin_trains_a_yolov5_shaped_model(tiny_data):
    history = yolov5_dropin.main(["--data", str(tiny_data), "--epochs", "3", *TINY])
    assert len(history) == 3 and all(torch.isfinite(torch.tensor(h)).all() for h in history)
    assert sum(history[-1]) < sum(history[0])  # it learns
    online = yolov5_dropin.main(["--data", str(tiny_data), "--epochs", "1", "--label-smoothing", "0.1",
                                 "--label-smoothing-kind", "online", *TINY])  # fmt: skip
    assert len(online) == 1
    with pytest.raises(SystemExit):
        yolov5_dropin.main(["--data", str(tiny_data), "--cfg", "no_such_model.yaml", *TINY])


def test_smoothing_kinds_reads_targets_and_calibration(tiny_data, tmp_path):
    args = ["--data", str(tiny_data), "--epochs", "1", "--project", str(tmp_path), *TINY]
    rows = smoothing_kinds.main([*args, "--kinds", "yolo 0.1,uniform 0.1,online 0.1"])
    assert [r["kind"] for r in rows] == ["yolo 0.1", "uniform 0.1", "online 0.1"]
    assert rows[0]["targets"] == "0.950 / 0.050"  # smooth_BCE(0.1)
    assert rows[1]["targets"] == "0.917 / 0.017"  # softmax convention, K = 6: 1 - 0.1 + 0.1/6, 0.1/6
    assert rows[2]["targets"].startswith("0.950 / ")  # online: the true class stays at cp
    for r in rows:
        assert 0 <= r["map"] <= r["map50"] <= 1 and r["n25"] >= 0 and 0 <= r["dece"] <= 1
        assert (tmp_path / r["kind"] / "stats.json").is_file()
    with pytest.raises(SystemExit):
        smoothing_kinds.main([*args, "--kinds", "eps 0,label 0.3"])
