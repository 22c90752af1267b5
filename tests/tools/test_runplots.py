"""Run-folder pictures: a tiny training run writes every picture (valid images of sensible sizes) and TensorBoard
events with its scalars; the batch grid puts boxes where the targets say."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from data.demo import ensure_demo
from tools import train
from tools.detection.batchimages import MIN_TILE, batch_grid, targets_to_xyxy

pytest.importorskip("matplotlib")

PICTURES = {  # file: minimum (height, width)
    "labels.jpg": (500, 500),
    "train_batch0.jpg": (MIN_TILE, MIN_TILE),
    "val_batch0_labels.jpg": (MIN_TILE, MIN_TILE),
    "val_batch0_pred.jpg": (MIN_TILE, MIN_TILE),
    "confusion_matrix.png": (500, 1000),
    "F1_curve.png": (500, 800),
    "P_curve.png": (500, 800),
    "R_curve.png": (500, 800),
    "PR_curve.png": (500, 800),
    "results.png": (300, 300),
}


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """One epoch of yolov4-tiny-n on 8 train / 4 val demo images at 64 px (the final validation writes the plots)."""
    demo = ensure_demo(tmp_path_factory.mktemp("demo"), n_train=8, n_val=4)
    project = tmp_path_factory.mktemp("runs")
    argv = ["--data", str(demo), "--project", str(project), "--imgsz", "64", "--batch-size", "8", "--epochs", "1",
            "--workers", "0", "--device", "cpu"]  # fmt: skip
    return train.main(argv)


@pytest.mark.parametrize("name", sorted(PICTURES))
def test_run_writes_each_picture(run, name):
    img = cv2.imread(str(run / name))
    assert img is not None, f"{name} missing or not an image"
    h, w = img.shape[:2]
    min_h, min_w = PICTURES[name]
    assert h >= min_h and w >= min_w and h <= 4000 and w <= 4000, (name, img.shape)
    assert img.std() > 5, f"{name} is blank"


def test_run_writes_tensorboard_scalars(run):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = list(run.glob("events.out.tfevents.*"))
    assert len(events) == 1
    acc = EventAccumulator(str(events[0]))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert "train/box_loss" in tags and "metrics/mAP_0.5" in tags
    assert [e.step for e in acc.Scalars("train/box_loss")] == [0]


def test_batch_grid_draws_the_targets_where_they_are():
    """A black 64x64 image with one target box: the grid tile (scaled to MIN_TILE) is coloured on the box edge only."""
    imgs = torch.zeros(1, 3, 64, 64, dtype=torch.uint8)
    targets = torch.tensor([[0, 2, 0.5, 0.5, 0.5, 0.25]])  # class 2, box x 16..48, y 24..40
    boxes = [targets_to_xyxy(targets, 0, 64, 64)]
    np.testing.assert_allclose(boxes[0], [[16, 24, 48, 40, 1, 2]])
    grid = batch_grid(imgs, boxes, ["a", "b", "c"])
    s = MIN_TILE / 64
    assert grid.shape == (MIN_TILE, MIN_TILE, 3)
    assert grid[round(32 * s), round(16 * s)].sum() > 0  # left edge of the box, mid height
    assert grid[round(32 * s), round(32 * s)].sum() == 0  # centre of the box stays black
    assert grid[round(56 * s), round(32 * s)].sum() == 0  # below the box


def test_labels_plot_title_counts_ignore_regions_apart():
    import numpy as np

    from tools.detection.labelplot import count_title

    assert count_title(np.array([0, 1, -1, 0, -1]), 3) == "3 boxes (+ 2 ignore regions) in 3 images"
    assert count_title(np.array([2]), 1) == "1 boxes in 1 images"
