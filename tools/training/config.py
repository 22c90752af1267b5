"""``TrainConfig``: the settings of one training run, as a frozen, validated value (like ``EvalConfig``).

One field per ``tools/train.py`` flag, named as its argparse dest (``--batch-size`` is ``batch_size``), with the
flag's default and help text (:func:`opt_field`): ``tools/training/options.py`` generates the parser from the
fields, so a setting is declared here once. ``--epochs``, ``--batch-size``, ``--imgsz`` and ``--cache`` default
by dataset (:data:`DEMO_DEFAULTS` on the built-in demo, :data:`OTHER_DEFAULTS` on a data YAML); the fields' own defaults
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
from dataclasses import dataclass, field, fields
from typing import Any, get_args, get_type_hints

from detloss.checks import check_choice, check_eps, check_int, check_number
from detloss.config import CLS_SCALINGS, SMOOTHING_KINDS
from models import MODEL_CFGS

from .optim import CHOICES

__all__ = [
    "CACHE_MODES", "DEMO_DEFAULTS", "OTHER_DEFAULTS", "TrainConfig", "before_its_flag", "check_world_size", "flag",
    "opt_field",
]  # fmt: skip

# the demo setting: tuned so the default command finishes in about 10 minutes on 2 CPU cores
DEMO_DEFAULTS: dict[str, Any] = {"imgsz": 256, "epochs": 22, "batch_size": 16, "cache": "ram"}
OTHER_DEFAULTS: dict[str, Any] = {"imgsz": 640, "epochs": 100, "batch_size": 16}
CACHE_MODES = ("ram", "disk", False, None)  # --cache ram / --cache disk / --no-cache / RAM when it fits
STRIDE = 32  # the largest stride of every model: the image size is a multiple of it
_UNSET = object()


def flag(name: str) -> str:
    """The command-line flag of a field: ``batch_size`` -> ``--batch-size``."""
    return "--" + name.replace("_", "-")


def opt_field(default: Any, help: str | None = None, before: Any = _UNSET, **argparse_kw: Any) -> Any:  # noqa: A002
    """A :class:`TrainConfig` field declared once: its default, its ``--help`` text, the argparse keywords its
    flag needs beyond those :mod:`tools.training.options` derives from the annotation (``choices``, ``nargs``,
    ``const``, ``aliases``), and ``before``: the value training had before the option existed (a checkpoint
    written then lacks the key and resumes as it was trained, :meth:`TrainConfig.from_dict`)."""
    meta: dict[str, Any] = {"help": help, "argparse": argparse_kw}
    if before is not _UNSET:
        meta["before"] = before
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class TrainConfig:
    """Settings of a training run (module docstring); ``python tools/train.py --help`` describes each flag."""

    data: str | None = opt_field(None, "data YAML (yolov5 layout or COCO JSON); default: the demo dataset")
    cfg: str = opt_field("yolov4-tiny-s", "model", choices=MODEL_CFGS)
    weights: str = opt_field("", "initial weights (a detloss checkpoint)")
    hyp: str | None = opt_field(None, "yolov5 hyp YAML; default hyp.scratch-low values")
    epochs: int = opt_field(
        DEMO_DEFAULTS["epochs"], f"default {DEMO_DEFAULTS['epochs']} on the demo data, else {OTHER_DEFAULTS['epochs']} "
        "(see --time)"
    )  # fmt: skip
    batch_size: int = opt_field(
        DEMO_DEFAULTS["batch_size"], f"total over all ranks; default {DEMO_DEFAULTS['batch_size']}"
    )
    imgsz: int = opt_field(
        DEMO_DEFAULTS["imgsz"],
        f"default {DEMO_DEFAULTS['imgsz']} on the demo, else the data YAML's imgsz or {OTHER_DEFAULTS['imgsz']}",
        aliases=("--img", "--img-size"),
    )  # fmt: skip
    device: str = opt_field("", "cpu, 0 or 0,1 (default: CUDA if available)")
    workers: int = opt_field(2, "dataloader workers per rank")
    label_smoothing: float = opt_field(0.0, "label smoothing eps in [0, 1)")
    label_smoothing_kind: str = opt_field(
        "yolo", "class targets: yolo (1-eps/2, eps/2), uniform (eps/K), prior, online", choices=SMOOTHING_KINDS
    )
    cls_scaling: str = opt_field(  # detloss.config.CLS_SCALINGS; README "Defaults"; yolov5's rule before the flag
        "sqrt-cap4", "class gain by class count: yolov5 (cls*nc/80), sqrt (cls*sqrt(nc/80) below 80), sqrt-cap4 "
        "(sqrt, at most 4x yolov5's)", before="yolov5", choices=CLS_SCALINGS,
    )  # fmt: skip
    optimizer: str = opt_field(
        "auto", "auto (ultralytics v8 rule): AdamW lr0 0.004*5/(4+nc) for <= 10k steps, else SGD", choices=CHOICES
    )
    cos_lr: bool = opt_field(False, "cosine learning-rate schedule")
    close_mosaic: int = opt_field(10, "train the last N epochs without mosaic (0: never)")
    cache: str | bool | None = opt_field(  # one of CACHE_MODES; --no-cache (False) is options.py's second flag
        DEMO_DEFAULTS["cache"], "resized images in RAM (--cache, --cache ram) or as .npy files (--cache disk); "
        f"default: {DEMO_DEFAULTS['cache']} on the demo, else ram when it fits in memory",
        nargs="?", const="ram", choices=("ram", "disk"),
    )  # fmt: skip
    noautoanchor: bool = opt_field(False, "keep the model's anchors (no best-recall check)")
    seed: int = opt_field(0)
    resume: bool | str = opt_field(False, "resume the latest run or a last.pt", nargs="?", const=True)
    project: str = opt_field("runs/train")
    name: str = opt_field("exp")
    exist_ok: bool = opt_field(False, "reuse project/name instead of incrementing")
    time: float | None = opt_field(None, "wall-clock budget in hours; overrides --epochs (re-planned after each epoch)")
    patience: int = opt_field(100, "early stop after this many epochs without gain")
    noval: bool = opt_field(False, "validate only after the final epoch")
    noplots: bool = opt_field(False, "no run-folder pictures (labels, batches, val plots)")
    clip_grad: float = opt_field(10.0, "max gradient norm; 0 disables clipping")
    clip_grad_value: float = opt_field(0.0, "clip each gradient element to [-V, V] (before --clip-grad); 0 disables")
    amp: bool = opt_field(True, "mixed precision: fp16 on CUDA, bf16 on a CPU with native bf16 (AVX512-BF16/AMX)")
    sync_bn: bool = opt_field(False, "SyncBatchNorm under DDP (CUDA)")
    max_nonfinite: int = opt_field(20, "stop after this many consecutive non-finite losses")
    save_period_steps: int = opt_field(
        0, "also write last.pt every N optimizer steps, mid-epoch (0: at epoch ends only)"
    )
    save_period_minutes: float = opt_field(0.0, "also write last.pt when M minutes passed since the last one (0: off)")
    dist_timeout: float = opt_field(1800.0, "DDP: seconds a rank waits for the others in a collective before it stops")

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
        :data:`OTHER_DEFAULTS` with the data YAML's ``imgsz`` when it has one; ``--cache`` unset on other data
        stays None: RAM when the images fit)."""
        values = vars(args)
        by_data = DEMO_DEFAULTS if values.get("data") is None else {**OTHER_DEFAULTS, **data_defaults(values["data"])}
        return cls(**{**values, **{k: v for k, v in by_data.items() if values.get(k) is None}})

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], source: str = "stored options") -> TrainConfig:
        """From stored options (a checkpoint's ``opt``): a field the mapping lacks (an option added since it
        was written) takes the value training had before the option existed (:func:`before_its_flag`), else its
        default; a key that is no field (an option of another version) is ignored and named in a printed note."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            print(f"{source}: ignoring option(s) this version does not have: {', '.join(unknown)}")
        return cls(**{**before_its_flag(), **{k: v for k, v in values.items() if k in names}})


def data_defaults(data: str) -> dict[str, Any]:
    """``{"imgsz": n}`` when the data YAML names the image size it is made for (e.g. ``tools/make_trees.py``'s
    tiles at native resolution), else ``{}``. A YAML that does not load gives ``{}`` here: the dataset loader
    reports its problem when training starts."""
    from data.report import DatasetError
    from data.yaml_io import load_data_yaml

    if not str(data).endswith((".yaml", ".yml")):
        return {}
    try:
        imgsz = load_data_yaml(data).get("imgsz")
    except DatasetError:
        return {}
    return {} if imgsz is None else {"imgsz": imgsz}


def check_world_size(config: TrainConfig, world_size: int) -> None:
    """The total batch is split evenly over the DDP ranks."""
    if config.batch_size % world_size:
        raise ValueError(f"--batch-size {config.batch_size} must be a multiple of the {world_size} ranks")


def before_its_flag() -> dict[str, Any]:
    """``{field: value training had before the option existed}`` for the fields declared with ``before``."""
    return {f.name: f.metadata["before"] for f in fields(TrainConfig) if "before" in f.metadata}


@functools.cache
def _field_types() -> dict[str, tuple[type, ...]]:
    """Each field's accepted types from its annotation (``float | None`` -> ``(float, NoneType)``)."""
    return {name: get_args(hint) or (hint,) for name, hint in get_type_hints(TrainConfig).items()}


def _is_a(value: Any, types: tuple[type, ...]) -> bool:
    """``isinstance`` where a bool is no int and an int is a float (``--time 1`` from a stored dict)."""
    if isinstance(value, bool):
        return bool in types
    return isinstance(value, types) or (float in types and isinstance(value, int))
