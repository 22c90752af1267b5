"""Label-smoothing study: train the demo setting with several smoothing settings, compare mAP and calibration.

``python tools/smoothing_study.py`` trains the default demo run (same seed, same budget) with label smoothing
0, 0.05 and 0.1 (YOLO form) and the online kind (eps 0.1), then writes ``study.md`` (a markdown table) and
``study.png`` (mAP50-95 and detection ECE side by side) into ``runs/study/exp``. Extra flags after ``--`` go to
every ``tools/train.py`` run (e.g. ``-- --epochs 10 --imgsz 192``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools import train  # noqa: E402
from tools.training.results import read_rows  # noqa: E402
from tools.training.runs import atomic_write_text, increment_path  # noqa: E402

SETTINGS = (
    ("none", 0.0, "yolo"),
    ("yolo 0.05", 0.05, "yolo"),
    ("yolo 0.1", 0.1, "yolo"),
    ("online 0.1", 0.1, "online"),
)


def parse(argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--project", default="runs/study")
    p.add_argument("--name", default="exp")
    p.add_argument("--settings", default=",".join(s[0] for s in SETTINGS),
                   help="comma-separated subset of: " + ", ".join(s[0] for s in SETTINGS))  # fmt: skip
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    own = argv[: argv.index("--")] if "--" in argv else argv
    return p.parse_args(own), extra


def final_metrics(run: Path) -> dict[str, float]:
    """The last epoch's row plus the best epoch's mAP (by yolov5 fitness)."""
    rows = read_rows(run / "results.csv")
    best = max(rows, key=lambda r: 0.1 * r["metrics/mAP_0.5"] + 0.9 * r["metrics/mAP_0.5:0.95"])
    return {**rows[-1], "best/mAP_0.5:0.95": best["metrics/mAP_0.5:0.95"], "best/epoch": best["epoch"]}


def table(results: list[tuple[str, dict[str, float]]], command: str) -> str:
    lines = [
        f"Command: `{command}`",
        "",
        "| label smoothing | mAP50-95 (last) | mAP50 (last) | best mAP50-95 | D-ECE (last, lower is better) "
        "| val cls loss |",
        "|---|---|---|---|---|---|",
    ]
    for name, m in results:
        lines.append(
            f"| {name} | {m['metrics/mAP_0.5:0.95']:.4f} | {m['metrics/mAP_0.5']:.4f} | {m['best/mAP_0.5:0.95']:.4f} "
            f"| {m['metrics/D-ECE']:.4f} | {m['val/cls_loss']:.4f} |"
        )
    return "\n".join(lines) + "\n"


def plot(results: list[tuple[str, dict[str, float]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n, _ in results]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4), tight_layout=True)
    a.bar(names, [m["metrics/mAP_0.5:0.95"] for _, m in results], color="tab:blue")
    a.set_title("mAP50-95 (higher is better)")
    b.bar(names, [m["metrics/D-ECE"] for _, m in results], color="tab:orange")
    b.set_title("detection ECE (lower is better)")
    for ax in (a, b):
        ax.tick_params(axis="x", rotation=20)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)


def main(argv: list[str] | None = None) -> Path:
    args, extra = parse(argv)
    chosen = [s for s in SETTINGS if s[0] in args.settings.split(",")]
    if not chosen:
        raise ValueError(f"--settings {args.settings!r} names none of {[s[0] for s in SETTINGS]}")
    out = increment_path(Path(args.project) / args.name)
    out.mkdir(parents=True)
    results = []
    for name, eps, kind in chosen:
        run_name = name.replace(" ", "_")
        run = train.main([*extra, "--label-smoothing", str(eps), "--label-smoothing-kind", kind,
                          "--project", str(out), "--name", run_name, "--exist-ok"])  # fmt: skip
        results.append((name, final_metrics(run)))
    command = "python tools/smoothing_study.py" + (" -- " + " ".join(extra) if extra else "")
    atomic_write_text(out / "study.md", table(results, command))
    plot(results, out / "study.png")
    print((out / "study.md").read_text())
    return out


if __name__ == "__main__":
    main()
