"""Mean +- std over seeds, a stated rule for "exceeds the seed noise", and the study's markdown table and plot.

Rule (:func:`exceeds_noise`): a setting's mean differs from the baseline's (same condition) beyond the seed noise
when ``|mean_a - mean_b| > 2 * sqrt(s_a^2 / n_a + s_b^2 / n_b)``, with ``s`` the sample standard deviations
(ddof 1) over ``n`` seeds: twice the standard error of the difference. With 3 seeds per side this is a lenient
screen, not a significance test (a Welch t-test at 2 to 4 degrees of freedom would need 2.8 to 4.3 standard
errors); with one seed nothing is marked.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["METRICS", "exceeds_noise", "mean_cell", "mean_std", "metric_tables", "plot_study", "study_table"]

# key in a run's metrics, column title, format, better direction (+1 higher, -1 lower, 0 neither)
METRICS = (
    ("mAP50-95", "mAP50-95", "{:.4f}", 1),
    ("mAP50", "mAP50", "{:.4f}", 1),
    ("D-ECE@0.25", "D-ECE (conf >= 0.25)", "{:.4f}", -1),
    ("LaECE@0.25", "LaECE (conf >= 0.25)", "{:.4f}", -1),
    ("n@0.25", "detections >= 0.25", "{:.0f}", 0),
    ("D-ECE@0.001", "D-ECE (conf >= 0.001)", "{:.4f}", -1),
    ("TP score", "mean TP score", "{:.3f}", 0),
)


def mean_std(values: Sequence[float]) -> tuple[float, float, int]:
    """``(mean, sample std (ddof 1; NaN for one value), n)`` of the finite values."""
    v = np.array([x for x in values if x is not None and math.isfinite(x)], dtype=np.float64)
    if not len(v):
        return float("nan"), float("nan"), 0
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else float("nan"), int(len(v))


def exceeds_noise(a: Sequence[float], b: Sequence[float]) -> bool:
    """True when the means of ``a`` and ``b`` differ by more than twice the combined standard error."""
    ma, sa, na = mean_std(a)
    mb, sb, nb = mean_std(b)
    if na < 2 or nb < 2:
        return False
    se = math.sqrt(sa**2 / na + sb**2 / nb)
    return abs(ma - mb) > 2 * se if se > 0 else ma != mb


def mean_cell(values: Sequence[float], base: Sequence[float] | None, fmt: str) -> str:
    """``mean +- std`` of ``values`` in ``fmt``, ``*`` when it differs from ``base`` beyond the seed noise."""
    m, s, n = mean_std(values)
    if n == 0:
        return "n/a"
    text = fmt.format(m) + ("" if n < 2 else " +- " + fmt.format(s))
    if base is not None and exceeds_noise(values, base):
        text += " *"
    return text


def metric_tables(
    runs: dict[str, dict[str, list[dict]]], baseline: str, metrics: Sequence[tuple[str, str, str, int]] = METRICS
) -> list[str]:
    """Markdown lines: one table per condition, one row per setting, ``mean +- std`` over seeds of ``metrics``.

    ``runs[condition][setting]`` is the list of per-seed metric dicts; ``metrics`` rows as :data:`METRICS`.
    ``*``: differs from ``baseline`` (same condition) beyond the seed noise (module docstring).
    """
    lines: list[str] = []
    for cond, settings in runs.items():
        base = settings.get(baseline)
        lines += [f"**{cond}**", "", "| setting | seeds | " + " | ".join(m[1] for m in metrics) + " |"]
        lines.append("|---|---|" + "---|" * len(metrics))
        for name, seeds in settings.items():
            cells = []
            for key, _, fmt, _ in metrics:
                ref = None if base is None or name == baseline else [r.get(key, float("nan")) for r in base]
                cells.append(mean_cell([r.get(key, float("nan")) for r in seeds], ref, fmt))
            lines.append(f"| {name} | {len(seeds)} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def study_table(runs: dict[str, dict[str, list[dict]]], baseline: str, command: str, notes: Sequence[str] = ()) -> str:
    """Markdown: the command, :func:`metric_tables` of :data:`METRICS`, what the columns and ``*`` mean."""
    lines = [f"Command: `{command}`", "", *metric_tables(runs, baseline)]
    lines += [
        "Values: mean +- sample std over seeds. `*`: the difference from "
        f"`{baseline}` in the same condition exceeds the seed noise: |diff| > 2 x sqrt(s_a^2/n_a + s_b^2/n_b) "
        "(a lenient screen with few seeds, not a test). mAP: pycocotools on the clean val split. D-ECE: 10 "
        "confidence bins, a detection is correct when it matches a ground truth at IoU >= 0.5. LaECE: per class, "
        "25 bins, accuracy = IoU of a true positive (0 for a false positive), averaged over classes. "
        "mean TP score: mean confidence of the detections (conf >= 0.001) that match a ground truth.",
        *notes,
    ]
    return "\n".join(lines) + "\n"


def plot_study(runs: dict[str, dict[str, list[dict]]], path: str | os.PathLike) -> Path:
    """Bars with error bars (std over seeds) of mAP50-95, D-ECE and LaECE at 0.25, one group per condition."""
    from tools.evaluation.plots import figure, save_figure

    keys = (("mAP50-95", "mAP50-95 (higher is better)"), ("D-ECE@0.25", "D-ECE, conf >= 0.25 (lower is better)"),
            ("LaECE@0.25", "LaECE, conf >= 0.25 (lower is better)"))  # fmt: skip
    names = list(dict.fromkeys(s for settings in runs.values() for s in settings))
    fig = figure((5 * len(keys), 4.5))
    axes = np.atleast_1d(fig.subplots(1, len(keys)))
    width = 0.8 / max(len(runs), 1)
    x = np.arange(len(names))
    for ax, (key, title) in zip(axes, keys):
        for j, (cond, settings) in enumerate(runs.items()):
            stats = [mean_std([r.get(key, float("nan")) for r in settings.get(n, [])]) for n in names]
            means = [m for m, _, _ in stats]
            errs = [0.0 if not math.isfinite(s) else s for _, s, _ in stats]
            ax.bar(x + (j - (len(runs) - 1) / 2) * width, means, width, yerr=errs, capsize=3, label=cond)
        ax.set_xticks(x, names, rotation=30, ha="right", fontsize=8)
        ax.set_title(title, fontsize=9)
    axes[0].legend(fontsize=8)
    return save_figure(fig, Path(path), dpi=100)
