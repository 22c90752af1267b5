"""Label-smoothing study over seeds, on clean and on noisy training labels, against post-hoc calibration.

    python tools/smoothing_study.py --seeds 3 [--data D] [--noise 0.2] [--flip-map 0:1,1:0] -- <train.py flags>

Settings (``--settings``, comma-separated subset): ``eps 0``, ``eps 0.01``, ``eps 0.05``, ``eps 0.1`` (YOLO form
``(1 - eps/2, eps/2)``), ``uniform 0.1`` (``eps/K``), ``online 0.1`` (:mod:`detloss.online_smoothing_bce`) and
``eps 0 + post-hoc``: the ``eps 0`` model of the same seed with a calibrator (``--posthoc-method``, default
isotonic) fitted by ``tools/calibrate.py`` on the held-out part of train.

Data (written once per condition under ``<project>/<name>/data/<condition>``): the train split of ``--data``
(default: the demo) is split, with seed ``--split-seed``, into a training part and a held-out ``calib`` part
(``--holdout``, default 20%) that no setting trains on. Condition ``clean`` keeps the labels; ``noisy`` flips a
fraction ``--noise`` (default 0.2) of the box class labels of both parts (seeded, exactly
``round(noise * boxes)``; ignore regions never flip; :mod:`data.label_noise`) to the look-alike class (the demo's
pairs; ``--flip-map`` for other data, else a random other class). The val split stays clean.

Every run is ``tools/train.py`` with the flags after ``--`` followed by the study's own (``--data``, ``--seed``,
``--label-smoothing``, ``--label-smoothing-kind``, ``--project``, ``--name``; giving those after ``--`` is an
error), so the trainer's defaults apply unless overridden. The final weights are evaluated on the val split by
``tools/eval.py`` (pycocotools; D-ECE and LaECE at conf >= 0.25 and 0.001). Finished runs are not redone
(``--exist-ok`` reuses the folder). Output: ``study.md`` (tables, mean +- std over seeds, differences beyond the
seed noise marked; :mod:`tools.evaluation.seed_stats`), ``study.png``, ``study.json``.

``--jobs N`` trains N runs at a time as subprocesses (``tools/training/jobs.py``; each gets ``cpu_count // N``
threads and logs to ``<run>/train.log``), then evaluates in this process. On 2 CPU cores ``--jobs 2`` with
``--workers 1`` after ``--`` finishes about 1.5 to 2 times sooner than one run at a time.

Sizing: runs = seeds x conditions x 6 trained settings (post-hoc reuses ``eps 0``); 3 seeds x 2 conditions =
36 trainings. On 2 CPU cores with ``--jobs 2`` a demo run of ``-- --epochs 12 --imgsz 160 --noval --workers 1``
takes about 2.5 minutes, so the whole grid about 45 minutes (time one run first).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import yaml  # noqa: E402

from data.label_noise import flip_labels, lookalike_map, parse_flip_map, write_yolo_copy  # noqa: E402
from detloss.io import atomic_write as atomic_write_text  # noqa: E402
from models.checkpoint import load_checkpoint  # noqa: E402
from tools import train  # noqa: E402
from tools.calibrate import holdout_split  # noqa: E402
from tools.evaluation.calibrators import METHODS  # noqa: E402
from tools.evaluation.seed_stats import plot_study, study_table  # noqa: E402
from tools.training.jobs import run_parallel  # noqa: E402
from tools.training.runs import increment_path  # noqa: E402

POSTHOC = "eps 0 + post-hoc"
SETTINGS: dict[str, tuple[float, str]] = {
    "eps 0": (0.0, "yolo"),
    "eps 0.01": (0.01, "yolo"),
    "eps 0.05": (0.05, "yolo"),
    "eps 0.1": (0.1, "yolo"),
    "uniform 0.1": (0.1, "uniform"),
    "online 0.1": (0.1, "online"),
    POSTHOC: (0.0, "yolo"),  # the eps 0 run of the same seed, calibrated after training
}
CONDITIONS = ("clean", "noisy")
OWN_FLAGS = ("--data", "--seed", "--label-smoothing", "--label-smoothing-kind", "--project", "--name", "--resume")


def parse(argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=3, help="training seeds 0 .. N-1 per setting and condition")
    p.add_argument("--settings", default=",".join(SETTINGS), help="comma-separated subset of: " + ", ".join(SETTINGS))
    p.add_argument("--conditions", default=",".join(CONDITIONS), help="clean, noisy or both")
    p.add_argument("--data", default=None, help="data YAML (default: the demo)")
    p.add_argument("--noise", type=float, default=0.2, help="fraction of training box labels flipped (noisy)")
    p.add_argument(
        "--flip-map", default=None, help="'from:to,...' class flips (default: demo look-alikes, else random)"
    )
    p.add_argument("--noise-seed", type=int, default=0, help="seed of the label flips")
    p.add_argument("--holdout", type=float, default=0.2, help="fraction of train held out for post-hoc calibration")
    p.add_argument("--split-seed", type=int, default=0, help="seed of the held-out part")
    p.add_argument("--posthoc-method", choices=METHODS, default="isotonic")
    p.add_argument("--posthoc-per-class", action="store_true")
    p.add_argument("--project", default="runs/study")
    p.add_argument("--name", default="exp")
    p.add_argument("--exist-ok", action="store_true", help="reuse project/name; finished runs are not trained again")
    p.add_argument("--jobs", type=int, default=1, help="trainings run at once (subprocesses sharing the CPU threads)")
    argv = list(sys.argv[1:] if argv is None else argv)
    cut = argv.index("--") if "--" in argv else len(argv)
    args, extra = p.parse_args(argv[:cut]), argv[cut + 1 :]
    clash = [a for a in extra if a.split("=")[0] in OWN_FLAGS]
    if clash:
        raise ValueError(f"flags {clash} after '--' are set by the study itself; use the study's options")
    if args.seeds < 1 or args.jobs < 1 or not 0.0 <= args.noise <= 1.0:
        raise ValueError(
            f"--seeds and --jobs must be >= 1 and --noise in [0, 1], got {args.seeds}, {args.jobs}, {args.noise}"
        )
    args.settings = [s.strip() for s in args.settings.split(",") if s.strip()]
    args.conditions = [c.strip() for c in args.conditions.split(",") if c.strip()]
    bad = [s for s in args.settings if s not in SETTINGS] + [c for c in args.conditions if c not in CONDITIONS]
    if bad or not args.settings or not args.conditions:
        raise ValueError(
            f"unknown or no settings/conditions {bad}; settings: {list(SETTINGS)}, conditions: {CONDITIONS}"
        )
    args.command = "python tools/smoothing_study.py " + " ".join(shlex.quote(a) for a in argv)
    return args, extra


def _flag(extra: list[str], name: str, default: str) -> str:
    for i, a in enumerate(extra):
        if a == name and i + 1 < len(extra):
            return extra[i + 1]
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
    return default


def prepare_data(args: argparse.Namespace, condition: str, out: Path) -> Path:
    """Write the condition's data folder (train part, held-out ``calib`` part, clean val); returns its YAML."""
    from data.datasets import build_dataset
    from data.demo import ensure_demo
    from data.yaml_io import load_data_yaml

    folder = out / "data" / condition
    done = folder / "data.yaml"
    if done.is_file():
        return done
    data = load_data_yaml(args.data if args.data else ensure_demo())
    base = build_dataset(data, "train", 32, augment=False)  # only the file list and labels are used
    kept, held = holdout_split(len(base), args.holdout, args.split_seed)
    fmap = parse_flip_map(args.flip_map, base.nc) if args.flip_map else lookalike_map(base.names)
    fraction = args.noise if condition == "noisy" else 0.0
    report: dict[str, Any] = {"condition": condition, "fraction": fraction, "flip_map": fmap, "seed": args.noise_seed}
    entries = {}
    for part, idx, seed in (("train", kept, args.noise_seed), ("calib", held, args.noise_seed + 1)):
        labels, rep = flip_labels([base.labels[i] for i in idx], fraction, base.nc, seed, fmap)
        entries[part] = str(write_yolo_copy([base.im_files[i] for i in idx], labels, folder, part).resolve())
        report[part] = {"images": len(idx), "boxes_flipped": rep.flipped, "boxes_eligible": rep.eligible}
    doc = {"path": str(folder.resolve()), "train": entries["train"], "calib": entries["calib"], "val": data["val"],
           "names": list(data["names"])}  # fmt: skip
    for key in ("val_json", "val_images", "multi_label"):
        if data.get(key) is not None:
            doc[key] = str(data[key]) if key != "multi_label" else data[key]
    atomic_write_text(folder / "noise.json", json.dumps(report, indent=2))
    atomic_write_text(done, yaml.safe_dump(doc, sort_keys=False))
    return done


def finished(run: Path) -> bool:
    last = run / "weights" / "last.pt"
    if not last.is_file():
        return False
    ckpt = load_checkpoint(last)
    return int(ckpt["epoch"]) + 1 >= int(ckpt["opt"]["epochs"]) and not ckpt.get("interrupted")


def evaluate(weights: Path, data_yaml: Path, out: Path, device: str) -> dict[str, float]:
    """The final weights on the clean val split: mAP and calibration figures (cached in ``out/metrics.json``)."""
    from tools import eval as eval_cli

    cache = out / "metrics.json"
    if cache.is_file() and cache.stat().st_mtime >= weights.stat().st_mtime:
        return json.loads(cache.read_text())
    res = eval_cli.main(["--weights", str(weights), "--data", str(data_yaml), "--device", device, "--workers", "0",
                         "--project", str(out), "--name", "eval", "--exist-ok", "--backend", "pycocotools",
                         "--noplots"])  # fmt: skip
    hi, lo = res.figures
    nan = float("nan")  # no detections above a threshold: its calibration figures are undefined, not 0
    table = res.table
    tp = table.score[table.correct == 1] if table is not None else []
    m = {"mAP50-95": res.map, "mAP50": res.map50, "D-ECE@0.25": hi.d_ece if hi.n else nan,
         "LaECE@0.25": hi.laece if hi.n else nan, "n@0.25": hi.n, "D-ECE@0.001": lo.d_ece if lo.n else nan,
         "LaECE@0.001": lo.laece if lo.n else nan, "n@0.001": lo.n,
         "TP score": float(tp.mean()) if len(tp) else nan}  # fmt: skip
    atomic_write_text(cache, json.dumps(m, indent=2))
    return m


def train_run(extra: list[str], setting: str, seed: int, data_yaml: Path, cond_dir: Path) -> tuple[Path, list[str]]:
    """``(run folder, tools/train.py arguments)`` of one setting and seed (post-hoc: its ``eps 0`` run)."""
    eps, kind = SETTINGS[setting]
    base_setting = "eps 0" if setting == POSTHOC else setting
    run = cond_dir / f"{base_setting.replace(' ', '')}-s{seed}"
    return run, [*extra, "--data", str(data_yaml), "--seed", str(seed), "--label-smoothing", str(eps),
                 "--label-smoothing-kind", kind, "--project", str(cond_dir), "--name", run.name,
                 "--exist-ok"]  # fmt: skip


def train_in_parallel(extra: list[str], plan: list[tuple[str, int, Path, Path]], jobs: int) -> None:
    """Train the unfinished runs of ``plan`` ``(setting, seed, data_yaml, cond_dir)``, ``jobs`` at a time."""
    todo: dict[Path, list[str]] = {}
    for setting, seed, data_yaml, cond_dir in plan:
        run, argv = train_run(extra, setting, seed, data_yaml, cond_dir)
        if run not in todo and not finished(run):
            todo[run] = argv
    script = str(Path(__file__).resolve().parent / "train.py")
    print(f"training {len(todo)} run(s), {jobs} at a time (logs: <run>/train.log)")
    run_parallel([([sys.executable, script, *argv], run / "train.log") for run, argv in todo.items()], jobs)


def run_one(
    args: argparse.Namespace, extra: list[str], setting: str, seed: int, data_yaml: Path, cond_dir: Path
) -> dict:
    from tools import calibrate

    device = _flag(extra, "--device", "")
    run, train_args = train_run(extra, setting, seed, data_yaml, cond_dir)
    if not finished(run):
        train.main(train_args)
    last = run / "weights" / "last.pt"
    if setting != POSTHOC:
        return evaluate(last, data_yaml, run, device)
    cal = run / "weights" / f"last-cal-{args.posthoc_method}{'-pc' if args.posthoc_per_class else ''}.pt"
    if not cal.is_file() or cal.stat().st_mtime < last.stat().st_mtime:
        calibrate.main(["--weights", str(last), "--data", str(data_yaml), "--cal-split", "calib", "--method",
                        args.posthoc_method, "--out", str(cal), "--device", device]
                       + (["--per-class"] if args.posthoc_per_class else []))  # fmt: skip
    return evaluate(cal, data_yaml, run / cal.stem, device)


def main(argv: list[str] | None = None) -> Path:
    args, extra = parse(argv)
    out = increment_path(Path(args.project) / args.name, args.exist_ok)
    out.mkdir(parents=True, exist_ok=True)
    order = [s for s in SETTINGS if s in args.settings]
    if POSTHOC in order and "eps 0" in order:  # post-hoc reuses eps 0's model: train that first
        order.remove(POSTHOC)
        order.insert(order.index("eps 0") + 1, POSTHOC)
    runs: dict[str, dict[str, list[dict]]] = {}
    data_yamls = {cond: prepare_data(args, cond, out) for cond in args.conditions}
    if args.jobs > 1:
        plan = [(s, seed, data_yamls[c], out / c) for c in args.conditions for s in order for seed in range(args.seeds)]
        train_in_parallel(extra, plan, args.jobs)
    for cond in args.conditions:
        data_yaml = data_yamls[cond]
        runs[cond] = {s: [run_one(args, extra, s, seed, data_yaml, out / cond) for seed in range(args.seeds)]
                      for s in order}  # fmt: skip
    notes = [f"Noise: {json.loads((out / 'data' / c / 'noise.json').read_text())}" for c in args.conditions]
    how = f"{args.posthoc_method}{' per class' if args.posthoc_per_class else ''}"
    notes = ["", *notes, f"Post-hoc: {how}, fitted on the held-out {args.holdout:g} of train (seed {args.split_seed})."]
    text = study_table(runs, "eps 0", args.command, notes)
    atomic_write_text(out / "study.md", text)
    atomic_write_text(out / "study.json", json.dumps({"command": args.command, "runs": runs}, indent=2))
    plot_study(runs, out / "study.png")
    print(text)
    print(f"study written to {out / 'study.md'} and {out / 'study.png'}")
    return out


if __name__ == "__main__":
    try:
        main()
    except ValueError as err:
        print(f"smoothing_study.py: error: {err}", file=sys.stderr)
        sys.exit(2)
