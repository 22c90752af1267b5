"""YoloLoss (yolov5 preset / from_yolov5_hyp) against the slow oracle of docs/loss.md (tests/loss_oracle.py)."""

from __future__ import annotations

import copy

import pytest
import torch
from builders import ANCHORS2, ANCHORS3, HYP, SHAPES3, SHAPES3_RECT, edge_targets, make_targets, preds_for
from loss_oracle import OracleLoss

from detloss import LossConfig, YoloLoss, scale_yolov5_hyp


def run_both(preds, targets, hyp, anchors, strides, nc, calls=1, **kw):
    ref = OracleLoss(hyp, anchors, strides, nc, autobalance=kw.get("autobalance", False),
                         sort_obj_iou=kw.get("sort_obj_iou", False))  # fmt: skip
    ours = YoloLoss.from_yolov5_hyp(hyp, anchors, strides, nc, **kw)
    for _ in range(calls):
        p_ref = [p.detach().clone().requires_grad_(True) for p in preds]
        p_our = [p.detach().clone().requires_grad_(True) for p in preds]
        t_ref, i_ref = ref(p_ref, targets.clone())
        t_our, i_our = ours(p_our, targets.clone())
        t_ref.sum().backward()
        t_our.backward()
        torch.testing.assert_close(t_our, t_ref.reshape(()), rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(i_our, i_ref, rtol=1e-5, atol=1e-7)
        for a, b in zip(p_our, p_ref):
            scale = b.grad.abs().max().item()
            torch.testing.assert_close(a.grad, b.grad, rtol=1e-5, atol=1e-5 * scale + 1e-12)
    return ours, ref


@pytest.mark.parametrize("ls", [0.0, 0.1])
@pytest.mark.parametrize("gamma", [0.0, 1.5])
def test_parity_smoothing_and_focal(ls, gamma):
    gen = torch.Generator().manual_seed(1)
    nc, bs = 80, 2
    hyp = scale_yolov5_hyp({**HYP, "label_smoothing": ls, "fl_gamma": gamma}, nl=3, nc=nc, imgsz=640)
    targets = torch.cat((make_targets(bs, 12, nc, gen), edge_targets(bs, nc)))
    run_both(preds_for(bs, SHAPES3, nc, gen), targets, hyp, ANCHORS3, (8, 16, 32), nc)


@pytest.mark.parametrize("case", ["some_images_empty", "no_targets", "nc1", "rect", "pw", "sort_obj_iou"])
def test_parity_cases(case):
    gen = torch.Generator().manual_seed(2)
    nc, bs, shapes, kw = 5, 4, SHAPES3, {}
    hyp = scale_yolov5_hyp(HYP, nl=3, nc=nc, imgsz=640)
    targets = make_targets(bs, 10, nc, gen)
    if case == "some_images_empty":
        targets = make_targets(bs, 10, nc, gen, images=[0, 2])
    elif case == "no_targets":
        targets = torch.zeros(0, 6)
    elif case == "nc1":
        nc = 1
        targets = torch.cat((make_targets(bs, 10, nc, gen), edge_targets(bs, nc)))
    elif case == "rect":
        shapes = SHAPES3_RECT
    elif case == "pw":
        hyp = {**hyp, "cls_pw": 1.7, "obj_pw": 0.6}
    elif case == "sort_obj_iou":
        kw = {"sort_obj_iou": True}
        targets = torch.cat((targets, edge_targets(bs, nc)))
    run_both(preds_for(bs, shapes, nc, gen), targets, hyp, ANCHORS3, (8, 16, 32), nc, **kw)


def test_parity_two_levels():
    gen = torch.Generator().manual_seed(3)
    nc, bs = 3, 2
    hyp = scale_yolov5_hyp({**HYP, "label_smoothing": 0.1}, nl=2, nc=nc, imgsz=416)
    targets = torch.cat((make_targets(bs, 8, nc, gen), edge_targets(bs, nc)))
    run_both(preds_for(bs, [(26, 26), (13, 13)], nc, gen), targets, hyp, ANCHORS2, (16, 32), nc)


def test_parity_autobalance_over_calls():
    gen = torch.Generator().manual_seed(4)
    nc, bs = 4, 2
    hyp = scale_yolov5_hyp(HYP, nl=3, nc=nc, imgsz=640)
    targets = make_targets(bs, 6, nc, gen)
    ours, ref = run_both(preds_for(bs, SHAPES3, nc, gen), targets, hyp, ANCHORS3, (8, 16, 32), nc, calls=3,
                         autobalance=True)  # fmt: skip
    torch.testing.assert_close(ours.balance, torch.tensor(ref.balance, dtype=torch.float32), rtol=1e-6, atol=0)
    assert ours.balance[1].item() == pytest.approx(1.0)  # normalised to the stride-16 level
    assert not torch.allclose(ours.balance, torch.tensor([4.0, 1.0, 0.4]))


def test_hyp_keys_validated():
    with pytest.raises(ValueError, match="unknown yolov5 hyp key"):
        YoloLoss.from_yolov5_hyp({**HYP, "fl_gama": 1.0}, ANCHORS3, (8, 16, 32), 80)
    missing = copy.deepcopy(HYP)
    del missing["box"]
    with pytest.raises(ValueError, match="missing"):
        LossConfig.from_yolov5_hyp(missing)
    cfg = LossConfig.from_yolov5_hyp(HYP)
    assert (cfg.box, cfg.cls, cfg.obj, cfg.anchor_t) == (0.05, 0.5, 1.0, 4.0)


def test_scale_yolov5_hyp():
    h = scale_yolov5_hyp(HYP, nl=2, nc=20, imgsz=320)
    assert h["box"] == pytest.approx(0.05 * 3 / 2)
    assert h["cls"] == pytest.approx(0.5 * 20 / 80 * 3 / 2)
    assert h["obj"] == pytest.approx(1.0 * (320 / 640) ** 2 * 3 / 2)
