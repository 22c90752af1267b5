"""tools/train.py's flags are generated from TrainConfig's fields: each field's help travels with it, and the
generated table is the hand-written one it replaced (yolov5's names, aliases and defaults kept)."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from tools.training.config import TrainConfig
from tools.training.options import build_parser

# (flags, default, const, nargs, type) of the hand-written parser this generation replaced
BEFORE = {
    "data": (["--data"], None, None, None, None),
    "imgsz": (["--imgsz", "--img", "--img-size"], None, None, None, int),
    "epochs": (["--epochs"], None, None, None, int),
    "batch_size": (["--batch-size"], None, None, None, int),
    "cfg": (["--cfg"], "yolov4-tiny-s", None, None, None),
    "workers": (["--workers"], 2, None, None, int),
    "label_smoothing": (["--label-smoothing"], 0.0, None, None, float),
    "cos_lr": (["--cos-lr"], False, True, 0, None),
    "cache": (["--cache"], None, "ram", "?", None),
    "resume": (["--resume"], False, True, "?", None),
    "time": (["--time"], None, None, None, float),
    "amp": (["--amp", "--no-amp"], True, None, 0, None),
    "dist_timeout": (["--dist-timeout"], 1800.0, None, None, float),
    "seed": (["--seed"], 0, None, None, int),
}


def _actions() -> dict[str, argparse.Action]:
    return {a.option_strings[0]: a for a in build_parser()._actions if a.dest != "help"}


@pytest.mark.parametrize("dest", sorted(BEFORE))
def test_flags_as_before(dest):
    flags, default, const, nargs, typ = BEFORE[dest]
    a = _actions()[flags[0]]
    assert (a.option_strings, a.dest, a.default, a.const, a.nargs, a.type) == (flags, dest, default, const, nargs, typ)


def test_no_cache_follows_cache_and_help_is_the_fields():
    actions = list(_actions().values())
    names = [a.option_strings[0] for a in actions]
    assert names.index("--no-cache") == names.index("--cache") + 1
    assert actions[names.index("--no-cache")].const is False
    by_dest = {a.dest: a for a in actions if a.option_strings[0] != "--no-cache"}
    for f in dataclasses.fields(TrainConfig):
        assert by_dest[f.name].help == f.metadata["help"], f.name
    assert by_dest["label_smoothing_kind"].choices == ("yolo", "uniform", "prior", "online")
    assert "4x yolov5's" in by_dest["cls_scaling"].help and by_dest["seed"].help is None


def test_store_true_switches_for_off_by_default_bools():
    switches = {a.dest for a in _actions().values() if isinstance(a, argparse._StoreTrueAction)}
    assert switches == {"cos_lr", "noautoanchor", "exist_ok", "noval", "noplots", "sync_bn"}
