"""Detection ECE: a hand-worked case, the greedy COCO-style matching, edges, and a naive reference."""

from __future__ import annotations

import random

import numpy as np
import pytest

from tools.evaluation import check_detections, check_ground_truth, detection_ece, match_detections


def _gt(anns: list[tuple], n_images: int = 2) -> dict:
    """anns: (image_id, category_id, [x, y, w, h], iscrowd)."""
    return check_ground_truth(
        {
            "images": [{"id": i} for i in range(1, n_images + 1)],
            "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
            "annotations": [
                {"id": k + 1, "image_id": i, "category_id": c, "bbox": b, "area": b[2] * b[3], "iscrowd": cr}
                for k, (i, c, b, cr) in enumerate(anns)
            ],
        }
    )


def _dt(gt: dict, dets: list[tuple]) -> list[dict]:
    """dets: (image_id, category_id, [x, y, w, h], score)."""
    return check_detections([{"image_id": i, "category_id": c, "bbox": b, "score": s} for i, c, b, s in dets], gt)


def test_hand_worked_ece():
    """Image 1, class 1: ground truths A=[0,0,10,10], B=[20,0,10,10] and a crowd region C=[50,50,40,40].

    d1 [0,0,10,10]   0.95 -> A (IoU 1)                    correct
    d2 [1,0,10,10]   0.92 -> A again (IoU 0.82), A taken  wrong
    d3 [20,0,10,10]  0.35 -> B                            correct
    d4 [0,80,10,10]  0.31 -> nothing                      wrong
    d5 [60,60,10,10] 0.60 -> only the crowd region        ignored (left out, as COCO ignores it)
    d6 class 2 [0,0,10,10] 0.97 -> no class-2 truth        wrong
    d7 [20,0,10,10]  0.05 -> below conf_thres 0.1         left out

    Bins of 0.1: bin 9 = {d1, d2, d6}: acc 1/3, conf (0.95+0.92+0.97)/3 = 0.94667, gap 0.61333;
    bin 3 = {d3, d4}: acc 1/2, conf 0.33, gap 0.17. N = 5.
    ECE = 3/5 * 0.61333 + 2/5 * 0.17 = 0.368 + 0.068 = 0.436.
    """
    gt = _gt([(1, 1, [0, 0, 10, 10], 0), (1, 1, [20, 0, 10, 10], 0), (1, 1, [50, 50, 40, 40], 1)])
    dt = _dt(
        gt,
        [
            (1, 1, [0, 0, 10, 10], 0.95),
            (1, 1, [1, 0, 10, 10], 0.92),
            (1, 1, [20, 0, 10, 10], 0.35),
            (1, 1, [0, 80, 10, 10], 0.31),
            (1, 1, [60, 60, 10, 10], 0.60),
            (1, 2, [0, 0, 10, 10], 0.97),
            (1, 1, [20, 0, 10, 10], 0.05),
        ],
    )
    assert match_detections(gt, dt).tolist() == [1, 0, 1, 0, -1, 0, 0]
    cal = detection_ece(gt, dt, bins=10, conf_thres=0.1)
    assert cal.ece == pytest.approx(0.436, abs=1e-12)
    assert cal.n == 5 and cal.counts.tolist() == [0, 0, 0, 2, 0, 0, 0, 0, 0, 3]
    assert cal.accuracy[9] == pytest.approx(1 / 3) and cal.confidence[3] == pytest.approx(0.33)
    assert np.isnan(cal.accuracy[0]) and cal.to_dict()["accuracy"][0] is None
    assert cal.edges.tolist() == pytest.approx([i / 10 for i in range(11)])
    # with one bin everything is pooled: acc 2/5, conf (0.95+0.92+0.35+0.31+0.97)/5 = 0.7 -> ECE 0.3
    assert detection_ece(gt, dt, bins=1, conf_thres=0.1).ece == pytest.approx(0.3, abs=1e-12)


def test_greedy_by_confidence_not_by_iou():
    """A=[0,0,10,10]. The 0.9 box has IoU 0.6 with A, the 0.8 box IoU 1; the more confident one takes A."""
    gt = _gt([(1, 1, [0, 0, 10, 10], 0)])
    dt = _dt(gt, [(1, 1, [0, 0, 10, 10], 0.8), (1, 1, [0, 0, 10, 6], 0.9)])
    assert match_detections(gt, dt).tolist() == [0, 1]


def test_each_detection_takes_its_best_unmatched_truth():
    """G1=[0,0,10,10], G2=[3,0,10,10]. d1 [2,0,10,10] (0.9): IoU 0.67 with G1, 0.82 with G2 -> G2.
    d2 [-2,0,10,10] (0.8): IoU 0.67 with G1, 0.33 with G2 -> G1. Taking the first truth above 0.5 instead
    would leave d2 only G2 at IoU 0.33, a miss."""
    gt = _gt([(1, 1, [0, 0, 10, 10], 0), (1, 1, [3, 0, 10, 10], 0)])
    dt = _dt(gt, [(1, 1, [2, 0, 10, 10], 0.9), (1, 1, [-2, 0, 10, 10], 0.8)])
    assert match_detections(gt, dt).tolist() == [1, 1]


def test_iou_threshold_is_inclusive_and_images_are_separate():
    """[0,0,10,5] inside [0,0,10,10]: IoU exactly 0.5 counts; the same box on image 2 has nothing to match."""
    gt = _gt([(1, 1, [0, 0, 10, 10], 0)])
    dt = _dt(gt, [(1, 1, [0, 0, 10, 5], 0.7), (2, 1, [0, 0, 10, 10], 0.7)])
    assert match_detections(gt, dt).tolist() == [1, 0]
    assert match_detections(gt, dt, iou_thres=0.51).tolist() == [0, 0]
    assert match_detections(gt, dt, img_ids=[2]).tolist() == [-1, 0]


def test_bin_edges_zero_and_one():
    gt = _gt([(1, 1, [0, 0, 10, 10], 0)])
    dt = _dt(gt, [(1, 1, [0, 0, 10, 10], 1.0), (1, 1, [50, 50, 10, 10], 0.0)])
    cal = detection_ece(gt, dt, bins=4)
    assert cal.counts.tolist() == [1, 0, 0, 1] and cal.ece == 0.0  # conf 1 correct, conf 0 wrong: calibrated


def test_empty_and_invalid():
    gt = _gt([(1, 1, [0, 0, 10, 10], 0)])
    cal = detection_ece(gt, [])
    assert cal.ece == 0.0 and cal.n == 0 and cal.counts.sum() == 0
    with pytest.raises(ValueError, match="bins"):
        detection_ece(gt, [], bins=0)
    with pytest.raises(ValueError, match=r"confidences in \[0, 1\]"):
        detection_ece(gt, _dt(gt, [(1, 1, [0, 0, 1, 1], 1.5)]))


def _naive_match(gt: dict, dt: list[dict], thr: float = 0.5) -> list[int]:
    """Literal per-detection loop, written independently of the vectorised version."""

    def overlap(d, g, crowd):
        dx1, dy1, dw, dh = d
        gx1, gy1, gw, gh = g
        iw = max(0.0, min(dx1 + dw, gx1 + gw) - max(dx1, gx1))
        ih = max(0.0, min(dy1 + dh, gy1 + gh) - max(dy1, gy1))
        inter = iw * ih
        denom = dw * dh if crowd else dw * dh + gw * gh - inter
        return inter / denom if denom > 0 else 0.0

    taken: set[int] = set()
    out = [0] * len(dt)
    for i in sorted(range(len(dt)), key=lambda k: -dt[k]["score"]):
        d = dt[i]
        same = [a for a in gt["annotations"] if (a["image_id"], a["category_id"]) == (d["image_id"], d["category_id"])]
        best, best_iou = None, -1.0
        for a in same:
            if not a["iscrowd"] and a["id"] not in taken:
                v = overlap(d["bbox"], a["bbox"], False)
                if v >= thr and v > best_iou:
                    best, best_iou = a["id"], v
        if best is not None:
            taken.add(best)
            out[i] = 1
        elif any(a["iscrowd"] and overlap(d["bbox"], a["bbox"], True) >= thr for a in same):
            out[i] = -1
    return out


@pytest.mark.parametrize("seed", range(5))
def test_vectorised_matching_equals_naive_loop(seed):
    rng = random.Random(seed)

    def box():
        return [rng.randint(0, 40), rng.randint(0, 40), rng.randint(1, 20), rng.randint(1, 20)]

    anns = [(rng.randint(1, 3), rng.randint(1, 2), box(), int(rng.random() < 0.1)) for _ in range(30)]
    gt = _gt(anns, n_images=3)
    scores = rng.sample(range(1, 1000), 120)  # distinct: no ties in the confidence order
    dt = _dt(gt, [(rng.randint(1, 3), rng.randint(1, 2), box(), s / 1000) for s in scores])
    assert match_detections(gt, dt).tolist() == _naive_match(gt, dt)
    cal = detection_ece(gt, dt, bins=7)
    ok = np.array(_naive_match(gt, dt))
    conf = np.array([d["score"] for d in dt])[ok >= 0]
    hit = ok[ok >= 0]
    ece = 0.0
    for b in range(7):
        sel = (conf >= b / 7) & ((conf < (b + 1) / 7) if b < 6 else (conf <= 1))
        if sel.any():
            ece += sel.sum() / len(conf) * abs(hit[sel].mean() - conf[sel].mean())
    assert cal.ece == pytest.approx(ece, abs=1e-12)
