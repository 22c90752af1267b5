"""Benchmark the COCO evaluation backends on generated ground truth and results (not a test).

    python tools/bench_eval.py [--images 500 5000] [--classes 80] [--gt-per-image 7] [--dt-per-image 30]

For each size it generates a seeded COCO ground truth (about ``--gt-per-image`` boxes an image, sizes spread
over the small/medium/large ranges, a few crowd regions) and results (each ground truth found with
probability 0.8 as a jittered box, the rest of the ``--dt-per-image`` detections random), then times, in
the same run: the input checks, the ``pycocotools`` evaluation (the baseline), the ``faster`` evaluation,
and the detection ECE; prints the ratio and checks both backends give the same 12 numbers.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools.evaluation.calibration import detection_ece
from tools.evaluation.coco import coco_evaluate
from tools.evaluation.cocojson import check_detections, check_ground_truth


def make_coco(n_images: int, n_classes: int, gt_per_image: float, dt_per_image: int, seed: int) -> tuple[dict, list]:
    """Seeded synthetic ground truth (640x480 images) and detections; see the module docstring."""
    rng = np.random.default_rng(seed)
    W, H = 640.0, 480.0
    images = [{"id": i + 1, "width": int(W), "height": int(H)} for i in range(n_images)]
    cats = [{"id": c + 1, "name": f"class{c}"} for c in range(n_classes)]
    anns: list[dict] = []
    dets: list[dict] = []
    for im in images:
        k = rng.poisson(gt_per_image)
        side = np.exp(rng.uniform(np.log(8), np.log(300), size=(k, 2)))  # 8..300 px: all three area ranges
        xy = rng.uniform(0, 1, size=(k, 2)) * (np.array([W, H]) - side)
        cls = rng.integers(1, n_classes + 1, k)
        mine = []
        for (x, y), (w, h), c in zip(xy.tolist(), side.tolist(), cls.tolist()):
            crowd = int(rng.random() < 0.01)
            anns.append(
                {"id": len(anns) + 1, "image_id": im["id"], "category_id": c, "bbox": [x, y, w, h]}
                | {"area": w * h, "iscrowd": crowd}
            )
            if rng.random() < 0.8:  # found: a jittered box with a mostly high score
                jx, jy, jw, jh = (rng.normal(0, 0.08, 4) * [w, h, w, h]).tolist()
                mine.append((c, [x + jx, y + jy, abs(w + jw), abs(h + jh)], float(rng.beta(4, 2))))
        for _ in range(max(0, dt_per_image - len(mine))):  # false positives with mostly low scores
            w, h = np.exp(rng.uniform(np.log(8), np.log(300), 2)).tolist()
            box = [float(rng.uniform(0, W - w)), float(rng.uniform(0, H - h)), w, h]
            mine.append((int(rng.integers(1, n_classes + 1)), box, float(rng.beta(1, 4))))
        dets += [{"image_id": im["id"], "category_id": c, "bbox": b, "score": s} for c, b, s in mine]
    return {"images": images, "annotations": anns, "categories": cats}, dets


def _timed(fn, *args, **kwargs):
    t = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t


def bench(n_images: int, n_classes: int, gt_per_image: float, dt_per_image: int, seed: int) -> dict:
    gt_raw, dt_raw = make_coco(n_images, n_classes, gt_per_image, dt_per_image, seed)
    (gt, t_check_gt) = _timed(check_ground_truth, gt_raw, "<generated gt>")
    (dt, t_check_dt) = _timed(check_detections, dt_raw, gt, "<generated dt>")
    ref, t_ref = _timed(coco_evaluate, gt, dt, "pycocotools")
    fast, t_fast = _timed(coco_evaluate, gt, dt, "faster")
    cal, t_cal = _timed(detection_ece, gt, dt)
    diff = float(np.max(np.abs(np.array(ref.stats) - np.array(fast.stats))))
    return {
        "images": n_images,
        "gt": len(gt["annotations"]),
        "dt": len(dt),
        "check_s": t_check_gt + t_check_dt,
        "pycocotools_s": t_ref,
        "faster_s": t_fast,
        "ratio": t_ref / t_fast,
        "ece_s": t_cal,
        "AP": ref.stats[0],
        "max_stat_diff": diff,
        "ece": cal.ece,
    }


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(prog="bench_eval.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, nargs="+", default=[500, 5000])
    p.add_argument("--classes", type=int, default=80)
    p.add_argument("--gt-per-image", type=float, default=7.0)
    p.add_argument("--dt-per-image", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    rows = []
    print(
        f"{'images':>7} {'gt':>7} {'dt':>8} {'check s':>8} {'pycocotools s':>14} {'faster s':>9} {'ratio':>6} "
        f"{'D-ECE s':>8} {'AP':>7} {'|diff|':>8}"
    )
    for n in args.images:
        r = bench(n, args.classes, args.gt_per_image, args.dt_per_image, args.seed)
        rows.append(r)
        print(
            f"{r['images']:>7} {r['gt']:>7} {r['dt']:>8} {r['check_s']:>8.2f} {r['pycocotools_s']:>14.2f} "
            f"{r['faster_s']:>9.2f} {r['ratio']:>5.1f}x {r['ece_s']:>8.2f} {r['AP']:>7.4f} {r['max_stat_diff']:>8.1e}"
        )
    return rows


if __name__ == "__main__":
    main()
