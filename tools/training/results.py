"""results.csv with yolov5's column names (plus our gradient and calibration columns) and results.png."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from fileio import atomic_write
from tools.evaluation import metric_names as mn

# yolov5's order; the validation columns are tools.evaluation.metric_names (EvalResult.metrics()'s keys)
COLUMNS = (
    "epoch",
    "train/box_loss",
    "train/obj_loss",
    "train/cls_loss",
    mn.PRECISION,
    mn.RECALL,
    mn.MAP50,
    mn.MAP,
    *mn.VAL_LOSSES,
    "x/lr0",
    "x/lr1",
    "x/lr2",
    "train/grad_norm",
    "train/clipped_frac",
    "train/clipped_value_frac",
    "train/nonfinite_steps",
    mn.D_ECE,
    "time",
)


def append_row(path: str | Path, row: dict[str, float]) -> None:
    """Rewrite results.csv with one more row (atomically, so a kill never leaves a torn file)."""
    path = Path(path)
    write_rows(path, [*(read_rows(path) if path.exists() else []), row])


def write_rows(path: str | Path, rows: list[dict[str, float]]) -> None:
    """Write results.csv with exactly ``rows`` (atomically); each row needs every column of :data:`COLUMNS`."""
    for row in rows:
        missing = [c for c in COLUMNS if c not in row]
        if missing:
            raise ValueError(f"results row lacks column(s) {missing}")
    rows = [{c: float(row[c]) for c in COLUMNS} for row in rows]
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow([f"{c:>20s}" for c in COLUMNS])
    for r in rows:
        w.writerow([f"{int(r['epoch']):>20d}"] + [f"{r[c]:>20.5g}" for c in COLUMNS[1:]])
    atomic_write(path, buf.getvalue())


def read_rows(path: str | Path) -> list[dict[str, float]]:
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = [h.strip() for h in next(reader)]
        return [{h: float(v) for h, v in zip(header, row)} for row in reader if row]


def plot_results(csv_path: str | Path, out: str | Path | None = None) -> Path:
    """A grid of every results.csv column against the epoch, written atomically as PNG."""
    from tools.evaluation.plots import figure, save_figure

    csv_path = Path(csv_path)
    out = Path(out) if out is not None else csv_path.with_name("results.png")
    rows = read_rows(csv_path)
    epochs = [r["epoch"] for r in rows]
    cols = COLUMNS[1:]
    fig = figure((16, 11))
    axes = fig.subplots(4, 5)
    for ax, c in zip(axes.flat, cols):
        ax.plot(epochs, [r[c] for r in rows], marker=".", linewidth=2, markersize=6)
        ax.set_title(c, fontsize=10)
    for ax in list(axes.flat)[len(cols) :]:
        ax.axis("off")
    return save_figure(fig, out, dpi=100)
