"""Argument checks shared by detloss, models, data and tools: one message style for every bad value.

Each check returns the value (converted where it says so) and raises ``ValueError`` naming the argument,
the rule and the value it got. ``bool`` is never accepted as a number (``True`` would pass as ``1``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def _range_text(lo: float | None, hi: float | None, lo_open: bool, hi_open: bool) -> str:
    if lo is not None and hi is not None:
        return f" in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
    if lo is not None:
        return f" {'>' if lo_open else '>='} {lo:g}"
    if hi is not None:
        return f" {'<' if hi_open else '<='} {hi:g}"
    return ""


def _in_range(value: float, lo: float | None, hi: float | None, lo_open: bool, hi_open: bool) -> bool:
    if lo is not None and (value <= lo if lo_open else value < lo):
        return False
    return not (hi is not None and (value >= hi if hi_open else value > hi))


def check_number(
    value: Any,
    name: str,
    lo: float | None = None,
    hi: float | None = None,
    *,
    lo_open: bool = False,
    hi_open: bool = False,
) -> float:
    """A finite int or float within the optional bounds (closed unless ``lo_open``/``hi_open``); returns a float."""
    rule = _range_text(lo, hi, lo_open, hi_open)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number{rule}, got {value!r}")
    if not _in_range(value, lo, hi, lo_open, hi_open):
        raise ValueError(f"{name} must be{rule}, got {value}")
    return float(value)


def check_int(value: Any, name: str, lo: int | None = None, hi: int | None = None) -> int:
    """An ``int`` (not ``bool``, not a float such as ``2.0``) within the optional closed bounds."""
    rule = _range_text(lo, hi, False, False)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an int{rule}, got {value!r}")
    if not _in_range(value, lo, hi, False, False):
        raise ValueError(f"{name} must be an int{rule}, got {value}")
    return value


def check_choice(value: Any, name: str, options: Sequence[str]) -> str:
    """One of ``options`` (strings for modes, as torchvision's ``box_convert(fmt=...)``)."""
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"unknown {name} {value!r}; expected one of {tuple(options)}")
    return value


def check_eps(value: Any, name: str = "eps") -> float:
    """A smoothing amount in ``[0, 1)``."""
    return check_number(value, name, 0.0, 1.0, hi_open=True)


def check_num_classes(value: Any, name: str = "num_classes") -> int:
    """A class count of a softmax/BCE smoothing formula: an int >= 2."""
    return check_int(value, name, lo=2)
