"""``tools/train.py``'s flags: the parser, for every tool that trains; it gives a :class:`TrainConfig`.

``tools/train.py`` and ``tools/bench_train.py`` both build their runs from :func:`parse_opt`, so a benchmark
measures exactly the run a user starts; a script imports no other script. The parser is generated
from the config's fields (:mod:`tools.training.config`: each field's default, help and argparse keywords are
declared there once); the flags whose default depends on the dataset parse to None and
:meth:`TrainConfig.from_args` fills them in.
"""

from __future__ import annotations

import argparse
from dataclasses import Field, fields
from typing import Any, get_args, get_type_hints

from .config import DEMO_DEFAULTS, OTHER_DEFAULTS, TrainConfig, flag

__all__ = ["DEMO_DEFAULTS", "OTHER_DEFAULTS", "build_parser", "parse_opt"]

DESCRIPTION = """Train a YOLO detector with detloss: ``python tools/train.py --label-smoothing 0.1``.

With no arguments it trains the small ``yolov4-tiny-s`` on the built-in demo dataset on the CPU. Flags follow
ultralytics yolov5's ``train.py``; ``torchrun --nproc_per_node N tools/train.py ...`` trains with DDP.
"""


def parse_opt(argv: list[str] | None = None) -> TrainConfig:
    """The validated config of ``tools/train.py``'s flags (``ValueError`` naming the flag for a bad value)."""
    return TrainConfig.from_args(build_parser().parse_args(argv))


def build_parser() -> argparse.ArgumentParser:
    """``tools/train.py``'s parser: one flag per :class:`TrainConfig` field, in field order, its dest the field's
    name, its help the field's (:func:`tools.training.config.opt_field`); ``--no-cache`` follows ``--cache``."""
    p = argparse.ArgumentParser(prog="train.py", description=DESCRIPTION,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)  # fmt: skip
    hints = get_type_hints(TrainConfig)
    for f in fields(TrainConfig):
        kw = dict(f.metadata.get("argparse", {}))
        aliases = kw.pop("aliases", ())
        p.add_argument(flag(f.name), *aliases, **_flag_kwargs(f, hints[f.name]), **kw)
        if f.name == "cache":
            p.add_argument(
                "--no-cache", dest="cache", action="store_const", const=False, help="read images every epoch"
            )
    return p


def _flag_kwargs(f: Field, hint: Any) -> dict[str, Any]:
    """What a field's annotation and default say about its flag: a bool is a switch (``--amp/--no-amp`` when on by
    default), an int or float field parses its type; a field defaulting by dataset (:data:`DEMO_DEFAULTS`) parses
    to None, which :meth:`TrainConfig.from_args` fills in."""
    default = None if f.name in DEMO_DEFAULTS else f.default
    kw: dict[str, Any] = {"default": default, "help": f.metadata.get("help")}
    types = set(get_args(hint) or (hint,)) - {type(None)}
    if types == {bool}:
        kw["action"] = argparse.BooleanOptionalAction if f.default else "store_true"
    elif types in ({int}, {float}):
        kw["type"] = types.pop()
    return kw
