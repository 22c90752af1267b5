"""Label-smoothing study over seeds, on clean and on noisy training labels, against post-hoc calibration.

    python experiments/label_smoothing/study.py --seeds 3 --jobs 2 [--data D --dataset NAME] [--noise 0.2] \
        -- <train.py flags>

Settings (``--settings``, comma-separated subset): ``eps 0``, ``eps 0.01``, ``eps 0.05``, ``eps 0.1`` (YOLO form
``(1 - eps/2, eps/2)``), ``uniform 0.1`` (``eps/K``), ``online 0.1`` (:mod:`detloss.online_smoothing_bce`).
Every trained run is also reported with a post-hoc calibrator (``--posthoc-method``, default isotonic) fitted by
``tools/calibrate.py`` on the held-out part of train: rows ``<setting> + post-hoc``; ``eps 0 + post-hoc`` is the
free baseline (no training of its own; selecting it trains ``eps 0``).

Data (written once per condition under ``<project>/<name>/data/<condition>``): the train split of ``--data``
(default: the demo) is split, with seed ``--split-seed``, into a training part and a held-out ``calib`` part
(``--holdout``, default 20%) that no setting trains on. Condition ``clean`` keeps the labels; ``noisy`` flips a
fraction ``--noise`` (default 0.2) of the box class labels of both parts (seeded, exactly
``round(noise * boxes)``; ignore regions never flip; :mod:`.label_noise`, :mod:`.conditions`) to the look-alike
class (the demo's pairs; ``--flip-map`` for other data, else a random other class). The val split stays clean.

Every run is ``tools/train.py`` with the flags after ``--`` followed by the study's own (``--data``, ``--seed``,
``--label-smoothing``, ``--label-smoothing-kind``, ``--project``, ``--name``; giving those after ``--`` is an
error). Use fixed ``--epochs`` (not ``--time``), so results do not depend on the machine's load. Each run is
one process (:mod:`.job`): train, evaluate the final weights on the val split with ``tools/eval.py``
(pycocotools; D-ECE and LaECE at conf >= 0.25 and 0.001), read the class scores at the positives
(``tools/class_scores.py``), fit and evaluate the post-hoc calibrator, and write a summary file to
``<summaries>/runs/`` (default ``docs/study/<dataset>/runs/``; :mod:`.summaries`). A run whose summary
exists with the same hash (setting, condition, seed and every flag) is skipped, so summaries committed on one
machine count on another; a corrupt or foreign summary is reported and the run redone. The tables
(``study.md``), ``summary.json`` and ``study.png`` in ``<summaries>`` are rebuilt from the summary files alone
(:mod:`.aggregate`); ``--report-only`` does only that. Nothing else is written: the README links to
``docs/study/<dataset>/study.md`` and its summary of the results is written by hand.
A run stopped part-way (killed, preempted) goes on from its ``last.pt`` when the study is started again.

``--jobs N`` runs N runs at a time, each with ``cpu_count // N`` threads; on 2 CPU cores ``--jobs 2`` with
``--workers 1`` after ``--`` finishes about 1.5 to 2 times sooner than one run at a time.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]  # the checkout
if __package__ in (None, ""):
    sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from experiments.label_smoothing.aggregate import write_outputs  # noqa: E402
from experiments.label_smoothing.conditions import prepare_data  # noqa: E402
from experiments.label_smoothing.jobs import default_threads, run_parallel  # noqa: E402
from experiments.label_smoothing.keys import (  # noqa: E402
    CONDITIONS,
    POSTHOC,
    PRIORITY,
    SETTINGS,
    named_by_value,
    run_key,
)
from experiments.label_smoothing.summaries import read_summary, scan  # noqa: E402
from fileio import atomic_write  # noqa: E402
from tools.evaluation.calibrators import METHODS  # noqa: E402

COMMAND = "python experiments/label_smoothing/study.py"
OWN_FLAGS = ("--data", "--seed", "--label-smoothing", "--label-smoothing-kind", "--project", "--name", "--resume")


def parse(argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=3, help="training seeds 0 .. N-1 per setting and condition")
    p.add_argument("--settings", default=",".join([*SETTINGS, POSTHOC]),
                   help="comma-separated subset of: " + ", ".join([*SETTINGS, POSTHOC]))  # fmt: skip
    p.add_argument("--conditions", default=",".join(CONDITIONS), help="clean, noisy or both")
    p.add_argument("--data", default=None, help="data YAML (default: the demo)")
    p.add_argument("--dataset", default=None, help="name of the data in summaries (default: demo or the YAML's stem)")
    p.add_argument("--noise", type=float, default=0.2, help="fraction of training box labels flipped (noisy)")
    p.add_argument(
        "--flip-map", default=None, help="'from:to,...' class flips (default: demo look-alikes, else random)"
    )
    p.add_argument("--noise-seed", type=int, default=0, help="seed of the label flips")
    p.add_argument("--holdout", type=float, default=0.2, help="fraction of train held out for post-hoc calibration")
    p.add_argument("--split-seed", type=int, default=0, help="seed of the held-out part")
    p.add_argument("--posthoc-method", choices=METHODS, default="isotonic")
    p.add_argument("--project", default="runs/study", help="work folder of the trainings: <project>/<name>")
    p.add_argument("--name", default=None, help="default: the dataset name")
    p.add_argument("--summaries", default=None, help="summary folder (default: docs/study/<dataset> of the checkout)")
    p.add_argument("--jobs", type=int, default=1, help="runs at once (subprocesses sharing the CPU threads)")
    p.add_argument("--report-only", action="store_true", help="rebuild tables and summary.json; train nothing")
    argv = list(sys.argv[1:] if argv is None else argv)
    cut = argv.index("--") if "--" in argv else len(argv)
    args, extra = p.parse_args(argv[:cut]), argv[cut + 1 :]
    clash = [a for a in extra if a.split("=")[0] in OWN_FLAGS]
    if clash:
        raise ValueError(f"flags {clash} after '--' are set by the study itself; use the study's options")
    if "--time" in [a.split("=")[0] for a in extra]:
        raise ValueError("--time after '--' makes results depend on the machine's load; give fixed --epochs")
    if args.seeds < 1 or args.jobs < 1 or not 0.0 <= args.noise <= 1.0:
        raise ValueError(
            f"--seeds and --jobs must be >= 1 and --noise in [0, 1], got {args.seeds}, {args.jobs}, {args.noise}"
        )
    args.settings = [s.strip() for s in args.settings.split(",") if s.strip()]
    args.conditions = [c.strip() for c in args.conditions.split(",") if c.strip()]
    known = [*SETTINGS, POSTHOC]
    bad = [s for s in args.settings if s not in known] + [c for c in args.conditions if c not in CONDITIONS]
    if bad or not args.settings or not args.conditions:
        raise ValueError(f"unknown or no settings/conditions {bad}; settings: {known}, conditions: {CONDITIONS}")
    args.dataset = args.dataset or (Path(args.data).stem if args.data else "demo")
    args.name = args.name or args.dataset
    args.summaries = Path(args.summaries) if args.summaries else ROOT / "docs" / "study" / args.dataset
    args.command = COMMAND + " " + " ".join(shlex.quote(a) for a in argv)
    return args, extra


def _flag(extra: list[str], name: str, default: str) -> str:
    for i, a in enumerate(extra):
        if a == name and i + 1 < len(extra):
            return extra[i + 1]
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
    return default


def train_argv(extra: list[str], setting: str, seed: int, data_yaml: Path, cond_dir: Path) -> tuple[Path, list[str]]:
    """``(run folder, tools/train.py arguments)`` of one setting and seed."""
    eps, kind = SETTINGS[setting]
    run = cond_dir / f"{setting.replace(' ', '')}-s{seed}"
    return run, [*extra, "--data", str(data_yaml), "--seed", str(seed), "--label-smoothing", str(eps),
                 "--label-smoothing-kind", kind, "--project", str(cond_dir), "--name", run.name,
                 "--exist-ok"]  # fmt: skip


def plan(args: argparse.Namespace, extra: list[str]) -> list[tuple[str, str, int]]:
    """``(condition, setting, seed)`` of every run to train, seeds outermost so partial studies stay balanced."""
    trained = [s for s in PRIORITY if s in args.settings or (s == "eps 0" and POSTHOC in args.settings)]
    return [(c, s, seed) for c in args.conditions for seed in range(args.seeds) for s in trained]


def pending(args: argparse.Namespace, extra: list[str]) -> list[tuple[str, str, int]]:
    """The planned runs without a valid summary of the same hash (corrupt or stale ones are reported)."""
    todo = []
    for cond, setting, seed in plan(args, extra):
        key = run_key(args, extra, cond, setting, seed)
        status = read_summary(args.summaries / "runs" / key.filename, key)
        if status.state == "ok":
            continue
        if status.state != "missing":
            print(f"{status.path}: {status.state} ({status.reason}); the run is done again")
        todo.append((cond, setting, seed))
    return todo


def run_jobs(args: argparse.Namespace, extra: list[str], todo: list[tuple[str, str, int]], out: Path) -> None:
    """Each pending run as a :mod:`.job` process, ``--jobs`` at a time."""
    jobs = []
    device = _flag(extra, "--device", "")
    data_yamls = {cond: prepare_data(args, cond, out) for cond in {c for c, _, _ in todo}}
    for cond, setting, seed in todo:
        data_yaml = data_yamls[cond]
        run, argv = train_argv(extra, setting, seed, data_yaml, out / cond)
        gt = yaml.safe_load(data_yaml.read_text())["val_json"]
        spec = {"key": run_key(args, extra, cond, setting, seed).__dict__, "run": str(run.resolve()),
                "train_argv": argv, "train_argv_tail": argv[len(extra):], "data_yaml": str(data_yaml.resolve()),
                "gt_json": gt, "device": device, "summaries": str((args.summaries / "runs").resolve())}  # fmt: skip
        spec_file = run.parent / f"{run.name}.spec.json"
        atomic_write(spec_file, json.dumps(spec, indent=1))
        jobs.append(
            (
                [sys.executable, "-m", "experiments.label_smoothing.job", str(spec_file.resolve())],
                run.parent / f"{run.name}.log",
            )
        )
    print(f"{len(jobs)} run(s) to do, {args.jobs} at a time, {default_threads(args.jobs)} thread(s) each "
          f"(logs: {out}/<condition>/<run>.log); summaries go to {args.summaries / 'runs'}")  # fmt: skip
    run_parallel(jobs, args.jobs, cwd=ROOT)


def report(args: argparse.Namespace) -> dict[str, Path]:
    """Tables, summary.json and plot from the summary files alone."""
    summaries, bad = scan(args.summaries / "runs")
    for status in bad:
        print(f"{status.path}: {status.state} ({status.reason}); not counted")
    mine = [d for d in summaries if d["key"]["dataset"] == args.dataset]
    command = study_command(args, mine) if args.report_only else args.command
    return write_outputs(args.summaries, args.dataset, mine, command, list(SETTINGS), notes(args))


def notes(args: argparse.Namespace) -> list[str]:
    """The lines under the report's tables that state the post-hoc fit and what the seeds vary."""
    return [
        f"Post-hoc: {args.posthoc_method}, fitted on the held-out {args.holdout:g} of train (seed {args.split_seed}).",
        "Seeds vary only the training; the noise draw and the held-out split are fixed.",
    ]


def study_command(args: argparse.Namespace, summaries: list[dict[str, Any]]) -> str:
    """The study command that trains what ``summaries`` hold (for tables rebuilt with ``--report-only``)."""
    if not summaries:
        return args.command
    flags = summaries[0]["key"]["flags"]
    settings = list(dict.fromkeys(d["key"]["setting"] for d in summaries))
    seeds = 1 + max(int(d["key"]["seed"]) for d in summaries)
    parts = [COMMAND, f"--seeds {seeds}", "--jobs 2"]
    if args.dataset != "demo":
        parts += ["--data <data.yaml>", f"--dataset {shlex.quote(args.dataset)}"]
    parts.append("--settings " + shlex.quote(",".join(s for s in SETTINGS if s in settings)))  # post-hoc rows: always
    if flags.get("flip_map", "default") != "default":
        parts.append(f"--flip-map {flags['flip_map']}")
    # options keyed by value are named explicitly: the trainer's default may differ from the runs' value
    return " ".join([*parts, "--", *(shlex.quote(a) for a in flags.get("train", [])), *named_by_value(flags)])


def main(argv: list[str] | None = None) -> Path:
    args, extra = parse(argv)
    out = Path(args.project) / args.name
    if not args.report_only:
        todo = pending(args, extra)
        if todo:
            out.mkdir(parents=True, exist_ok=True)
            try:
                run_jobs(args, extra, todo, out)
            finally:
                paths = report(args)
        else:
            print("every planned run has a summary; rebuilding the tables")
    paths = report(args)
    print((args.summaries / "study.md").read_text())
    print(f"study written to {', '.join(str(p) for p in paths.values())}")
    return args.summaries


if __name__ == "__main__":
    from tools.cli.errors import run_script

    run_script("study.py", main, also=(RuntimeError,))
