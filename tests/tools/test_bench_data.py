"""tools/bench_data.py end to end on a tiny generated set: every table line it promises is printed."""

from __future__ import annotations

import re

from tools import bench_data


def test_bench_data_prints_build_times_and_both_img_per_s_ratios(tmp_path, capsys):
    bench_data.main(["--root", str(tmp_path), "--n", "24", "--small", "16", "--batches", "1", "--workers", "0",
                     "--step-rounds", "1"])  # fmt: skip
    out = capsys.readouterr().out
    assert re.search(r"^\s+24\s+[\d.]+\s+\d+\s+[\d.]+\s+\d+$", out, re.M), out  # images, cold s/MB, warm s/MB
    assert re.search(r"data path img/s .*: 16 images \d+, 24 images \d+ \(ratio [\d.]+\)", out), out
    step = re.search(r"training step img/s .*: 16 images ([\d.]+), 24 images ([\d.]+) \(ratio ([\d.]+)\)", out)
    assert step and float(step[1]) > 0 and float(step[2]) > 0, out
