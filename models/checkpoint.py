"""Checkpoints: everything needed to rebuild a :class:`models.Detector`, written atomically.

A checkpoint is a ``torch.save``'d dict::

    {"format": "detloss-detector", "version": 1,
     "cfg": "yolov4-tiny", "nc": 80, "names": [...], "anchors": [[[w, h], ...], ...] (pixels),
     "decode": "yolov5", "scale_x_y": 1.0,
     "model": state_dict, **extra}

``extra`` carries the trainer's state (optimizer state dict, ``ema`` weights, epoch, ...). Values must be
plain (tensors, numbers, strings, None, lists/tuples/dicts of those) so the file loads with
``torch.load(weights_only=True)``, which runs no pickled code; an ``nn.Module`` value is stored as its
``state_dict()``. ``ema``, when present and not None, is the EMA model's state dict and
:func:`load_model` prefers it to ``model``. ``calibrator``, when present, is a post-hoc confidence calibrator's
plain state (written by ``tools/calibrate.py``, read by ``tools.evaluation.calibrators.Calibrator.from_state``;
:func:`checkpoint_calibrator` returns it); inference applies it to the scores after NMS.
"""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from fileio import atomic_write_with

from .detector import Detector, build_model

FORMAT = "detloss-detector"
VERSION = 1
_META_KEYS = ("cfg", "nc", "names", "anchors", "decode", "scale_x_y")
_RESERVED = ("format", "version", "model") + _META_KEYS
_PLAIN_LEAVES = (Tensor, str, int, float, bool, type(None), torch.dtype, torch.device, torch.Size)


def _check_plain(value: Any, where: str, depth: int = 0) -> None:
    if isinstance(value, _PLAIN_LEAVES):
        return
    if depth > 32:
        raise ValueError(f"checkpoint value {where} is nested too deeply")
    if isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, (str, int)):
                raise ValueError(f"checkpoint key {k!r} in {where} must be a str or int, got {type(k).__name__}")
            _check_plain(v, f"{where}[{k!r}]", depth + 1)
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_plain(v, f"{where}[{i}]", depth + 1)
    else:
        raise ValueError(
            f"checkpoint value {where} has type {type(value).__name__}; store plain values "
            "(tensors, numbers, strings, None, lists/dicts of those), e.g. float(x) or x.state_dict()"
        )


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside DataParallel / DistributedDataParallel (``.module``) or torch.compile (``._orig_mod``)."""
    for attr in ("_orig_mod", "module"):
        inner = getattr(model, attr, None)
        if isinstance(inner, nn.Module):
            return unwrap(inner)
    return model


def save_checkpoint(path: str | os.PathLike[str], model: nn.Module, /, **extra: Any) -> Path:
    """Write ``model`` (a :class:`Detector`, possibly DDP-wrapped) and ``extra`` to ``path`` atomically.

    The file is written with :func:`fileio.atomic_write_with` (a temporary sibling, fsync,
    ``os.replace``), so a crash never leaves a half-written checkpoint. Parent folders are created.
    Returns the path. The checkpoint is serialised in memory first: ``torch.save`` streaming into a full disk
    fails with a bare ``RuntimeError`` ("unexpected pos"), a plain write with ``OSError(ENOSPC)`` naming
    the cause.
    """
    m = unwrap(model)
    if not isinstance(m, Detector):
        raise ValueError(f"save_checkpoint needs a models.Detector, got {type(model).__name__}")
    clash = sorted(k for k in extra if k in _RESERVED)
    if clash:
        raise ValueError(f"extra checkpoint keys {clash} are reserved ({_RESERVED})")
    ckpt: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "cfg": m.cfg_name,
        "nc": m.nc,
        "names": list(m.names),
        "anchors": m.anchors_px.detach().cpu().tolist(),
        "decode": m.decode,
        "scale_x_y": m.scale_x_y,
        "model": m.state_dict(),
    }
    for k, v in extra.items():
        if isinstance(v, nn.Module):
            v = unwrap(v).state_dict()
        _check_plain(v, f"extra[{k!r}]")
        ckpt[k] = v
    return _write(path, ckpt)


def write_checkpoint(path: str | os.PathLike[str], ckpt: dict[str, Any]) -> Path:
    """Write an already-built checkpoint dict (e.g. a loaded one with a key added) atomically, checked first."""
    _check_ckpt(ckpt, "checkpoint dict")
    for k, v in ckpt.items():
        _check_plain(v, f"checkpoint[{k!r}]")
    return _write(path, ckpt)


def _write(path: str | os.PathLike[str], ckpt: dict[str, Any]) -> Path:
    buf = io.BytesIO()
    torch.save(ckpt, buf)
    return atomic_write_with(path, lambda f: f.write(buf.getbuffer()))


def checkpoint_calibrator(ckpt: dict[str, Any]) -> dict[str, Any] | None:
    """The ``calibrator`` state of a loaded checkpoint, or None; ``ValueError`` if it is not a dict."""
    cal = ckpt.get("calibrator")
    if cal is not None and not isinstance(cal, Mapping):
        raise ValueError(f"checkpoint 'calibrator' must be a dict (a calibrator state), got {type(cal).__name__}")
    return None if cal is None else dict(cal)


def _check_ckpt(ckpt: Any, src: str) -> dict[str, Any]:
    if not isinstance(ckpt, dict):
        raise ValueError(f"{src} is not a detloss checkpoint: expected a dict, got {type(ckpt).__name__}")
    if ckpt.get("format") != FORMAT:
        raise ValueError(f"{src} is not a detloss checkpoint (format {ckpt.get('format')!r}, expected {FORMAT!r})")
    if ckpt.get("version") != VERSION:
        raise ValueError(f"{src} has checkpoint version {ckpt.get('version')!r}; this code reads version {VERSION}")
    missing = [k for k in _META_KEYS + ("model",) if k not in ckpt]
    if missing:
        raise ValueError(f"{src} is missing checkpoint key(s) {missing}")
    return ckpt


def load_checkpoint(path: str | os.PathLike[str], map_location: Any = "cpu") -> dict[str, Any]:
    """Read and check a checkpoint written by :func:`save_checkpoint` (``torch.load(weights_only=True)``)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"checkpoint {str(p)!r} does not exist or is not a file")
    try:
        ckpt = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as e:  # corrupt zip, truncated file, foreign pickle: all name the file
        if not zipfile.is_zipfile(p):
            what = "truncated or damaged (no complete zip archive)" if _starts_like_zip(p) else "not a torch file"
            raise ValueError(f"cannot read checkpoint {str(p)!r}: {what} ({type(e).__name__})") from e
        raise ValueError(f"cannot read checkpoint {str(p)!r}: {type(e).__name__}: {e}") from e
    return _check_ckpt(ckpt, f"checkpoint {str(p)!r}")


def _starts_like_zip(p: Path) -> bool:
    with open(p, "rb") as f:
        return f.read(4) == b"PK\x03\x04"


def load_model(path_or_ckpt: str | os.PathLike[str] | dict[str, Any], map_location: Any = "cpu") -> Detector:
    """Rebuild the :class:`Detector` of a checkpoint (file or loaded dict), in eval mode on ``map_location``.

    Uses the ``ema`` weights when the checkpoint has them (not None), else ``model``.
    """
    if isinstance(path_or_ckpt, dict):
        src = "checkpoint dict"
        ckpt = _check_ckpt(path_or_ckpt, src)
    else:
        src = f"checkpoint {str(path_or_ckpt)!r}"
        ckpt = load_checkpoint(path_or_ckpt, map_location)
    try:
        model = build_model(
            ckpt["cfg"], ckpt["nc"], ckpt["names"], ckpt["decode"], ckpt["scale_x_y"], anchors=ckpt["anchors"]
        )
    except ValueError as e:
        raise ValueError(f"{src}: cannot rebuild the model: {e}") from e
    use_ema = ckpt.get("ema") is not None
    state = ckpt["ema"] if use_ema else ckpt["model"]
    if not isinstance(state, Mapping):
        raise ValueError(f"{src}: {'ema' if use_ema else 'model'} must be a state dict, got {type(state).__name__}")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ValueError(f"{src}: {'ema' if use_ema else 'model'} weights do not fit {ckpt['cfg']}: {e}") from e
    device = map_location if isinstance(map_location, (str, torch.device)) else "cpu"
    return model.to(device).eval()
