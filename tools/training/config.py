"""``TrainConfig``: the settings of one training run, as a frozen, validated value (like ``EvalConfig``).

One field per ``tools/train.py`` flag, named as its argparse dest (``--batch-size`` is ``batch_size``), with the
flag's default. ``--epochs``, ``--batch-size``, ``--imgsz`` and ``--cache`` default by dataset
(:data:`DEMO_DEFAULTS` on the built-in demo, :data:`OTHER_DEFAULTS` on a data YAML); the fields' own defaults
are the demo's, so ``TrainConfig()`` is the run that ``python tools/train.py`` starts.

Built once: from the parsed flags (:meth:`TrainConfig.from_args`, which resolves the defaults by dataset) or
from a checkpoint's stored options (:meth:`TrainConfig.from_dict`: a key this version lacks takes its default,
a key it does not know is ignored with a note). Every bad value raises ``ValueError`` naming the flag, at
construction; the check that needs the number of DDP ranks is :func:`check_world_size`. Checkpoints and
``opt.yaml`` hold ``dataclasses.asdict(config)``, the keys ``vars(namespace)`` had.
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, get_args, get_type_hints

from detloss.checks import check_choice, check_eps, check_int, check_number
from detloss.config import CLS_SCALINGS, SMOOTHING_KINDS
from models import MODEL_CFGS

from .optim import CHOICES

__all__ = [
    "BEFORE_ITS_FLAG", "CACHE_MODES", "DEMO_DEFAULTS", "OTHER_DEFAULTS", "TrainConfig", "check_world_size", "flag",
]  # fmt: skip

# the demo setting: tuned so the default command finishes in about 10 minutes on 2 CPU cores
DEMO_DEFAULTS: dict[str, Any] = {"imgsz": 256, "epochs": 22, "batch_size": 16, "cache": "ram"}
OTHER_DEFAULTS: dict[str, Any] = {"imgsz": 640, "epochs": 100, "batch_size": 16}
# options whose default is not what training did before the option existed: a checkpoint written before then
# resumes as it was trained (the class gain followed yolov5's nc/80 until --cls-scaling)
BEFORE_ITS_FLAG: dict[str, Any] = {"cls_scaling": "yolov5"}
CACHE_MODES = ("ram", "disk", False, None)  # --cache ram / --cache disk / --no-cache / RAM when it fits
STRIDE = 32  # the largest stride of every model: the image size is a multiple of it


def flag(name: str) -> str:
    """The command-line flag of a field: ``batch_size`` -> ``--batch-size``."""
    return "--" + name.replace("_", "-")


@dataclass(frozen=True)
class TrainConfig:
    """Settings of a training run (module docstring); ``python tools/train.py --help`` describes each flag."""

    data: str | None = None  # a data YAML; None: the built-in demo dataset
    cfg: str = "yolov4-tiny-s"
    weights: str = ""
    hyp: str | None = None
    epochs: int = DEMO_DEFAULTS["epochs"]
    batch_size: int = DEMO_DEFAULTS["batch_size"]  # over all ranks
    imgsz: int = DEMO_DEFAULTS["imgsz"]
    device: str = ""
    workers: int = 2
    label_smoothing: float = 0.0
    label_smoothing_kind: str = "yolo"
    cls_scaling: str = "sqrt-cap4"  # how the class gain follows nc (detloss.config.CLS_SCALINGS; README "Defaults")
    optimizer: str = "auto"
    cos_lr: bool = False
    close_mosaic: int = 10
    cache: str | bool | None = DEMO_DEFAULTS["cache"]  # one of CACHE_MODES
    noautoanchor: bool = False
    seed: int = 0
    resume: bool | str = False  # True: the latest run under project; a path: that last.pt
    project: str = "runs/train"
    name: str = "exp"
    exist_ok: bool = False
    time: float | None = None  # hours; the trainer re-plans epochs with it
    patience: int = 100
    noval: bool = False
    noplots: bool = False
    clip_grad: float = 10.0
    clip_grad_value: float = 0.0
    amp: bool = True
    sync_bn: bool = False
    max_nonfinite: int = 20
    save_period_steps: int = 0
    save_period_minutes: float = 0.0
    dist_timeout: float = 1800.0

    def __post_init__(self) -> None:
        for name, types in _field_types().items():
            value = getattr(self, name)
            if not _is_a(value, types):
                kinds = " or ".join("None" if t is type(None) else t.__name__ for t in types)
                raise ValueError(f"{flag(name)} must be {kinds}, got {value!r}")
        for name in ("epochs", "batch_size", "imgsz", "max_nonfinite"):
            check_int(getattr(self, name), flag(name), lo=1)
        for name in ("workers", "close_mosaic", "patience", "save_period_steps"):
            check_int(getattr(self, name), flag(name), lo=0)
        for name in ("clip_grad", "clip_grad_value", "save_period_minutes"):
            check_number(getattr(self, name), flag(name), lo=0)
        check_number(self.dist_timeout, "--dist-timeout", lo=0, lo_open=True)  # seconds
        check_eps(self.label_smoothing, "--label-smoothing")
        if self.time is not None:
            check_number(self.time, "--time", 0, 1e4, lo_open=True, hi_open=True)
        if self.imgsz % STRIDE:
            raise ValueError(f"--imgsz must be a multiple of {STRIDE} (the largest stride), got {self.imgsz}")
        check_choice(self.cfg, "--cfg", MODEL_CFGS)
        check_choice(self.label_smoothing_kind, "--label-smoothing-kind", SMOOTHING_KINDS)
        check_choice(self.cls_scaling, "--cls-scaling", CLS_SCALINGS)
        check_choice(self.optimizer, "--optimizer", CHOICES)
        if self.cache not in CACHE_MODES:
            raise ValueError(f"--cache must be one of {CACHE_MODES}, got {self.cache!r}")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> TrainConfig:
        """From ``tools/train.py``'s parsed flags: ``--epochs``, ``--batch-size``, ``--imgsz`` and ``--cache``
        left unset (None) take the dataset's defaults (:data:`DEMO_DEFAULTS` without ``--data``, else
        :data:`OTHER_DEFAULTS`; ``--cache`` unset on other data stays None: RAM when the images fit)."""
        values = vars(args)
        by_data = DEMO_DEFAULTS if values.get("data") is None else OTHER_DEFAULTS
        return cls(**{**values, **{k: v for k, v in by_data.items() if values.get(k) is None}})

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], source: str = "stored options") -> TrainConfig:
        """From stored options (a checkpoint's ``opt``): a field the mapping lacks (an option added since it
        was written) takes the value training had before the option existed (:data:`BEFORE_ITS_FLAG`), else its
        default; a key that is no field (an option of another version) is ignored and named in a printed note."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            print(f"{source}: ignoring option(s) this version does not have: {', '.join(unknown)}")
        return cls(**{**BEFORE_ITS_FLAG, **{k: v for k, v in values.items() if k in names}})


def check_world_size(config: TrainConfig, world_size: int) -> None:
    """The total batch is split evenly over the DDP ranks."""
    if config.batch_size % world_size:
        raise ValueError(f"--batch-size {config.batch_size} must be a multiple of the {world_size} ranks")


@functools.cache
def _field_types() -> dict[str, tuple[type, ...]]:
    """Each field's accepted types from its annotation (``float | None`` -> ``(float, NoneType)``)."""
    return {name: get_args(hint) or (hint,) for name, hint in get_type_hints(TrainConfig).items()}


def _is_a(value: Any, types: tuple[type, ...]) -> bool:
    """``isinstance`` where a bool is no int and an int is a float (``--time 1`` from a stored dict)."""
    if isinstance(value, bool):
        return bool in types
    return isinstance(value, types) or (float in types and isinstance(value, int))
