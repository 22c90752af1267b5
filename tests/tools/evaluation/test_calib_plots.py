"""Per-class reliability grids: one panel per class with detections above the threshold, many-class layout."""

from __future__ import annotations

import numpy as np
import pytest

from tools.evaluation.calib_plots import plot_reliability_grid, save_reliability_plots
from tools.evaluation.matching import DetectionTable

pytest.importorskip("matplotlib")


def _table(nc: int, present: list[int], n: int = 400) -> DetectionTable:
    rng = np.random.default_rng(0)
    score = rng.uniform(0, 1, n)
    cls = rng.choice(present, n)
    correct = (rng.uniform(0, 1, n) < score).astype(np.int64)
    return DetectionTable(score, correct, correct * rng.uniform(0.5, 1, n), cls, rng.uniform(0, 1, (n, 4)),
                          list(range(nc)), [f"c{k}" for k in range(nc)])  # fmt: skip


def _size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")  # IHDR width, height


def test_panels_only_for_classes_with_detections(tmp_path):
    full = _size(plot_reliability_grid(_table(8, list(range(8))), tmp_path / "a.png"))  # 9 panels: 4 x 3
    some = _size(plot_reliability_grid(_table(8, [0, 1]), tmp_path / "b.png"))  # 3 panels: one row of 3
    assert some[1] < full[1] and some[0] < full[0]


def test_many_classes_and_both_thresholds(tmp_path):
    paths = save_reliability_plots(_table(23, list(range(23)), 600), tmp_path)
    assert [p.name for p in paths] == ["reliability_conf0.25.png", "reliability_conf0.001.png"]
    w, h = _size(paths[1])
    assert w > h  # 24 panels laid out 8 wide (3 rows)
