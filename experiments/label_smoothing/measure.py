"""Everything the study measures on one trained run, through the project's own command-line tools.

Each model step is a subprocess of a ``tools/*.py`` script (``eval.py``, ``calibrate.py``, ``class_scores.py``),
so the figures are exactly what a user gets from those commands, and the study imports no script; the error
analysis of the saved detections (:mod:`.detections`) runs in this process. Outputs go to
``<run>/study/`` and are reused when newer than the weights.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tools.evaluation import evaluate_results, read_json

from .detections import class_agnostic, mean_tp_score, top_class_only, wrong_class_fraction

__all__ = ["Measured", "measure_run", "run_script"]

TOOLS = Path(__file__).resolve().parents[2] / "tools"  # the product's scripts
NAN = float("nan")
Measured = tuple[dict[str, Any], dict[str, Any], dict[str, Any]]  # (metrics, posthoc metrics, analysis)


def run_script(script: str, args: list[str], log: Path, threads: int | None = None) -> None:
    """``python tools/<script> <args>``, output appended to ``log``; ``RuntimeError`` with the log's tail on failure."""
    env = dict(os.environ)
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as fh:
        fh.write(f"\n$ {script} {' '.join(args)}\n")
        fh.flush()
        code = subprocess.call([sys.executable, str(TOOLS / script), *args], stdout=fh, stderr=subprocess.STDOUT,
                               env=env)  # fmt: skip
    if code != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-12:])
        raise RuntimeError(f"{script} exited {code} (log {log}):\n{tail}")


def _fresh(out: Path, source: Path) -> bool:
    return out.is_file() and out.stat().st_mtime >= source.stat().st_mtime


def _eval_figures(doc: dict) -> dict[str, float]:
    """mAP and the calibration figures at 0.25 and 0.001 from an ``eval.py --json-out`` file."""
    m: dict[str, float] = {"mAP50-95": float(doc["stats"][0]), "mAP50": float(doc["stats"][1])}
    for f in doc.get("calibration_figures", []):
        t = f"{float(f['conf_thres']):g}"
        n = int(f["n"])
        m[f"n@{t}"] = n
        m[f"D-ECE@{t}"] = float(f["D-ECE"]) if n else NAN  # no detections: undefined, not 0
        m[f"LaECE@{t}"] = float(f["LaECE"]) if n else NAN
    return m


def _evaluate(weights: Path, data_yaml: Path, out: Path, device: str, log: Path, threads: int | None) -> dict:
    """``eval.py`` on the val split; returns its JSON (cached in ``out/eval.json``; predictions beside it)."""
    js = out / "eval.json"
    if not _fresh(js, weights):
        run_script("eval.py", ["--weights", str(weights), "--data", str(data_yaml), "--device", device, "--workers",
                               "0", "--project", str(out.parent), "--name", out.name, "--exist-ok", "--noplots",
                               "--json-out", str(js)], log, threads)  # fmt: skip
    return json.loads(js.read_text())


def _coco_map(gt: dict, dt: list[dict]) -> float:
    """pycocotools mAP50-95 of ``dt`` against ``gt`` (0 without detections)."""
    if not dt:
        return 0.0
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        return float(evaluate_results(gt, dt).map)


def analyse(gt: dict, dt: list[dict]) -> dict[str, Any]:
    """The :mod:`.detections` figures of one run's val detections."""
    top = top_class_only(dt)
    out: dict[str, Any] = {"TP score": mean_tp_score(gt, dt), **wrong_class_fraction(gt, dt)}
    out["mAP50-95 top class only"] = _coco_map(gt, top)
    out["mAP50-95 class-agnostic"] = _coco_map(*class_agnostic(gt, top))
    return out


def measure_run(
    run: Path, data_yaml: Path, gt_json: Path, device: str = "", posthoc: str = "isotonic", threads: int | None = None
) -> Measured:
    """Metrics of ``run/weights/last.pt``: as trained, with the post-hoc calibrator, and the error analysis."""
    last = run / "weights" / "last.pt"
    if not last.is_file():
        raise FileNotFoundError(f"{last}: the run has no final weights")
    out, log = run / "study", run / "study" / "measure.log"
    gt = read_json(gt_json)
    raw = _evaluate(last, data_yaml, out / "raw", device, log, threads)
    dt = read_json(out / "raw" / "predictions.json")
    analysis = analyse(gt, dt)
    metrics = {**_eval_figures(raw), "TP score": analysis["TP score"]}
    cs = out / "class_scores.json"
    if not _fresh(cs, last):
        run_script("class_scores.py", ["--weights", str(last), "--data", str(data_yaml), "--device", device,
                                       "--json-out", str(cs)], log, threads)  # fmt: skip
    metrics.update(next(iter(json.loads(cs.read_text()).values())))
    cal = run / "weights" / f"last-cal-{posthoc}.pt"
    if not _fresh(cal, last):
        args = ["--weights", str(last), "--data", str(data_yaml), "--cal-split", "calib", "--method", posthoc,
                "--out", str(cal), "--device", device]  # fmt: skip
        run_script("calibrate.py", args, log, threads)
    post = _evaluate(cal, data_yaml, out / "posthoc", device, log, threads)
    post_dt = read_json(out / "posthoc" / "predictions.json")
    posthoc_metrics = {**_eval_figures(post), "TP score": mean_tp_score(gt, post_dt)}
    return metrics, posthoc_metrics, {k: v for k, v in analysis.items() if k != "TP score"}
