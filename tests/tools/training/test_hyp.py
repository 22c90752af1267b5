"""Hyp: yolov5's hyp keys as a frozen, validated value; hyp files in, hyp.yaml / checkpoint dicts out."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from detloss.config import YOLOV5_LOSS_KEYS, YOLOV5_OTHER_KEYS
from tools.training.hyp import DEFAULT_HYP, Hyp, load_hyp
from tools.training.optim import resolve_optimizer


def test_defaults_are_hyp_scratch_low():
    h = Hyp()
    # ultralytics yolov5 data/hyps/hyp.scratch-low.yaml, by hand
    assert (h.lr0, h.lrf, h.momentum, h.weight_decay, h.warmup_epochs) == (0.01, 0.01, 0.937, 0.0005, 3.0)
    assert (h.box, h.cls, h.obj, h.anchor_t, h.fl_gamma) == (0.05, 0.5, 1.0, 4.0, 0.0)
    assert (h.fliplr, h.mosaic, h.mixup, h.scale, h.translate) == (0.5, 1.0, 0.0, 0.5, 0.1)
    assert len(DEFAULT_HYP) == 28 and DEFAULT_HYP == h.as_dict()
    names = {f.name for f in dataclasses.fields(Hyp)}
    assert names | {"anchors", "label_smoothing"} == set(YOLOV5_LOSS_KEYS) | set(YOLOV5_OTHER_KEYS)  # every key


def test_augmentation_defaults_equal_the_datasets():
    """Hyp's augmentation defaults are data.augment.AugConfig's (read from it): the two tables agree."""
    from data.augment import AugConfig

    aug = dataclasses.asdict(AugConfig())
    assert len(aug) == 13 and {k: Hyp().as_dict()[k] for k in aug} == aug


def test_frozen_and_replace():
    h = Hyp()
    with pytest.raises(dataclasses.FrozenInstanceError):
        h.lr0 = 0.1  # type: ignore[misc]
    assert h.replace(lr0=0.002).lr0 == 0.002 and h.lr0 == 0.01


@pytest.mark.parametrize(
    "values, message",
    [
        ({"lr0": 0.01, "mosiac": 1.0}, r"unknown hyperparameter\(s\) \['mosiac'\]"),  # a typo is named
        ({"lr0": float("nan")}, "lr0 must be a finite number"),
        ({"lr0": "0.01"}, "lr0 must be a finite number"),
        ({"momentum": True}, "momentum must be a finite number"),
        ({"lr0": -0.1}, "lr0 must be >= 0"),
    ],
)
def test_bad_values_name_the_key(values, message):
    with pytest.raises(ValueError, match=message):
        Hyp.from_dict(values, "hyp file 'h.yaml'")


def test_bad_value_in_the_constructor():
    with pytest.raises(ValueError, match="hyp warmup_epochs must be >= 0, got -1.0"):
        Hyp(warmup_epochs=-1.0)
    with pytest.raises(ValueError, match="expected a mapping"):
        Hyp.from_dict([1, 2])


def test_yaml_round_trip_and_accepted_extras(tmp_path):
    f = tmp_path / "hyp.yaml"
    f.write_text("lr0: 0.02\nmosaic: 0\nanchors: 3\nlabel_smoothing: 0.1\n")  # yolov5 keys that are not kept
    h = load_hyp(f)
    assert h.lr0 == 0.02 and h.mosaic == 0.0 and isinstance(h.mosaic, float) and h.momentum == 0.937
    out = tmp_path / "out.yaml"
    out.write_text(yaml.safe_dump(h.as_dict(), sort_keys=False))  # as the run folder's hyp.yaml
    assert load_hyp(out) == h and Hyp.from_dict(h.as_dict()) == h
    assert load_hyp(None) == Hyp()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_hyp(tmp_path / "nope.yaml")


def test_optimizer_reads_a_hyp_or_a_mapping():
    assert resolve_optimizer("SGD", Hyp(lr0=0.03), 600, 16, 25, nc=6) == ("SGD", 0.03, 0.937)
    assert resolve_optimizer("SGD", {"lr0": 0.03}, 600, 16, 25, nc=6) == ("SGD", 0.03, 0.937)
    with pytest.raises(ValueError, match="unknown hyperparameter"):
        resolve_optimizer("SGD", {"lr_0": 0.03}, 600, 16, 25, nc=6)
