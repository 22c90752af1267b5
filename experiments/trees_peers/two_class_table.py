"""The table of ``two_class.sh``: per setting, mean +- std over seeds of the held-out scene's sliced mAP50-95 /
mAP50 (``sliced.json`` of ``tools/eval.py --json-out``) and the val tiles' last-epoch mAP50-95 / mAP50
(``results.csv``), and the ``tree`` class's LaECE of the sliced detections at confidence >= 0.25 (lower: better
calibrated). The val scene has no dead trees: COCO AP skips a class without ground truth, so these are the
``tree`` class's AP, and a tree detected as ``dead`` counts as missed.

    python experiments/trees_peers/two_class_table.py runs/trees2 > experiments/trees_peers/two_class.md
"""

from __future__ import annotations

import csv
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path


def last_row(run: Path) -> dict[str, float]:
    with open(run / "results.csv") as f:
        rows = list(csv.reader(f))
    head = [h.strip() for h in rows[0]]
    return dict(zip(head, map(float, rows[-1])))


def fmt(v: list[float]) -> str:
    return f"{statistics.mean(v):.3f} +- {statistics.stdev(v):.3f}" if len(v) > 1 else f"{v[0]:.3f}"


def main(argv: list[str]) -> int:
    root = Path(argv[0] if argv else "runs/trees2")
    groups: dict[str, list[tuple[float, ...]]] = defaultdict(list)
    for js in sorted(root.glob("*/sliced.json")):
        run = js.parent
        setting = run.name.rsplit("-s", 1)[0]  # <gain>-e<eps>
        res = json.loads(js.read_text())
        stats, calib = res["stats"], next(c for c in res["calibration_figures"] if c["conf_thres"] == 0.25)
        row = last_row(run)
        groups[setting].append((stats[0], stats[1], row["metrics/mAP_0.5:0.95"], row["metrics/mAP_0.5"],
                                calib["LaECE_per_class"]["tree"]))  # fmt: skip
    heads = ("sliced mAP50-95", "sliced mAP50", "val tiles mAP50-95", "val tiles mAP50", "tree LaECE")
    print("| class gain, eps | seeds | " + " | ".join(heads) + " |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for setting, runs in sorted(groups.items()):
        cols = [fmt([r[i] for r in runs]) for i in range(5)]
        print(f"| {setting} | {len(runs)} | " + " | ".join(cols) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
