"""A data YAML's ``imgsz``: validated by the reader, the trainer's default ``--imgsz`` for that data."""

import pytest

from data.report import DatasetError
from data.yaml_io import parse_data_dict
from tools.training.config import OTHER_DEFAULTS, data_defaults
from tools.training.options import parse_opt


def _yaml(tmp_path, extra: str = "") -> str:
    (tmp_path / "images" / "train").mkdir(parents=True)
    path = tmp_path / "d.yaml"
    path.write_text(f"train: images/train\nval: images/train\nnames: [a]\n{extra}")
    return str(path)


def test_reader_keeps_a_valid_imgsz_and_rejects_others():
    assert parse_data_dict({"train": "x", "val": "x", "names": ["a"], "imgsz": 320})["imgsz"] == 320
    for bad in (0, -32, 320.5, True, "320"):
        with pytest.raises(DatasetError, match="imgsz"):
            parse_data_dict({"train": "x", "val": "x", "names": ["a"], "imgsz": bad})


def test_trainer_default_imgsz_follows_the_yaml(tmp_path):
    data = _yaml(tmp_path, "imgsz: 320\n")
    assert data_defaults(data) == {"imgsz": 320}
    assert parse_opt(["--data", data]).imgsz == 320
    assert parse_opt(["--data", data, "--imgsz", "416"]).imgsz == 416  # the flag wins


def test_without_imgsz_or_unreadable_yaml_the_usual_default(tmp_path):
    assert parse_opt(["--data", _yaml(tmp_path)]).imgsz == OTHER_DEFAULTS["imgsz"]
    assert data_defaults(str(tmp_path / "missing.yaml")) == {}
