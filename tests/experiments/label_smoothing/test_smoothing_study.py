"""The study's summary files (round trip, hash, corrupt files), its tables from hand-made summaries, and a
miniature study end to end (1 setting + post-hoc x 2 seeds, 64 px, 1 epoch)."""

from __future__ import annotations

import dataclasses
import json

import pytest

from experiments.label_smoothing import study as smoothing_study
from experiments.label_smoothing.aggregate import group_runs, report_text, summary_doc, summary_rows, write_outputs
from experiments.label_smoothing.keys import KEYED_BY_VALUE, by_value
from experiments.label_smoothing.summaries import REQUIRED_METRICS, RunKey, read_summary, scan, write_summary
from tools.training.config import TrainConfig


def _metrics(m: float, top1: float = 0.6) -> dict:
    base = {k: 0.1 for k in REQUIRED_METRICS}
    base.update({"mAP50-95": m, "mAP50": m + 0.1, "n@0.25": 10, "top1": top1, "D-ECE@0.25": float("nan")})
    return base


def test_summary_round_trip_and_hash(tmp_path):
    key = RunKey("demo", "clean", "eps 0.1", 2, {"train": ["--epochs", "22"], "eps": 0.1})
    path = write_summary(tmp_path, key, _metrics(0.3), posthoc={"mAP50-95": 0.3})
    assert path.name == "clean-eps0.1-s2.json"
    status = read_summary(path, key)
    assert status.state == "ok" and status.summary["metrics"]["mAP50-95"] == 0.3
    assert status.summary["metrics"]["D-ECE@0.25"] is None  # NaN is written as null (strict JSON)
    # the same run planned with another flag has another hash: stale, trained again
    other = RunKey("demo", "clean", "eps 0.1", 2, {"train": ["--epochs", "30"], "eps": 0.1})
    assert other.digest() != key.digest() and read_summary(path, other).state == "stale"
    assert read_summary(tmp_path / "nope.json", key).state == "missing"
    with pytest.raises(ValueError, match="missing"):
        write_summary(tmp_path, key, {"mAP50-95": 0.3})


@pytest.mark.parametrize(
    "damage",
    [
        lambda t: t[: len(t) // 2],  # truncated
        lambda t: "[1, 2]",  # not a summary
        lambda t: t.replace('"mAP50-95": 0.3', '"mAP50-95": "high"'),  # a metric that is not a number
        lambda t: t.replace('"seed": 2', '"seed": 3'),  # key edited: hash no longer matches
    ],
)
def test_corrupt_summary_is_reported_and_rerun(tmp_path, damage, capsys):
    key = RunKey("demo", "clean", "eps 0", 2, {"train": []})
    path = write_summary(tmp_path / "runs", key, _metrics(0.3))
    path.write_text(damage(path.read_text()))
    status = read_summary(path, key)
    assert status.state in ("corrupt", "stale") and status.reason
    good, bad = scan(tmp_path / "runs")
    assert not good and [b.path for b in bad] == [path]  # never silently counted
    args, extra = smoothing_study.parse(["--settings", "eps 0", "--conditions", "clean", "--seeds", "3",
                                         "--summaries", str(tmp_path)])  # fmt: skip
    assert ("clean", "eps 0", 2) in smoothing_study.pending(args, extra)


def test_pending_skips_runs_with_a_matching_summary(tmp_path):
    args, extra = smoothing_study.parse(["--settings", "eps 0,eps 0.1", "--conditions", "clean", "--seeds", "2",
                                         "--summaries", str(tmp_path), "--", "--epochs", "3"])  # fmt: skip
    assert len(smoothing_study.pending(args, extra)) == 4
    write_summary(tmp_path / "runs", smoothing_study.run_key(args, extra, "clean", "eps 0.1", 1), _metrics(0.3))
    todo = smoothing_study.pending(args, extra)
    assert ("clean", "eps 0.1", 1) not in todo and len(todo) == 3
    # another epoch count is another study: nothing is skipped
    args2, extra2 = smoothing_study.parse(["--settings", "eps 0,eps 0.1", "--conditions", "clean", "--seeds", "2",
                                           "--summaries", str(tmp_path), "--", "--epochs", "4"])  # fmt: skip
    assert len(smoothing_study.pending(args2, extra2)) == 4


def test_the_class_gain_rule_is_keyed_by_value(tmp_path):
    """Runs keyed before --cls-scaling existed trained with yolov5's rule: naming that rule keeps their hash
    (the flag text is not part of the key), another rule gets a new hash, and the report names the rule."""

    def key(*train):
        args, extra = smoothing_study.parse(["--summaries", str(tmp_path), "--", "--epochs", "3", *train])
        return smoothing_study.run_key(args, extra, "clean", "eps 0", 0)

    old = RunKey("demo", "clean", "eps 0", 0, {**key("--cls-scaling", "yolov5").flags, "train": ["--epochs", "3"]})
    assert key("--cls-scaling", "yolov5") == old and key("--cls-scaling=yolov5") == old
    sqrt = key("--cls-scaling", "sqrt")
    assert sqrt.digest() != old.digest() and sqrt.flags["cls_scaling"] == "sqrt"
    assert sqrt.flags["train"] == ["--epochs", "3"] and key("--cls-scaling=sqrt") == sqrt
    assert (key().digest() == old.digest()) == (TrainConfig().cls_scaling == "yolov5")  # the default by value
    args, _ = smoothing_study.parse(["--summaries", str(tmp_path), "--", "--epochs", "3"])
    for k, rule in ((old, "yolov5"), (sqrt, "sqrt")):
        cmd = smoothing_study.study_command(args, [{"key": dataclasses.asdict(k)}])
        assert cmd.endswith(f"-- --epochs 3 --cls-scaling {rule}"), cmd


def test_table_and_summary_json_from_hand_made_summaries(tmp_path):
    runs = tmp_path / "runs"
    values = {"eps 0": [0.30, 0.31, 0.32], "eps 0.1": [0.25, 0.26, 0.24]}
    for setting, maps in values.items():
        for seed, m in enumerate(maps):
            key = RunKey("demo", "clean", setting, seed, {"train": ["--epochs", "22"]})
            analysis = {"wrong_class@0.25": 0.1 + m, "mAP50-95 class-agnostic": 0.5}
            post = m - 0.06 if setting == "eps 0" else m  # calibrated eps 0 level with eps 0.1: no '*' after post-hoc
            write_summary(runs, key, _metrics(m), posthoc={**_metrics(post), "D-ECE@0.25": 0.05, "top1": 0.0},
                          analysis=analysis)  # fmt: skip
    docs, bad = scan(runs)
    assert len(docs) == 6 and not bad
    grouped = group_runs(docs, ["eps 0", "eps 0.1"])
    assert list(grouped["clean"]) == ["eps 0", "eps 0 + post-hoc", "eps 0.1", "eps 0.1 + post-hoc"]
    assert grouped["clean"]["eps 0 + post-hoc"][0]["top1"] == 0.6  # class scores are the model's, not the file's
    rows = {r["setting"]: r for r in summary_rows(grouped)}
    assert rows["eps 0"]["seeds"] == 3 and rows["eps 0"]["map50_95_mean"] == pytest.approx(0.31)
    assert rows["eps 0"]["map50_95_std"] == pytest.approx(0.01)
    assert rows["eps 0"]["d_ece_025_mean"] is None and rows["eps 0 + post-hoc"]["d_ece_025_mean"] == 0.05
    paths = write_outputs(tmp_path, "demo", docs, "cmd", ["eps 0", "eps 0.1"])
    doc = json.loads(paths["summary"].read_text())
    assert doc["dataset"] == "demo" and doc["regime"]["train_flags"] == ["--epochs", "22"]
    assert {"setting", "condition", "seeds", "map50_95_mean", "map50_95_std", "map50_mean", "d_ece_025_mean",
            "d_ece_025_std", "laece_025_mean", "n_025_mean", "top1_mean"} <= set(doc["rows"][0])  # fmt: skip
    table = paths["table"].read_text()
    # eps 0.1 is 0.06 below eps 0 with a standard error of ~0.01: marked as beyond the seed noise
    assert "| eps 0.1 | 3 | 0.2500 +- 0.0100 *" in table and "| eps 0 | 3 | 0.3100 +- 0.0100 |" in table
    # the overview (the README's table): the conditions side by side, the same noise screen
    overview = table.split("### Overview", 1)[1].split("### By condition")[0]
    assert "| eps 0.1 | 3 | 0.2500 +- 0.0100 * |" in overview and "| eps 0 + post-hoc | 3 |" in overview
    # after post-hoc calibration: calibrated rows only, each against eps 0 + post-hoc (not the raw eps 0)
    post = table.split("### After post-hoc calibration", 1)[1].split("### Why")[0]
    assert "| eps 0 + post-hoc | 3 | 0.2500 +- 0.0100 |" in post
    assert "| eps 0.1 + post-hoc | 3 | 0.2500 +- 0.0100 |" in post
    assert "| eps 0.1 + post-hoc | 3 | 0.2500 +- 0.0100 * |" in overview  # there: against the raw eps 0
    assert "| eps 0 | " not in post and "| eps 0.1 | " not in post
    # the "why" table: trained rows only, with the analysis figures of the runs (column 7: wrong class >= 0.25)
    why = table.split("### Why", 1)[1]
    assert "post-hoc" not in why.split("Why:")[0]
    row = next(line for line in why.splitlines() if line.startswith("| eps 0.1 |")).split(" | ")
    assert row[7] == "0.350 +- 0.010 *" and row[11].startswith("0.5000")
    assert paths["plot"].is_file()


def test_study_refuses_its_own_flags_and_time_budgets():
    with pytest.raises(ValueError, match="set by the study"):
        smoothing_study.parse(["--", "--label-smoothing", "0.1"])
    with pytest.raises(ValueError, match="fixed --epochs"):
        smoothing_study.parse(["--", "--time", "0.1"])
    with pytest.raises(ValueError, match="unknown"):
        smoothing_study.parse(["--settings", "eps 0.2"])
    with pytest.raises(ValueError, match="--jobs"):
        smoothing_study.parse(["--jobs", "0"])


@pytest.mark.slow
def test_miniature_study_end_to_end(tmp_path):
    from data.demo import ensure_demo

    data = ensure_demo(tmp_path / "demo", n_train=12, n_val=4)
    argv = ["--seeds", "1", "--settings", "eps 0 + post-hoc", "--conditions", "noisy", "--data", str(data),
            "--dataset", "mini", "--holdout", "0.25", "--posthoc-method", "platt", "--project", str(tmp_path),
            "--summaries", str(tmp_path / "docs"), "--", "--imgsz", "64", "--epochs", "1",
            "--batch-size", "4", "--workers", "0", "--device", "cpu", "--noval", "--noplots"]  # fmt: skip
    out = smoothing_study.main(argv)
    files = sorted(p.name for p in (out / "runs").glob("*.json"))
    assert files == ["noisy-eps0-s0.json"]
    doc = json.loads((out / "runs" / files[0]).read_text())
    assert doc["key"]["flags"]["noise"] == 0.2 and doc["train_argv_tail"][:2] == ["--data", doc["train_argv_tail"][1]]
    assert {"true", "other", "top1", "wrong_class@0.001"} <= set(doc["metrics"]) | set(doc["analysis"])
    assert "mAP50-95" in doc["posthoc"]
    summary = json.loads((out / "summary.json").read_text())
    assert [(r["setting"], r["seeds"]) for r in summary["rows"]] == [("eps 0", 1), ("eps 0 + post-hoc", 1)]
    noise = json.loads((tmp_path / "mini" / "data" / "noisy" / "noise.json").read_text())
    assert noise["train"]["images"] == 9 and noise["calib"]["images"] == 3
    # the summaries alone decide: a second call trains nothing and the files stay as they were
    before = {f: (out / "runs" / f).read_text() for f in files}
    assert smoothing_study.main(argv) == out
    assert {f: (out / "runs" / f).read_text() for f in files} == before


def test_summaries_folder_is_not_git_ignored():
    """The summaries are what a later session builds on: `runs/` is ignored everywhere but under docs/study."""
    import shutil
    import subprocess
    from pathlib import Path

    root = Path(smoothing_study.__file__).resolve().parents[2]
    if shutil.which("git") is None or not (root / ".git").exists():
        pytest.skip("not a git checkout")
    paths = ["docs/study/demo/runs/clean-eps0-s0.json", "docs/study/digits/runs/noisy-eps0.1-s2.json", "runs/train/x"]
    out = subprocess.run(["git", "check-ignore", *paths], cwd=root, capture_output=True, text=True).stdout.split()
    assert out == ["runs/train/x"]


def test_report_writes_only_its_own_folder(tmp_path):
    """The report is the three files in the summaries folder; nothing else (the README) is rewritten."""
    key = RunKey("demo", "clean", "eps 0", 0, {"train": ["--epochs", "3"]})
    write_summary(tmp_path / "docs" / "runs", key, _metrics(0.3), posthoc=_metrics(0.3))
    (tmp_path / "README.md").write_text("<!-- study:demo -->\n| old |\n<!-- /study:demo -->\n")
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    argv = ["--report-only", "--summaries", str(tmp_path / "docs"), "--project", str(tmp_path / "work")]
    assert smoothing_study.main(argv) == tmp_path / "docs"
    after = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert {p: b for p, b in after.items() if p in before} == before  # summaries and README untouched
    assert sorted(p.name for p in set(after) - set(before)) == ["study.md", "study.png", "summary.json"]
    assert all(p.parent == tmp_path / "docs" for p in set(after) - set(before))


def _committed_studies():
    from pathlib import Path

    root = Path(smoothing_study.__file__).resolve().parents[2]
    return [f for f in sorted((root / "docs" / "study").iterdir()) if (f / "runs").is_dir()]


@pytest.mark.parametrize("folder", _committed_studies(), ids=lambda f: f.name)
def test_committed_reports_are_the_committed_summaries(folder):
    """Each docs/study/<dataset>/study.md and summary.json is what its committed run summaries give (rebuild:
    python experiments/label_smoothing/study.py --report-only --dataset <dataset>); every summary is valid."""
    summaries, bad = scan(folder / "runs")
    assert not bad, [(b.path, b.state, b.reason) for b in bad]
    mine = [d for d in summaries if d["key"]["dataset"] == folder.name]
    assert len(mine) == len(summaries) >= 1
    args, _ = smoothing_study.parse(["--report-only", "--dataset", folder.name])
    command = smoothing_study.study_command(args, mine)
    order = list(smoothing_study.SETTINGS)
    text = report_text(group_runs(mine, order), command, smoothing_study.notes(args))
    stale = f"{folder.name}'s report is stale: python experiments/label_smoothing/study.py --report-only --dataset "
    assert (folder / "study.md").read_text(encoding="utf-8") == text, stale + folder.name
    doc = json.loads(json.dumps(summary_doc(folder.name, mine, command, order)))
    assert json.loads((folder / "summary.json").read_text()) == doc, stale + folder.name


def _command_args(command: str) -> list[str]:
    """The arguments of a report's study command (``python experiments/label_smoothing/study.py ...``)."""
    import shlex

    words = shlex.split(command)
    assert words[:2] == ["python", "experiments/label_smoothing/study.py"], command
    return words[2:]


@pytest.mark.parametrize("folder", _committed_studies(), ids=lambda f: f.name)
def test_committed_runs_are_done_for_the_command_their_report_names(folder):
    """Every committed summary has the hash the moved study computes from the command in its report (the study's
    own KEYED_BY_VALUE table, not the trainer's), so that command trains nothing of what is committed."""
    summaries, _ = scan(folder / "runs")
    args, extra = smoothing_study.parse(_command_args(json.loads((folder / "summary.json").read_text())["regime"]
                                                      ["command"]))  # fmt: skip
    args.summaries = folder
    done = {(d["key"]["condition"], d["key"]["setting"], d["key"]["seed"]) for d in summaries}
    for cond, setting, seed in done:
        key = smoothing_study.run_key(args, extra, cond, setting, seed)
        assert read_summary(folder / "runs" / key.filename, key).state == "ok", (folder.name, key)
    assert not done & set(smoothing_study.pending(args, extra))


def test_the_study_keeps_its_own_table_of_old_defaults():
    """The study's hashes do not depend on the trainer's record of old defaults (which may go away)."""
    from pathlib import Path

    src = Path(smoothing_study.__file__).parent
    users = [p.name for p in src.rglob("*.py") if "BEFORE_ITS_FLAG" in p.read_text(encoding="utf-8")]
    assert not users, f"the study reads the trainer's BEFORE_ITS_FLAG: {users}"
    assert KEYED_BY_VALUE == {"cls_scaling": ("--cls-scaling", "yolov5")}  # the committed hashes depend on it
    kept, changed = by_value(["--epochs", "3", "--cls-scaling=sqrt", "--imgsz", "64"])
    assert kept == ["--epochs", "3", "--imgsz", "64"] and changed == {"cls_scaling": "sqrt"}
    assert by_value(["--cls-scaling", "yolov5"]) == ([], {})


def _documented_commands() -> list[str]:
    """The study commands of README.md and docs/study/README.md (continuation lines joined), except those with
    a shell variable or an optional ``[...]`` part."""
    from pathlib import Path

    root = Path(smoothing_study.__file__).resolve().parents[2]
    out = []
    for doc in (root / "README.md", root / "docs" / "study" / "README.md"):
        text = doc.read_text(encoding="utf-8").replace("\\\n", " ")
        for line in text.splitlines():
            line = line.strip()
            if line.startswith("python experiments/label_smoothing/study.py") and not {"$", "["} & set(line):
                out.append(line)
    return out


def test_documented_commands_parse_and_train_nothing_that_is_committed():
    """Each study command of the docs parses, and every run it plans has its committed summary (same hash)."""
    import shlex

    commands = _documented_commands()
    assert len(commands) >= 5, commands
    for command in commands:
        args, extra = smoothing_study.parse(_command_args(shlex.join(shlex.split(command, comments=True))))
        assert smoothing_study.pending(args, extra) == [], command
