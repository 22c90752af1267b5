"""tools/detect.py in-process: one annotated image per input, boxes equal to eval's inference, corrupt files skipped,
videos, --classes, and clear errors for sources without images."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from data.datasets import build_dataset, collate_fn
from models.checkpoint import load_model
from tests.detect_helpers import IMGSZ, demo_and_weights, val_images
from tools import detect
from tools.evaluation import EvalConfig
from tools.inference.loop import infer


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("detect")
    data, weights = demo_and_weights(root)
    src = root / "src"
    src.mkdir()
    for p in val_images(data):
        shutil.copy(p, src / p.name)
    (src / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg at all \xff\xd9")
    (src / "notes.txt").write_text("not an image")
    return {"data": data, "weights": weights, "src": src, "root": root}


def _argv(setup: dict, project: Path, *extra: str) -> list[str]:
    return ["--weights", str(setup["weights"]), "--source", str(setup["src"]), "--imgsz", str(IMGSZ),
            "--device", "cpu", "--project", str(project), *extra]  # fmt: skip


def _eval_boxes(setup: dict) -> dict[str, np.ndarray]:
    """Eval's inference (the val dataset and loader) at detect's thresholds: file name -> [k, 6] xyxy conf cls."""
    ds = build_dataset(setup["data"], "val", IMGSZ)
    loader = torch.utils.data.DataLoader(ds, batch_size=4, collate_fn=collate_fn)
    model = load_model(setup["weights"])
    res = infer(model, loader, "cpu", EvalConfig(conf_thres=0.25, iou_thres=0.45, max_det=1000), multi_label=False)
    out: dict[str, list] = {Path(f).name: [] for f in ds.im_files}
    for d in res.results:
        x, y, w, h = d["bbox"]
        out[Path(ds.im_files[d["image_id"]]).name].append([x, y, x + w, y + h, d["score"], d["category_id"]])
    return {k: np.array(v).reshape(-1, 6) for k, v in out.items()}


def test_folder_one_annotated_image_each_boxes_equal_eval_corrupt_skipped(setup, tmp_path, capsys):
    res = detect.main(_argv(setup, tmp_path, "--save-txt", "--save-json", "--batch-size", "4"))
    err = capsys.readouterr().err
    good = val_images(setup["data"])
    assert res.save_dir == tmp_path / "exp"
    written = sorted(p.name for p in res.save_dir.glob("*.jpg"))
    assert written == [p.name for p in good]  # one per readable input, same names; broken.jpg and notes.txt not
    for p in good:
        out, src = cv2.imread(str(res.save_dir / p.name)), cv2.imread(str(p))
        assert out is not None and out.shape == src.shape and not np.array_equal(out, src)  # boxes drawn
    assert [(p.name, "corrupt" in why) for p, why in res.skipped] == [("broken.jpg", True)]
    assert str(setup["src"] / "broken.jpg") in err
    expected = _eval_boxes(setup)
    assert sum(len(v) for v in expected.values()) > 0
    assert sum(res.counts.values()) == sum(len(v) for v in expected.values())
    for path, _, det in res.detections:
        ref = expected[path.name]
        assert det.shape == ref.shape
        np.testing.assert_allclose(det.numpy(), ref, atol=2e-3)  # COCO results: boxes to 3 decimals, scores 5
        txt = res.save_dir / "labels" / f"{path.stem}.txt"
        assert txt.exists() == bool(len(det))
        if len(det):
            rows = np.loadtxt(txt, ndmin=2)
            h0, w0 = cv2.imread(str(path)).shape[:2]
            xyxy = np.c_[rows[:, 1] - rows[:, 3] / 2, rows[:, 2] - rows[:, 4] / 2,
                         rows[:, 1] + rows[:, 3] / 2, rows[:, 2] + rows[:, 4] / 2] * [w0, h0, w0, h0]  # fmt: skip
            np.testing.assert_allclose(xyxy, ref[:, :4], atol=2e-3)
            np.testing.assert_allclose(rows[:, 5], ref[:, 4], atol=1e-5)
            np.testing.assert_array_equal(rows[:, 0], ref[:, 5])
    import json

    coco = json.loads((res.save_dir / "predictions.json").read_text())
    assert len(coco) == sum(res.counts.values()) and {d["image_id"] for d in coco} <= {int(p.stem) for p in good}


def test_classes_keeps_the_same_boxes_of_those_classes(setup, tmp_path):
    full = detect.main(_argv(setup, tmp_path, "--nosave"))
    assert not list(full.save_dir.glob("*.jpg"))  # --nosave
    cls = max(full.counts, key=full.counts.get)
    only = detect.main(_argv(setup, tmp_path, "--nosave", "--classes", str(cls)))
    assert set(only.counts) == {cls} and only.counts[cls] == full.counts[cls]
    for (_, _, a), (_, _, b) in zip(full.detections, only.detections):
        a = a[a[:, 5] == cls]  # per-class NMS: the other classes change nothing (order of equal scores may)
        torch.testing.assert_close(b[np.lexsort(b.T.numpy()[::-1])], a[np.lexsort(a.T.numpy()[::-1])])


def test_video_frames_are_annotated_and_labelled(setup, tmp_path):
    frames = [cv2.imread(str(p)) for p in val_images(setup["data"])[:3]]
    video = tmp_path / "clip.mp4"
    w = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 5.0, frames[0].shape[1::-1])
    if not w.isOpened():
        pytest.skip("this OpenCV build cannot write mp4v")
    for f in frames:
        w.write(f)
    w.release()
    res = detect.main(["--weights", str(setup["weights"]), "--source", str(video), "--imgsz", str(IMGSZ),
                       "--device", "cpu", "--project", str(tmp_path / "out"), "--save-txt"])  # fmt: skip
    assert [k for _, k, _ in res.detections] == [0, 1, 2]
    cap = cv2.VideoCapture(str(res.save_dir / "clip.mp4"))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    assert n == 3
    labelled = {p.name for p in (res.save_dir / "labels").glob("*.txt")}
    assert labelled == {f"clip_{k}.txt" for k, (_, _, d) in enumerate(res.detections) if len(d)}


def test_sources_without_images_are_clear_errors(setup, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.md").write_text("x")
    with pytest.raises(ValueError, match="holds no images"):
        detect.main(_argv(setup, tmp_path) + ["--source", str(empty)])
    with pytest.raises(ValueError, match="does not exist"):
        detect.main(_argv(setup, tmp_path) + ["--source", str(tmp_path / "nope")])
    with pytest.raises(ValueError, match="matches no images"):
        detect.main(_argv(setup, tmp_path) + ["--source", str(tmp_path / "*.png")])
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.jpg").write_bytes(b"junk")
    with pytest.raises(ValueError, match="none of its 1 file"):
        detect.main(_argv(setup, tmp_path) + ["--source", str(bad)])


def _with_calibrator(setup: dict, path: Path, state: dict) -> Path:
    from models.checkpoint import load_checkpoint, write_checkpoint

    return write_checkpoint(path, {**load_checkpoint(setup["weights"]), "calibrator": state})


def test_calibrated_weights_give_calibrated_scores_thresholded_after(setup, tmp_path, capsys):
    from tools.evaluation.calibrators import Calibrator

    # an increasing step map that sends raw scores below 0.6 under 0.05: fewer boxes pass 0.25 than raw
    state = {"method": "isotonic", "params": {"x": [0.0, 0.6, 1.0], "y": [0.0, 0.05, 1.0]}, "per_class": False,
             "classes": {}, "info": {}}  # fmt: skip
    cal_w = _with_calibrator(setup, tmp_path / "cal.pt", state)
    raw = detect.main(_argv(setup, tmp_path, "--nosave", "--conf-thres", "0.001", "--weights", str(setup["weights"])))
    got = detect.main(_argv(setup, tmp_path, "--nosave", "--weights", str(cal_w)))
    assert "scores calibrated by isotonic" in capsys.readouterr().out
    cal = Calibrator.from_state(state)
    for (path, _, det_raw), (path2, _, det) in zip(raw.detections, got.detections):
        assert path == path2
        expect = det_raw.clone()
        expect[:, 4] = torch.from_numpy(cal(expect[:, 4].numpy())).float()
        expect = expect[expect[:, 4] >= 0.25]
        expect = expect[expect[:, 4].argsort(descending=True, stable=True)]
        assert det.shape == expect.shape
        np.testing.assert_allclose(det.numpy(), expect.numpy(), atol=1e-5)
    n_raw25 = sum(int((d[:, 4] >= 0.25).sum()) for _, _, d in raw.detections)
    assert 0 < sum(got.counts.values()) < n_raw25  # the threshold applied to the calibrated scores, not the raw
    plain = detect.main(_argv(setup, tmp_path, "--nosave", "--weights", str(cal_w), "--no-calibrator"))
    assert sum(plain.counts.values()) == n_raw25
