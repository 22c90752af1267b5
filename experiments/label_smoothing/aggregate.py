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

from fileio import atomic_write

from .seed_stats import mean_cell, mean_std, metric_tables, plot_study, study_table

__all__ = ["POSTHOC_SUFFIX", "group_runs", "overview_table", "report_text", "summary_rows", "write_outputs"]

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
# where a setting's mAP goes (.detections, tools/class_scores.py), trained rows only; as seed_stats.METRICS
WHY = (
    ("top1", "top-1 at positives", "{:.3f}", 1),
    ("true", "true class", "{:.3f}", 1),
    ("other", "other classes (mean)", "{:.3f}", -1),
    ("max other", "max other class", "{:.3f}", -1),
    ("obj", "objectness at positives", "{:.3f}", 1),
    ("wrong_class@0.25", "wrong class >= 0.25", "{:.3f}", -1),
    ("wrong_class@0.001", "wrong class >= 0.001", "{:.3f}", -1),
    ("dets@0.001", "detections >= 0.001", "{:.0f}", 0),
    ("mAP50-95 top class only", "mAP50-95 top class only", "{:.4f}", 1),
    ("mAP50-95 class-agnostic", "mAP50-95 class-agnostic", "{:.4f}", 1),
)
WHY_LEGEND = (
    "Why: class scores at the loss's positive cells of the val split (`tools/class_scores.py`: top-1 = the labelled "
    "class scores highest; true, mean and max of the other classes, objectness); wrong class >= t = share of the "
    "detections scoring >= t that are not correct for their own class and overlap (IoU >= 0.5) an object of "
    "another class; top class only = mAP with one class per box (the highest), as a single-label NMS would leave; "
    "class-agnostic = mAP of those boxes with every class merged (finding objects, whatever their class)."
)

POSTHOC_LEGEND = (
    "Does training with smoothing still help once a calibrator is fitted? Every trained setting with its post-hoc "
    "calibrator, `*` against `eps 0 + post-hoc` (the free baseline) instead of `eps 0`."
)


def _value(v: Any) -> float:
    return float("nan") if v is None else float(v)


def group_runs(summaries: list[dict[str, Any]], order: list[str] | None = None) -> dict[str, dict[str, list[dict]]]:
    """``runs[condition][setting]`` = per-seed metric dicts (seed order), with the post-hoc rows added."""
    cells: dict[tuple[str, str], dict[int, dict[str, float]]] = {}
    for doc in summaries:
        key = doc["key"]
        metrics = {k: _value(v) for k, v in doc["metrics"].items()}
        why = {k: _value(v) for k, v in (doc.get("analysis") or {}).items() if not isinstance(v, (dict, list, str))}
        cells.setdefault((key["condition"], key["setting"]), {})[key["seed"]] = {**why, **metrics}
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


# the overview's columns, one per condition each: (metric key, title, format)
OVERVIEW = (
    ("mAP50-95", "mAP50-95", "{:.4f}"),
    ("D-ECE@0.25", "D-ECE >= 0.25", "{:.3f}"),
    ("n@0.25", "n >= 0.25", "{:.0f}"),
    ("LaECE@0.25", "LaECE >= 0.25", "{:.3f}"),
    ("top1", "top-1", "{:.3f}"),
)


def overview_table(runs: dict[str, dict[str, list[dict]]], baseline: str = "eps 0") -> list[str]:
    """Markdown lines: one row per setting, each :data:`OVERVIEW` metric for every condition side by side
    (``*`` as in :func:`~.seed_stats.metric_tables`; the report's first table)."""
    conds = list(runs)
    names = list(dict.fromkeys(s for c in conds for s in runs[c]))
    head = [f"{title} {c}" for _, title, _ in OVERVIEW for c in conds]
    lines = ["| setting | seeds | " + " | ".join(head) + " |", "|---|---|" + "---|" * len(head)]
    for name in names:
        seeds = "/".join(str(len(runs[c].get(name, []))) for c in conds)
        cells = []
        for key, _, fmt in OVERVIEW:
            for c in conds:
                vals = [r.get(key, float("nan")) for r in runs[c].get(name, [])]
                base = runs[c].get(baseline) if name != baseline else None
                cells.append(mean_cell(vals, None if base is None else [r.get(key, float("nan")) for r in base], fmt))
        lines.append(f"| {name} | {seeds} | " + " | ".join(cells) + " |")
    return lines


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


def report_text(runs: dict[str, dict[str, list[dict]]], command: str, notes: list[str] | None = None) -> str:
    """``study.md``: the overview, the tables by condition, after post-hoc calibration and "why" (markdown)."""
    if not runs:
        return "No finished runs yet.\n"
    baseline = "eps 0"
    trained = {c: {s: v for s, v in rows.items() if not s.endswith(POSTHOC_SUFFIX)} for c, rows in runs.items()}
    calibrated = {c: {s: v for s, v in rows.items() if s.endswith(POSTHOC_SUFFIX)} for c, rows in runs.items()}
    return "\n".join(["### Overview", "", *overview_table(runs, baseline), "", "### By condition", "",
                      study_table(runs, baseline, command, ["", *(notes or [])]), "### After post-hoc calibration",
                      "", POSTHOC_LEGEND, "", *metric_tables(calibrated, baseline + POSTHOC_SUFFIX),
                      "### Why", "", *metric_tables(trained, baseline, WHY), WHY_LEGEND, ""])  # fmt: skip


def summary_doc(dataset: str, summaries: list[dict[str, Any]], command: str, order: list[str] | None = None) -> dict:
    """``summary.json``: the dataset, the regime (train flags, command) and :func:`summary_rows`."""
    regimes = {json.dumps(d["key"]["flags"].get("train", []), sort_keys=True) for d in summaries}
    regime: Any = json.loads(next(iter(regimes))) if len(regimes) == 1 else sorted(regimes)
    rows = summary_rows(group_runs(summaries, order))
    return {"dataset": dataset, "regime": {"train_flags": regime, "command": command}, "rows": rows}


def write_outputs(
    folder: str | os.PathLike,
    dataset: str,
    summaries: list[dict[str, Any]],
    command: str,
    order: list[str] | None = None,
    notes: list[str] | None = None,
) -> dict[str, Path]:
    """``summary.json``, ``study.md`` and ``study.png`` in ``folder`` from ``summaries``; returns their paths.
    Nothing outside ``folder`` is written (the README links to ``study.md`` and is edited by hand)."""
    folder = Path(folder)
    runs = group_runs(summaries, order)
    doc = summary_doc(dataset, summaries, command, order)
    out = {"summary": atomic_write(folder / "summary.json", json.dumps(doc, indent=1) + "\n")}
    out["table"] = atomic_write(folder / "study.md", report_text(runs, command, notes))
    if runs:
        out["plot"] = plot_study(runs, folder / "study.png")
    return out
