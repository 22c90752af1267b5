"""detloss.checks: one message style for bad values; PRESETS cannot be changed in place."""

from __future__ import annotations

import math

import pytest

from detloss import PRESETS, LossConfig
from detloss.checks import check_choice, check_eps, check_int, check_num_classes, check_number


def test_check_number_bounds_and_types():
    assert check_number(3, "x") == 3.0 and isinstance(check_number(3, "x"), float)
    assert check_number(0.0, "x", 0.0, 1.0) == 0.0 and check_number(1.0, "x", 0.0, 1.0) == 1.0
    for bad in (True, "1", None, math.nan, math.inf):
        with pytest.raises(ValueError, match=r"x must be a finite number in \[0, 1\], got"):
            check_number(bad, "x", 0.0, 1.0)
    with pytest.raises(ValueError, match=r"x must be > 0, got 0"):
        check_number(0, "x", lo=0, lo_open=True)
    with pytest.raises(ValueError, match=r"x must be in \[0, 1\), got 1"):
        check_number(1, "x", 0, 1, hi_open=True)
    with pytest.raises(ValueError, match=r"x must be <= 2, got 3"):
        check_number(3, "x", hi=2)


def test_check_int_and_choice():
    assert check_int(5, "n", lo=1) == 5
    for bad in (True, 2.0, "2"):
        with pytest.raises(ValueError, match="n must be an int >= 1"):
            check_int(bad, "n", lo=1)
    with pytest.raises(ValueError, match=r"n must be an int in \[1, 3\], got 4"):
        check_int(4, "n", 1, 3)
    assert check_choice("a", "mode", ("a", "b")) == "a"
    with pytest.raises(ValueError, match=r"unknown mode 'c'; expected one of \('a', 'b'\)"):
        check_choice("c", "mode", ("a", "b"))
    with pytest.raises(ValueError, match="unknown mode"):
        check_choice(["a"], "mode", ("a", "b"))  # unhashable: still a ValueError
    assert check_eps(0.1) == 0.1 and check_num_classes(2) == 2
    with pytest.raises(ValueError, match=r"smoothing must be in \[0, 1\), got 1"):
        check_eps(1.0, "smoothing")
    with pytest.raises(ValueError, match="num_classes must be an int >= 2, got 1"):
        check_num_classes(1)


def test_loss_config_uses_the_shared_messages():
    with pytest.raises(ValueError, match=r"LossConfig.gr must be in \[0, 1\], got 2"):
        LossConfig(gr=2)
    with pytest.raises(ValueError, match="unknown LossConfig.box_kind 'l1'"):
        LossConfig(box_kind="l1")


def test_presets_are_read_only():
    with pytest.raises(TypeError):
        PRESETS["yolov5"] = LossConfig(box=1.0)  # type: ignore[index]
    with pytest.raises(TypeError):
        del PRESETS["yolov3"]  # type: ignore[attr-defined]
    assert LossConfig.preset("yolov5") == LossConfig()
    assert set(PRESETS) == {"yolov5", "yolov4", "yolov3"}
