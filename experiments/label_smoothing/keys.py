"""A study run's identity: the settings, the trainer options keyed by value, and :func:`run_key`.

A run's :class:`~.summaries.RunKey` holds everything that changes what is trained or measured. The trainer's
flags after ``--`` enter it as text, except the options of :data:`KEYED_BY_VALUE`: those enter by value, and only
when the value differs from what training did before the option existed. So a run keyed before ``--cls-scaling``
existed keeps its hash when the study names ``--cls-scaling yolov5`` (in any spelling), and a change of the
trainer's default gives runs of the new value a new hash instead of silently counting the old summaries.
"""

from __future__ import annotations

import argparse
import shlex
from typing import Any

from .summaries import RunKey

__all__ = ["CONDITIONS", "KEYED_BY_VALUE", "POSTHOC", "PRIORITY", "SETTINGS", "by_value", "named_by_value", "run_key"]

POSTHOC = "eps 0 + post-hoc"
# setting -> (eps, smoothing kind of tools/train.py --label-smoothing-kind)
SETTINGS: dict[str, tuple[float, str]] = {
    "eps 0": (0.0, "yolo"),
    "eps 0.01": (0.01, "yolo"),
    "eps 0.05": (0.05, "yolo"),
    "eps 0.1": (0.1, "yolo"),
    "uniform 0.1": (0.1, "uniform"),
    "online 0.1": (0.1, "online"),
}
# training order within a seed: the main command's comparison first (a partial study answers it soonest)
PRIORITY = ("eps 0", "eps 0.1", "online 0.1", "eps 0.01", "uniform 0.1", "eps 0.05")
CONDITIONS = ("clean", "noisy")

# The study's own table, independent of the trainer's: option (TrainConfig field) -> (its flag, the value training
# had before the option existed). Every committed summary under docs/study/**/runs/ was keyed with it; changing an
# old value changes those hashes, so an option is only ever added here (when a new option changes what is trained).
KEYED_BY_VALUE: dict[str, tuple[str, Any]] = {"cls_scaling": ("--cls-scaling", "yolov5")}


def by_value(extra: list[str]) -> tuple[list[str], dict[str, Any]]:
    """``(the trainer flags without those of KEYED_BY_VALUE, the values of those options that differ from their
    old value)``. The value is the trainer's parse of ``extra`` (its default when the flag is not given)."""
    from tools.training.options import parse_opt

    opt = parse_opt(list(extra))
    strip = argparse.ArgumentParser(allow_abbrev=False, add_help=False)
    for flag, _ in KEYED_BY_VALUE.values():
        strip.add_argument(flag)
    kept = strip.parse_known_args(list(extra))[1]
    return kept, {k: getattr(opt, k) for k, (_, old) in KEYED_BY_VALUE.items() if getattr(opt, k) != old}


def named_by_value(flags: dict[str, Any]) -> list[str]:
    """The KEYED_BY_VALUE options of a run key's ``flags`` as explicit trainer flags (``--cls-scaling yolov5``):
    a command that continues the runs must name them, since the trainer's default may differ from their value."""
    return [f"{flag} {shlex.quote(str(flags.get(k, old)))}" for k, (flag, old) in KEYED_BY_VALUE.items()]


def run_key(args: argparse.Namespace, extra: list[str], condition: str, setting: str, seed: int) -> RunKey:
    """The identity of one run: everything that changes what is trained or measured, no paths."""
    eps, kind = SETTINGS[setting]
    train, changed = by_value(extra)
    flags = {"train": train, "eps": eps, "kind": kind, "holdout": args.holdout, "split_seed": args.split_seed,
             "noise": args.noise if condition == "noisy" else 0.0, "noise_seed": args.noise_seed,
             "flip_map": args.flip_map or "default", "posthoc": args.posthoc_method, **changed}  # fmt: skip
    return RunKey(args.dataset, condition, setting, seed, flags)
