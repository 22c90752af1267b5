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

from detloss.io import atomic_write  # noqa: E402
from models.checkpoint import load_checkpoint  # noqa: E402
from tools import train  # noqa: E402
from tools.training.results import read_rows  # noqa: E402
from tools.training.runs import increment_path  # noqa: E402

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
    p.add_argument("--exist-ok", action="store_true", help="reuse project/name; finished runs are not trained again")
    p.add_argument("--calib-conf", type=float, default=0.25,
                   help="detections below this confidence are left out of the calibration error")  # fmt: skip
    p.add_argument("--settings", default=",".join(s[0] for s in SETTINGS),
                   help="comma-separated subset of: " + ", ".join(s[0] for s in SETTINGS))  # fmt: skip
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    own = argv[: argv.index("--")] if "--" in argv else argv
    return p.parse_args(own), extra


def final_metrics(run: Path, calib_conf: float) -> dict[str, float]:
    """The last epoch's row, the best epoch's mAP (by yolov5 fitness), and the final weights evaluated with
    pycocotools and the detection ECE of detections with confidence >= ``calib_conf``."""
    from tools import eval as evaluate

    rows = read_rows(run / "results.csv")
    best = max(rows, key=lambda r: 0.1 * r["metrics/mAP_0.5"] + 0.9 * r["metrics/mAP_0.5:0.95"])
    opt = load_checkpoint(run / "weights" / "last.pt")["opt"]
    argv = ["--weights", str(run / "weights" / "last.pt"), "--calib-conf", str(calib_conf), "--workers", "0",
            "--project", str(run / "eval"), "--exist-ok", "--device", "cpu"]  # fmt: skip
    res = evaluate.main(argv + (["--data", opt["data"]] if opt.get("data") else []))
    cal = res.calibration
    ece, n = (cal.ece, cal.n) if cal is not None else (float("nan"), 0)
    return {**rows[-1], "best/mAP_0.5:0.95": best["metrics/mAP_0.5:0.95"], "best/epoch": best["epoch"],
            "eval/mAP_0.5:0.95": res.map, "eval/mAP_0.5": res.map50, "eval/D-ECE": ece, "eval/n_calib": n}  # fmt: skip


def finished(run: Path) -> bool:
    last = run / "weights" / "last.pt"
    if not last.is_file():
        return False
    ckpt = load_checkpoint(last)
    return int(ckpt["epoch"]) + 1 >= int(ckpt["opt"]["epochs"]) and not ckpt.get("interrupted")


def table(results: list[tuple[str, dict[str, float]]], command: str, calib_conf: float) -> str:
    lines = [
        f"Command: `{command}`",
        "",
        f"| label smoothing | mAP50-95 | mAP50 | best-epoch mAP50-95 | D-ECE, conf >= {calib_conf:g} (detections) "
        "| D-ECE, all (conf >= 0.001) | val cls loss |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, m in results:
        lines.append(
            f"| {name} | {m['eval/mAP_0.5:0.95']:.4f} | {m['eval/mAP_0.5']:.4f} | {m['best/mAP_0.5:0.95']:.4f} "
            f"| {m['eval/D-ECE']:.4f} ({int(m['eval/n_calib'])}) | {m['metrics/D-ECE']:.4f} | {m['val/cls_loss']:.4f} |"
        )
    lines += [
        "",
        "mAP: the final weights (EMA) on the val split, pycocotools. D-ECE: detection expected calibration "
        "error, 10 confidence bins, a detection is correct when it matches a ground truth at IoU >= 0.5.",
    ]
    return "\n".join(lines) + "\n"


def plot(results: list[tuple[str, dict[str, float]]], path: Path) -> None:
    from tools.evaluation.plots import figure, save_figure

    names = [n for n, _ in results]
    fig = figure((10, 4))
    a, b = fig.subplots(1, 2)
    a.bar(names, [m["eval/mAP_0.5:0.95"] for _, m in results], color="tab:blue")
    a.set_title("mAP50-95 (higher is better)")
    b.bar(names, [m["eval/D-ECE"] for _, m in results], color="tab:orange")
    b.set_title("detection ECE of confident detections (lower is better)")
    for ax in (a, b):
        ax.tick_params(axis="x", rotation=20)
    save_figure(fig, path, dpi=100)


def main(argv: list[str] | None = None) -> Path:
    args, extra = parse(argv)
    chosen = [s for s in SETTINGS if s[0] in args.settings.split(",")]
    if not chosen:
        raise ValueError(f"--settings {args.settings!r} names none of {[s[0] for s in SETTINGS]}")
    out = increment_path(Path(args.project) / args.name, args.exist_ok)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for name, eps, kind in chosen:
        run = out / name.replace(" ", "_")
        if not finished(run):
            train.main([*extra, "--label-smoothing", str(eps), "--label-smoothing-kind", kind,
                        "--project", str(out), "--name", run.name, "--exist-ok"])  # fmt: skip
        results.append((name, final_metrics(run, args.calib_conf)))
    command = "python tools/smoothing_study.py" + (" -- " + " ".join(extra) if extra else "")
    atomic_write(out / "study.md", table(results, command, args.calib_conf))
    plot(results, out / "study.png")
    print((out / "study.md").read_text())
    return out


if __name__ == "__main__":
    main()
