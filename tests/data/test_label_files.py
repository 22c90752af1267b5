"""data.sources.write_labels / label_text: the one yolov5 label-row writer, checked against read_labels."""

from __future__ import annotations

import numpy as np
import pytest

from data.report import DatasetReport
from data.sources import label_text, read_labels, write_labels


def test_known_text_with_and_without_confidence():
    rows = [[2, 0.5, 0.25, 0.1, 0.2], [-1, 0.123456789, 0.5, 0.3, 0.4]]
    assert label_text(rows) == "2 0.500000 0.250000 0.100000 0.200000\n-1 0.123457 0.500000 0.300000 0.400000\n"
    assert label_text(rows, conf=[0.9, 0.123456]).splitlines() == [
        "2 0.500000 0.250000 0.100000 0.200000 0.90000",
        "-1 0.123457 0.500000 0.300000 0.400000 0.12346",
    ]
    assert label_text([]) == "" and label_text(np.zeros((0, 5))) == ""


def test_round_trip_through_read_labels(tmp_path):
    rng = np.random.default_rng(0)
    wh = rng.uniform(0.05, 0.4, (20, 2))
    xy = rng.uniform(wh / 2, 1 - wh / 2)
    rows = np.concatenate([rng.integers(0, 7, (20, 1)), xy, wh], 1).astype(np.float32)
    path = write_labels(tmp_path / "labels" / "a.txt", rows)  # parent folders made; written atomically
    report = DatasetReport(source="test")
    back = read_labels(path, nc=7, report=report)
    np.testing.assert_allclose(back, rows, atol=1e-6)  # 6 decimals
    assert not report.issues and sorted(p.name for p in path.parent.iterdir()) == ["a.txt"]


@pytest.mark.parametrize(
    "rows,conf,match",
    [
        ([[0, 0.5, 0.5, 0.1]], None, r"must be \[n, 5\]"),
        ([[0.5, 0.5, 0.5, 0.1, 0.1]], None, "classes must be integers"),
        ([[0, np.nan, 0.5, 0.1, 0.1]], None, "NaN or infinite"),
        ([[0, 0.5, 0.5, 0.1, 0.1]], [0.9, 0.8], "1 label rows but 2 confidences"),
    ],
)
def test_bad_rows_name_the_file_and_write_nothing(tmp_path, rows, conf, match):
    with pytest.raises(ValueError, match=match) as e:
        write_labels(tmp_path / "x.txt", rows, conf)
    assert "x.txt" in str(e.value) and not (tmp_path / "x.txt").exists()


def test_plain_write_gives_the_same_file(tmp_path):
    rows = [[1, 0.5, 0.5, 0.25, 0.125]]
    a = write_labels(tmp_path / "a" / "x.txt", rows)
    b = write_labels(tmp_path / "b" / "x.txt", rows, atomic=False)
    assert a.read_bytes() == b.read_bytes() == b"1 0.500000 0.500000 0.250000 0.125000\n"
