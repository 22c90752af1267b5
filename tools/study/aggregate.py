"""The study's tables, ``summary.json`` and plot, built from the per-run summary files alone.

Each trained setting gives two rows: the model as trained, and ``<setting> + post-hoc`` (the same weights with
the calibrator fitted on the held-out split: free, no training of its own). ``eps 0 + post-hoc`` is the
baseline a train-time calibration method has to beat.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from detloss.io import atomic_write
from tools.evaluation.seed_stats import mean_std, plot_study, study_table

__all__ = ["POSTHOC_SUFFIX", "group_runs", "summary_rows", "write_outputs"]

POSTHOC_SUFFIX = " + post-hoc"
# summary.json row field -> (metric key, statistic)
ROW_FIELDS = {
    "map50_95_mean": ("mAP50-95", "mean"),
    "map50_95_std": ("mAP50-95", "std"),
    "map50_mean": ("mAP50", "mean"),
    "d_ece_025_mean": ("D-ECE@0.25", "mean"),
    "d_ece_025_std": ("D-ECE@0.25", "std"),
    "laece_025_mean": ("LaECE@0.25", "mean"),
    "n_025_mean": ("n@0.25", "mean"),
    "d_ece_0001_mean": ("D-ECE@0.001", "mean"),
    "tp_score_mean": ("TP score", "mean"),
    "top1_mean": ("top1", "mean"),
    "true_mean": ("true", "mean"),
    "other_mean": ("other", "mean"),
}
# class scores at the positives do not depend on a calibrator applied after NMS: post-hoc rows keep the model's
CLASS_SCORE_KEYS = ("top1", "true", "other", "max other", "obj")


def _value(v: Any) -> float:
    return float("nan") if v is None else float(v)


def group_runs(summaries: list[dict[str, Any]], order: list[str] | None = None) -> dict[str, dict[str, list[dict]]]:
    """``runs[condition][setting]`` = per-seed metric dicts (seed order), with the post-hoc rows added."""
    cells: dict[tuple[str, str], dict[int, dict[str, float]]] = {}
    for doc in summaries:
        key = doc["key"]
        metrics = {k: _value(v) for k, v in doc["metrics"].items()}
        cells.setdefault((key["condition"], key["setting"]), {})[key["seed"]] = metrics
        post = doc.get("posthoc")
        if isinstance(post, dict):
            merged = {k: _value(v) for k, v in post.items() if not isinstance(v, (dict, list, str))}
            merged.update({k: metrics[k] for k in CLASS_SCORE_KEYS if k in metrics})
            cells.setdefault((key["condition"], key["setting"] + POSTHOC_SUFFIX), {})[key["seed"]] = merged
    conditions = list(dict.fromkeys(c for c, _ in sorted(cells)))
    conditions.sort(key=lambda c: (c != "clean", c))
    names = list(dict.fromkeys(s for _, s in cells))
    if order is not None:
        rank = {s: i for i, s in enumerate(order)}
        names.sort(key=lambda s: (rank.get(s.removesuffix(POSTHOC_SUFFIX), len(rank)), s.endswith(POSTHOC_SUFFIX)))
    runs: dict[str, dict[str, list[dict]]] = {}
    for cond in conditions:
        runs[cond] = {s: [v for _, v in sorted(cells[(cond, s)].items())] for s in names if (cond, s) in cells}
    return runs


def summary_rows(runs: dict[str, dict[str, list[dict]]]) -> list[dict[str, Any]]:
    """The ``summary.json`` rows: one per (setting, condition), mean and std over seeds (NaN -> null)."""
    rows = []
    for cond, settings in runs.items():
        for setting, seeds in settings.items():
            row: dict[str, Any] = {"setting": setting, "condition": cond, "seeds": len(seeds)}
            for name, (metric, stat) in ROW_FIELDS.items():
                m, s, n = mean_std([r.get(metric, float("nan")) for r in seeds])
                v = m if stat == "mean" else s
                row[name] = None if n == 0 or v != v else round(v, 6)
            rows.append(row)
    return rows


def write_outputs(
    folder: str | os.PathLike,
    dataset: str,
    summaries: list[dict[str, Any]],
    command: str,
    order: list[str] | None = None,
    notes: list[str] | None = None,
) -> dict[str, Path]:
    """``summary.json``, ``study.md`` and ``study.png`` in ``folder`` from ``summaries``; returns their paths."""
    folder = Path(folder)
    runs = group_runs(summaries, order)
    regimes = {json.dumps(d["key"]["flags"].get("train", []), sort_keys=True) for d in summaries}
    regime: Any = json.loads(next(iter(regimes))) if len(regimes) == 1 else sorted(regimes)
    doc = {"dataset": dataset, "regime": {"train_flags": regime, "command": command}, "rows": summary_rows(runs)}
    out = {"summary": atomic_write(folder / "summary.json", json.dumps(doc, indent=1) + "\n")}
    baseline = "eps 0"
    text = study_table(runs, baseline, command, ["", *(notes or [])]) if runs else "No finished runs yet.\n"
    out["table"] = atomic_write(folder / "study.md", text)
    if runs:
        out["plot"] = plot_study(runs, folder / "study.png")
    return out
