"""Multi-label boxes: rows with one box and several classes are one positive with a multi-hot class target."""

from __future__ import annotations

import pytest
import torch

from detloss import LossConfig, YoloLoss, smooth_BCE, smooth_BCE_k
from detloss.multilabel import merge_rows

ANCHORS2 = [[10, 14, 23, 27, 37, 58], [81, 82, 135, 169, 344, 319]]
STRIDES = (16, 32)
GRIDS = [(8, 8), (4, 4)]
NC = 5
IMPLS = [
    {"impl": "reference"},
    {"impl": "fused", "positives": "dense"},
    {"impl": "fused", "positives": "compact"},
]
PRIOR = torch.tensor([0.4, 0.1, 0.2, 0.2, 0.1])
BOX = [0.4, 0.45, 0.3, 0.35]


def make_preds(seed: int = 0, zero_cls: bool = False) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    preds = [torch.randn(2, 3, ny, nx, 5 + NC, generator=g) * 0.5 for ny, nx in GRIDS]
    if zero_cls:
        for p in preds:
            p[..., 5:] = 0.0
    return preds


def run(loss_fn, preds, targets):
    ps = [p.clone().requires_grad_(True) for p in preds]
    total, items = loss_fn(ps, targets)
    total.backward()
    return total.detach(), items, [p.grad for p in ps]


def make_loss(kind: str, impl: dict, multi_label: bool, eps: float = 0.1) -> YoloLoss:
    cfg = LossConfig(label_smoothing=eps, label_smoothing_kind=kind, multi_label=multi_label, **impl)
    return YoloLoss(ANCHORS2, STRIDES, NC, cfg, class_prior=PRIOR if kind == "prior" else None)


def expected_targets(kind: str, eps: float, classes: list[int]) -> torch.Tensor:
    if kind == "prior":
        t = eps * PRIOR.clone()
        t[classes] += 1 - eps
        return t
    cp, cn = smooth_BCE(eps) if kind == "yolo" else smooth_BCE_k(eps, NC)
    t = torch.full((NC,), cn)
    t[classes] = cp
    return t


CASES = [(k, i) for k in ("yolo", "uniform", "prior") for i in IMPLS] + [("online", {"impl": "reference"})]


@pytest.mark.parametrize("kind, impl", CASES, ids=lambda v: v if isinstance(v, str) else "-".join(v.values()))
def test_same_box_two_classes_is_one_positive_with_multi_hot_target(kind, impl):
    eps = 0.1
    preds = make_preds(zero_cls=True)
    two = torch.tensor([[0, 1, *BOX], [0, 3, *BOX]])
    ml = make_loss(kind, impl, True, eps)
    ml.eval()  # online: no soft-label update, so S is its initial matrix
    _, _, g = run(ml, preds, two)
    _, _, g_one = run(make_loss(kind, impl, True, eps), preds, two[:1])
    want = expected_targets(kind, eps, [1, 3])
    if kind == "online":  # BCE online smoothing starts as the yolo pair; every listed class gets cp
        want = expected_targets("yolo", eps, [1, 3])
    n_pos = 0
    for gl, go in zip(g, g_one):
        # box and objectness: counted once (not twice); equal up to the last bit, as the two runs have a different
        # number of rows (dense) and so a different split between vectorised and scalar code of the same element
        torch.testing.assert_close(gl[..., :5], go[..., :5], rtol=1e-6, atol=1e-9)
        rows = gl[..., 5:].reshape(-1, NC)
        hit = rows.abs().sum(1) > 0
        n_pos += int(hit.sum())
        # BCE at logit 0: d/dx = sigmoid(0) - t = 0.5 - t, times one positive scale per row
        scale = rows[hit] / (0.5 - want)
        torch.testing.assert_close(scale, scale[:, :1].expand_as(scale))
    assert n_pos > 0


@pytest.mark.parametrize("kind, impl", CASES, ids=lambda v: v if isinstance(v, str) else "-".join(v.values()))
def test_agrees_with_single_label_without_shared_boxes(kind, impl):
    g = torch.Generator().manual_seed(5)
    n = 12
    targets = torch.cat(
        (torch.randint(0, 2, (n, 1), generator=g).float(), torch.randint(0, NC, (n, 1), generator=g).float(),
         torch.rand(n, 2, generator=g) * 0.5 + 0.25, torch.rand(n, 2, generator=g) * 0.4 + 0.05), 1
    )  # fmt: skip
    preds = make_preds(seed=2)
    single, multi = make_loss(kind, impl, False), make_loss(kind, impl, True)
    a, b = run(single, preds, targets), run(multi, preds, targets)
    torch.testing.assert_close(b[0], a[0])
    for x, y in zip(b[2], a[2]):
        torch.testing.assert_close(x, y)
    if kind == "online":
        single.next_epoch()
        multi.next_epoch()
        torch.testing.assert_close(multi.ols.supervise, single.ols.supervise)


def test_paths_agree_on_multi_label_rows():
    targets = torch.tensor(
        [[0, 1, *BOX], [0, 3, *BOX], [0, 3, *BOX], [1, 0, 0.6, 0.6, 0.2, 0.3], [1, 2, 0.3, 0.3, 0.1, 0.1]]
    )
    preds = make_preds(seed=4)
    res = [run(make_loss("yolo", kw, True), preds, targets) for kw in IMPLS]
    for total, _, gr in res[1:]:
        torch.testing.assert_close(total, res[0][0])
        for x, y in zip(gr, res[0][2]):
            torch.testing.assert_close(x, y)


def test_merge_rows_tolerance_and_images():
    t = torch.tensor(
        [
            [0, 1, 0.5, 0.5, 0.2, 0.2],
            [0, 2, 0.5 + 5e-6, 0.5, 0.2, 0.2],
            [1, 2, 0.5, 0.5, 0.2, 0.2],
            [0, 0, 0.5, 0.5, 0.2, 0.21],
        ]
    )
    m = merge_rows(t, 3)
    assert m.first.tolist() == [True, False, True, True]  # within 1e-5: merged; other image / other box: not
    assert m.multi_hot[0].tolist() == [0, 1, 1] and m.multi_hot[2].tolist() == [0, 0, 1]
    assert m.targets[:, 1].tolist() == [0, 1, 2, 3]
    assert merge_rows(torch.zeros(0, 6), 3).first.shape == (0,)
    with pytest.raises(ValueError, match="multi_label"):
        LossConfig(multi_label=1)


def test_evaluation_counts_both_classes_ground_truth(tmp_path):
    """A box listed with classes 1 and 3: two ground truths; a detection of each class matches its own."""
    import cv2
    import numpy as np

    from data.datasets import YoloDataset
    from tools.evaluation import EvalConfig
    from tools.evaluation.evaluate import evaluate_results
    from tools.inference.datasets import ground_truth_from_dataset

    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    cv2.imwrite(str(tmp_path / "images" / "a.png"), np.full((100, 100, 3), 90, np.uint8))
    # the same box twice (classes 1, 3), one ignore region (class -1), one other box
    (tmp_path / "labels" / "a.txt").write_text(
        "1 0.3 0.3 0.2 0.2\n3 0.3 0.3 0.2 0.2\n-1 0.75 0.75 0.3 0.3\n0 0.7 0.2 0.2 0.2\n"
    )
    ds = YoloDataset(tmp_path / "images", imgsz=64, names=list("abcd"))
    gt = ground_truth_from_dataset(ds)
    plain = [a for a in gt["annotations"] if not a["iscrowd"]]
    assert sorted(a["category_id"] for a in plain) == [0, 1, 3]
    crowd = [a for a in gt["annotations"] if a["iscrowd"]]
    assert sorted(a["category_id"] for a in crowd) == [0, 1, 2, 3]  # the ignore region, for every class
    box = [20.0, 20.0, 20.0, 20.0]
    dets = [{"image_id": 0, "category_id": c, "bbox": box, "score": 0.9} for c in (1, 3)]
    dets.append({"image_id": 0, "category_id": 0, "bbox": [60.0, 10.0, 20.0, 20.0], "score": 0.8})
    dets.append({"image_id": 0, "category_id": 2, "bbox": [65.0, 65.0, 15.0, 15.0], "score": 0.7})  # in the region
    res = evaluate_results(gt, dets, EvalConfig(backend="pycocotools"))
    inst = {c["category_id"]: c["instances"] for c in res.coco.per_class}
    assert inst == {0: 1, 1: 1, 2: 0, 3: 1}
    ap50 = {c["category_id"]: c["ap50"] for c in res.coco.per_class}
    assert ap50[1] == pytest.approx(1.0) and ap50[3] == pytest.approx(1.0) and ap50[0] == pytest.approx(1.0)
