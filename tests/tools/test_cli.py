"""The scripts' error convention (tools/cli/errors.py): a bad input or a missing file is one line and exit status 2."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest

from tools.cli.errors import run_script

ROOT = Path(__file__).resolve().parents[2]


def test_user_errors_become_one_line_and_exit_2(capsys):
    def missing():
        raise FileNotFoundError("checkpoint 'w.pt' does not exist or is not a file")

    with pytest.raises(SystemExit) as e:
        run_script("x.py", missing)
    assert e.value.code == 2
    assert capsys.readouterr().err == "x.py: error: checkpoint 'w.pt' does not exist or is not a file\n"


def test_program_errors_keep_their_traceback():
    def broken():
        raise KeyError("a bug, not a bad input")

    with pytest.raises(KeyError):
        run_script("x.py", broken)
    with pytest.raises(SystemExit):  # unless the script names it
        run_script("x.py", lambda: (_ for _ in ()).throw(RuntimeError("x")), also=(RuntimeError,))


@pytest.mark.parametrize(
    "script, extra",
    [
        ("eval.py", []),
        ("export.py", []),
        ("calibrate.py", []),
        ("class_scores.py", []),
        ("detect.py", ["--source", "{image}"]),
    ],
)
def test_a_missing_weights_file_is_reported_by_every_script(script, extra, tmp_path, monkeypatch, capsys):
    import cv2
    import numpy as np

    image = tmp_path / "a.png"
    cv2.imwrite(str(image), np.zeros((32, 32, 3), np.uint8))
    extra = [a.format(image=image) for a in extra]
    missing = tmp_path / "nope.pt"
    monkeypatch.setattr(sys, "argv", [script, "--weights", str(missing), *extra])
    with pytest.raises(SystemExit) as e:
        runpy.run_path(str(ROOT / "tools" / script), run_name="__main__")
    err = capsys.readouterr().err
    assert e.value.code == 2, err
    assert err.startswith(f"{script}: error: ") and "nope.pt" in err and err.count("\n") == 1


@pytest.mark.parametrize("flag, value", [("--data", "nope.yaml"), ("--hyp", "nope.yaml")])
def test_train_reports_a_missing_input_file_and_leaves_no_run_folder(flag, value, tmp_path, capsys):
    from tools.train import cli

    project = tmp_path / "runs"
    code = cli([flag, str(tmp_path / value), "--project", str(project), "--epochs", "1", "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("train.py: error: ") and "nope.yaml" in err and err.count("\n") == 1
    assert not project.exists() or not any(project.iterdir())  # no empty exp folder left behind
