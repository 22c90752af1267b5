"""A miniature study end to end: 2 settings (one the post-hoc baseline) x 2 seeds, noisy labels, 64 px, 1 epoch."""

from __future__ import annotations

import json

import pytest

from tools import smoothing_study


def test_miniature_study(tmp_path):
    from data.demo import ensure_demo

    data = ensure_demo(tmp_path / "demo", n_train=12, n_val=4)
    study = ["--seeds", "2", "--settings", "eps 0,eps 0 + post-hoc", "--conditions", "noisy", "--data", str(data),
             "--holdout", "0.25", "--posthoc-method", "platt", "--project", str(tmp_path), "--name", "st"]  # fmt: skip
    training = ["--", "--imgsz", "64", "--epochs", "1", "--batch-size", "4", "--workers", "0", "--device", "cpu",
                "--noval"]  # fmt: skip
    out = smoothing_study.main(study + training)
    text = (out / "study.md").read_text()
    assert "| eps 0 | 2 |" in text and "| eps 0 + post-hoc | 2 |" in text and "+-" in text
    assert "Command: `python tools/smoothing_study.py --seeds 2" in text and "-- --imgsz 64" in text
    assert (out / "study.png").is_file()
    noise = json.loads((out / "data" / "noisy" / "noise.json").read_text())
    assert noise["train"]["images"] == 9 and noise["calib"]["images"] == 3
    assert noise["train"]["boxes_flipped"] == round(0.2 * noise["train"]["boxes_eligible"])
    runs = json.loads((out / "study.json").read_text())["runs"]["noisy"]
    assert len(runs["eps 0"]) == 2 and all("LaECE@0.25" in r and "n@0.25" in r for r in runs["eps 0"])
    assert (out / "noisy" / "eps0-s1" / "weights" / "last-cal-platt.pt").is_file()
    # a second call with --exist-ok trains nothing again and gives the same table
    again = smoothing_study.main(study + ["--exist-ok"] + training)
    assert again == out and json.loads((out / "study.json").read_text())["runs"]["noisy"] == runs


def test_study_refuses_its_own_flags_after_the_separator():
    with pytest.raises(ValueError, match="set by the study"):
        smoothing_study.parse(["--", "--label-smoothing", "0.1"])
    with pytest.raises(ValueError, match="unknown"):
        smoothing_study.parse(["--settings", "eps 0.2"])
    with pytest.raises(ValueError, match="--jobs"):
        smoothing_study.parse(["--jobs", "0"])


def test_parallel_study_trains_in_subprocesses(tmp_path):
    from data.demo import ensure_demo

    data = ensure_demo(tmp_path / "demo", n_train=8, n_val=3)
    argv = ["--seeds", "2", "--settings", "eps 0", "--conditions", "clean", "--data", str(data), "--holdout",
            "0.25", "--project", str(tmp_path), "--name", "par", "--jobs", "2", "--", "--imgsz", "64", "--epochs", "1",
            "--batch-size", "4", "--workers", "0", "--device", "cpu", "--noval", "--noplots"]  # fmt: skip
    out = smoothing_study.main(argv)
    for name in ("eps0-s0", "eps0-s1"):
        run = out / "clean" / name
        assert smoothing_study.finished(run) and "epochs completed" in (run / "train.log").read_text()
    runs = json.loads((out / "study.json").read_text())["runs"]["clean"]
    assert list(runs) == ["eps 0"] and len(runs["eps 0"]) == 2
    assert "--jobs 2" in (out / "study.md").read_text()
