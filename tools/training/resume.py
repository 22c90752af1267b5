"""``--resume``: load the checkpoint to continue from, or fail with one line naming the file and the problem.

Checked before anything is built: the file exists and is a detloss checkpoint (:func:`models.checkpoint.
load_checkpoint`: a truncated file or a foreign pickle fails there), it carries training state (a weights
file such as one stripped for export does not), and, once the data is read, the classes of the data are
the classes the checkpoint was trained on. Where the folder holds another checkpoint that passes the same
checks (``previous.pt``, kept by :mod:`tools.training.saver`, or ``best.pt``), the message names it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from models.checkpoint import load_checkpoint

from .saver import PREVIOUS

TRAINING_KEYS = ("optimizer", "epoch", "opt", "hyp", "scaler", "loss", "best_fitness", "best_epoch")


class ResumeError(ValueError):
    """A checkpoint that cannot be resumed; the message is one line and names the file."""


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def _check_training_state(ckpt: dict[str, Any], path: Path) -> None:
    missing = [k for k in TRAINING_KEYS if k not in ckpt]
    if missing:
        raise ResumeError(
            f"checkpoint {str(path)!r} holds weights but no training state (missing {', '.join(missing)}): "
            f"start a new run from it with --weights {path}"
        )
    if not isinstance(ckpt["opt"], Mapping) or not isinstance(ckpt["hyp"], Mapping):
        raise ResumeError(f"checkpoint {str(path)!r}: 'opt' and 'hyp' must be dicts of the run's options")


def good_alternative(path: Path) -> Path | None:
    """Another resumable checkpoint beside ``path`` (``previous.pt``, then ``best.pt``), or None."""
    for name in (PREVIOUS, "best.pt", "last.pt"):
        alt = path.with_name(name)
        if not alt.is_file() or alt.resolve() == path.resolve():
            continue
        try:
            _check_training_state(load_checkpoint(alt), alt)
        except (ValueError, OSError):
            continue
        return alt
    return None


def fail(path: Path, problem: str) -> ResumeError:
    """A :class:`ResumeError` for ``problem``, offering a good checkpoint beside ``path`` by name."""
    alt = good_alternative(path)
    offer = f"; a good checkpoint is {alt}: --resume {alt}" if alt is not None else ""
    return ResumeError(problem + offer)


def load_resume(path: str | Path) -> dict[str, Any]:
    """The checkpoint at ``path``, checked to be resumable; :class:`ResumeError` (one line) otherwise."""
    path = Path(path)
    try:
        ckpt = load_checkpoint(path)
        _check_training_state(ckpt, path)
    except FileNotFoundError as e:
        raise ResumeError(_one_line(e)) from e
    except ValueError as e:
        raise fail(path, _one_line(e)) from e
    return ckpt


def check_data(ckpt: dict[str, Any], path: str | Path, names: list[str], data: str) -> None:
    """The data's classes must be the checkpoint's (same number, same names, same order)."""
    if list(ckpt["names"]) != list(names):
        raise fail(
            Path(path),
            f"checkpoint {str(path)!r} was trained on {ckpt['nc']} classes {list(ckpt['names'])[:5]}... but the "
            f"data {data} has {len(names)} classes {list(names)[:5]}...: it belongs to other data",
        )
