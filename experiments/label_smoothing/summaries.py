"""One small JSON file per finished study run: what was trained (and its hash) and everything measured.

A study that outlives a session or a machine is the set of these files, committed under
``docs/study/<dataset>/runs/``. A run is identified by its :class:`RunKey`: the dataset, the condition, the
setting, the seed and every flag that changes what is trained or measured (the trainer's flags and the study's
data options), never a path. :meth:`RunKey.digest` hashes its canonical JSON, so the same run planned on another
machine has the same hash and is skipped there; a changed flag gives a new hash and the run is trained again.

:func:`read_summary` never trusts a file it cannot fully check: unreadable JSON, a foreign schema, missing
metrics or a hash that does not match its own key are reported as :class:`SummaryStatus` ``corrupt`` (and the
run is trained again), a key that differs from the planned one as ``stale``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fileio import atomic_write

__all__ = ["SCHEMA", "REQUIRED_METRICS", "RunKey", "SummaryStatus", "read_summary", "scan", "write_summary"]

SCHEMA = "detloss-study-run/1"
# every summary carries these (NaN is written as null: no detections above a threshold leave D-ECE undefined)
REQUIRED_METRICS = ("mAP50-95", "mAP50", "D-ECE@0.25", "LaECE@0.25", "n@0.25", "D-ECE@0.001", "TP score", "top1")


@dataclass(frozen=True)
class RunKey:
    """What makes two runs the same run. ``flags``: JSON-able values only (no paths)."""

    dataset: str
    condition: str
    setting: str
    seed: int
    flags: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("dataset", "condition", "setting"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"RunKey.{name} must be a non-empty string, got {getattr(self, name)!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise ValueError(f"RunKey.seed must be an int, got {self.seed!r}")
        json.dumps(self.flags)  # raises TypeError early for values that cannot be hashed canonically

    def canonical(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    def digest(self) -> str:
        """sha256 of the canonical JSON (first 16 hex digits)."""
        return hashlib.sha256(self.canonical().encode("utf-8")).hexdigest()[:16]

    @property
    def filename(self) -> str:
        slug = re.sub(r"[^A-Za-z0-9.]+", "", self.setting.replace("+", "p")) or "setting"
        return f"{self.condition}-{slug}-s{self.seed}.json"


@dataclass(frozen=True)
class SummaryStatus:
    """``state``: ``ok`` (``summary`` holds it), ``missing``, ``stale`` (another key) or ``corrupt``."""

    state: str
    path: Path
    reason: str = ""
    summary: dict[str, Any] | None = None


def _clean(value: Any) -> Any:
    """NaN/inf to None (strict JSON), recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def write_summary(folder: str | os.PathLike, key: RunKey, metrics: dict[str, Any], **extra: Any) -> Path:
    """Write ``<folder>/<key.filename>`` atomically; ``metrics`` must hold :data:`REQUIRED_METRICS`."""
    missing = [m for m in REQUIRED_METRICS if m not in metrics]
    if missing:
        raise ValueError(f"study summary of {key.filename}: metrics {missing} missing")
    doc = {"schema": SCHEMA, "hash": key.digest(), "key": asdict(key), "metrics": _clean(metrics), **_clean(extra)}
    text = json.dumps(doc, indent=1, sort_keys=False, allow_nan=False)
    return atomic_write(Path(folder) / key.filename, text + "\n")


def _check(doc: Any) -> str:
    """Why ``doc`` is not a valid summary ('' when it is)."""
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        return f"not a study summary (schema {doc.get('schema') if isinstance(doc, dict) else type(doc).__name__})"
    try:
        key = RunKey(**doc["key"])
    except (KeyError, TypeError, ValueError) as err:
        return f"bad key: {err}"
    if doc.get("hash") != key.digest():
        return f"hash {doc.get('hash')} does not match its key ({key.digest()}): edited or damaged"
    metrics = doc.get("metrics")
    if not isinstance(metrics, dict):
        return "no metrics"
    missing = [m for m in REQUIRED_METRICS if m not in metrics]
    if missing:
        return f"metrics {missing} missing"
    bad = [k for k, v in metrics.items() if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)))]
    return f"metrics {bad} are not numbers" if bad else ""


def read_summary(path: str | os.PathLike, expected: RunKey | None = None) -> SummaryStatus:
    """Read and check one summary; with ``expected``, a summary of another key is ``stale``."""
    path = Path(path)
    if not path.is_file():
        return SummaryStatus("missing", path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        return SummaryStatus("corrupt", path, f"unreadable JSON: {err}")
    reason = _check(doc)
    if reason:
        return SummaryStatus("corrupt", path, reason)
    if expected is not None and doc["hash"] != expected.digest():
        return SummaryStatus("stale", path, f"planned with other flags (hash {doc['hash']} != {expected.digest()})")
    return SummaryStatus("ok", path, summary=doc)


def scan(folder: str | os.PathLike) -> tuple[list[dict[str, Any]], list[SummaryStatus]]:
    """Every valid summary under ``folder`` (sorted by file name) and the statuses of the invalid ones."""
    good, bad = [], []
    for path in sorted(Path(folder).glob("*.json")):
        status = read_summary(path)
        if status.state == "ok" and status.summary is not None:
            good.append(status.summary)
        else:
            bad.append(status)
    return good, bad
