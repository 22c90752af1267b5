"""TrainConfig: tools/train.py's flags as a frozen, validated value; its checkpoint form and older checkpoints."""

from __future__ import annotations

import dataclasses
import io
import re

import pytest
import torch
from builders import make_trainer

from models.checkpoint import load_checkpoint, write_checkpoint
from tools import train
from tools.training.config import DEMO_DEFAULTS, OTHER_DEFAULTS, TrainConfig, before_its_flag, check_world_size
from tools.training.options import build_parser, parse_opt


def test_config_is_frozen():
    cfg = parse_opt([])
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.epochs = 3  # type: ignore[misc]
    assert dataclasses.replace(cfg, epochs=3).epochs == 3 and cfg.epochs == DEMO_DEFAULTS["epochs"]


def test_one_field_per_flag_with_the_flags_defaults():
    dests = {a.dest for a in build_parser()._actions} - {"help"}
    assert dests == {f.name for f in dataclasses.fields(TrainConfig)}
    assert parse_opt([]) == TrainConfig()  # no flags: the demo run, which the fields' defaults are
    demo = parse_opt([])
    assert (demo.imgsz, demo.epochs, demo.batch_size, demo.cache) == (256, 22, 16, "ram")
    other = parse_opt(["--data", "d.yaml"])  # another dataset: yolov5's sizes, cache when it fits
    assert (other.imgsz, other.epochs, other.batch_size, other.cache) == (640, 100, 16, None)
    assert {k: getattr(other, k) for k in OTHER_DEFAULTS} == OTHER_DEFAULTS
    given = parse_opt(["--data", "d.yaml", "--epochs", "3", "--img", "320", "--no-cache", "--time", "1"])
    assert (given.epochs, given.imgsz, given.cache, given.time) == (3, 320, False, 1.0)


BAD_FLAGS = [
    (["--label-smoothing", "1.0"], "--label-smoothing"),
    (["--imgsz", "65"], "--imgsz"),  # not a multiple of 32
    (["--imgsz", "0"], "--imgsz"),
    (["--batch-size", "0"], "--batch-size"),
    (["--epochs", "0"], "--epochs"),
    (["--workers", "-1"], "--workers"),
    (["--close-mosaic", "-1"], "--close-mosaic"),
    (["--max-nonfinite", "0"], "--max-nonfinite"),
    (["--patience", "-1"], "--patience"),
    (["--clip-grad", "-1"], "--clip-grad"),
    (["--clip-grad-value", "nan"], "--clip-grad-value"),
    (["--save-period-steps", "-1"], "--save-period-steps"),
    (["--save-period-minutes", "-0.5"], "--save-period-minutes"),
    (["--dist-timeout", "0"], "--dist-timeout"),
    (["--time", "-1"], "--time"),
    (["--time", "1e5"], "--time"),
]


@pytest.mark.parametrize("argv, name", BAD_FLAGS, ids=[" ".join(a) for a, _ in BAD_FLAGS])
def test_a_bad_flag_value_names_the_flag(argv, name):
    with pytest.raises(ValueError, match=rf"^{re.escape(name)} must be"):  # the flag itself, not a longer one
        parse_opt(argv)


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("epochs", 2.0, "--epochs must be int"),
        ("batch_size", True, "--batch-size must be int"),  # a bool is no number
        ("noval", "yes", "--noval must be bool"),
        ("data", 3, "--data must be str or None"),
        ("cache", True, "--cache must be one of"),
        ("cache", "gpu", "--cache must be one of"),
        ("cfg", "yolov9", "unknown --cfg 'yolov9'"),
        ("optimizer", "Lion", "unknown --optimizer"),
        ("label_smoothing_kind", "soft", "unknown --label-smoothing-kind"),
    ],
)
def test_a_bad_field_value_names_the_flag(field, value, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        TrainConfig(**{field: value})


def test_world_size_divides_the_batch():
    check_world_size(TrainConfig(batch_size=16), 4)
    with pytest.raises(ValueError, match="--batch-size 16 must be a multiple of the 3 ranks"):
        check_world_size(TrainConfig(batch_size=16), 3)


def test_round_trip_through_a_checkpoint_dict():
    cfg = parse_opt(["--data", "d.yaml", "--epochs", "3", "--label-smoothing", "0.1", "--cache", "disk",
                     "--time", "0.5", "--resume", "runs/train/exp/weights/last.pt", "--no-amp"])  # fmt: skip
    buf = io.BytesIO()
    torch.save({"opt": dataclasses.asdict(cfg)}, buf)  # as the trainer stores it
    buf.seek(0)
    stored = torch.load(buf, weights_only=True)["opt"]  # plain values: loadable without pickled classes
    assert list(stored) == list(vars(build_parser().parse_args([])))  # the keys vars(namespace) had, in order
    assert (stored["epochs"], stored["imgsz"], stored["cache"], stored["amp"]) == (3, 640, "disk", False)
    assert TrainConfig.from_dict(stored) == cfg
    assert TrainConfig.from_dict({**stored, "time": 1}).time == 1  # an int where a float is due is fine


def test_an_older_or_newer_checkpoint_dict(capsys):
    stored = dataclasses.asdict(TrainConfig(epochs=5, dist_timeout=60.0))
    del stored["save_period_minutes"], stored["clip_grad_value"]  # options added after it was written
    cfg = TrainConfig.from_dict({**stored, "rect": True, "quad": False}, source="checkpoint x.pt")
    assert cfg.epochs == 5 and cfg.dist_timeout == 60.0  # the stored values
    assert cfg.save_period_minutes == 0.0 and cfg.clip_grad_value == 0.0  # the defaults
    assert "checkpoint x.pt: ignoring option(s) this version does not have: quad, rect" in capsys.readouterr().out
    with pytest.raises(ValueError, match="--imgsz"):
        TrainConfig.from_dict({**stored, "imgsz": 65})


def test_an_option_whose_default_changed_keeps_the_old_behaviour_in_old_checkpoints():
    """--cls-scaling came after runs that trained with yolov5's rule: their checkpoints resume with it."""
    stored = dataclasses.asdict(TrainConfig(epochs=5))
    del stored["cls_scaling"]
    assert before_its_flag() == {"cls_scaling": "yolov5"}  # declared beside the field (opt_field before=)
    assert TrainConfig.from_dict(stored).cls_scaling == "yolov5"
    assert TrainConfig.from_dict({**stored, "cls_scaling": "sqrt"}).cls_scaling == "sqrt"
    assert parse_opt(["--cls-scaling", "sqrt"]).cls_scaling == "sqrt"
    with pytest.raises(ValueError, match="--cls-scaling"):
        TrainConfig(cls_scaling="linear")


def test_resume_an_older_checkpoint(tiny_data, tmp_path, capsys):
    """A checkpoint written before an option existed (and with one this version lacks) resumes; one whose
    stored options are invalid fails with one line and exit status 2."""
    tr = make_trainer(tiny_data, tmp_path, "--epochs", "2", "--noval")
    tr.save(0, 0.0)  # after epoch 0 of 2
    last = tr.wdir / "last.pt"
    ck = load_checkpoint(last)
    opt = {k: v for k, v in ck["opt"].items() if k != "save_period_minutes"}
    write_checkpoint(tr.wdir / "bad.pt", {**ck, "opt": {**opt, "imgsz": 65}})
    write_checkpoint(last, {**ck, "opt": {**opt, "rect": True}})
    assert train.cli(["--resume", str(tr.wdir / "bad.pt")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "its options are not valid: --imgsz must be a multiple of 32" in err, err
    assert train.main(["--resume", str(last), "--device", "cpu", "--workers", "0"]) == tmp_path / "exp"
    assert "ignoring option(s) this version does not have: rect" in capsys.readouterr().out
    resumed = load_checkpoint(last)
    assert resumed["epoch"] == 1 and resumed["opt"]["save_period_minutes"] == 0.0 and "rect" not in resumed["opt"]
    assert resumed["opt"] == {**opt, "save_period_minutes": 0.0, "resume": str(last)}
