"""Fused loss path (detloss.fused): the reference's numbers (parity list, options, dtypes, gradcheck, parts)."""

from __future__ import annotations

import math

import pytest
import torch
from builders import (
    ANCHORS2,
    ANCHORS3,
    HYP,
    SHAPES3,
    SHAPES3_RECT,
    STRIDES3,
    assert_same,
    edge_targets,
    make_targets,
    preds_for,
    step,
)
from loss_oracle import OracleLoss

from detloss import LossConfig, YoloLoss, assign_darknet, assign_yolov5, scale_yolov5_hyp
from detloss.fused import IGNORED_LOGIT
from detloss.fused_bce import bce_grad, bce_sum, bce_value, class_grad, class_row_losses, softplus_sum
from detloss.terms import bce_terms

pytestmark = pytest.mark.usefixtures("one_thread")

FUSED = [{"impl": "fused", "positives": "dense"}, {"impl": "fused", "positives": "compact"}]
IMPLS = [{"impl": "reference"}, *FUSED]


def parity_case(name: str):
    """(preds, targets, hyp, anchors, strides, nc, overrides) of the yolov5 parity list (test_loss_parity)."""
    gen = torch.Generator().manual_seed(7)
    nc, bs, shapes, anchors, strides, kw = 5, 2, SHAPES3, ANCHORS3, STRIDES3, {}
    hyp = scale_yolov5_hyp(HYP, nl=3, nc=nc, imgsz=640)
    targets = torch.cat((make_targets(bs, 10, nc, gen), edge_targets(bs, nc)))
    if name.startswith("ls"):  # "ls{eps}_g{gamma}", 80 classes as in test_parity_smoothing_and_focal
        eps, gamma = (float(v) for v in name[2:].split("_g"))
        nc, bs = 80, 2
        hyp = scale_yolov5_hyp({**HYP, "label_smoothing": eps, "fl_gamma": gamma}, nl=3, nc=nc, imgsz=640)
        targets = torch.cat((make_targets(bs, 12, nc, gen), edge_targets(bs, nc)))
    elif name == "some_images_empty":
        bs = 3
        targets = make_targets(bs, 10, nc, gen, images=[0, 2])
    elif name == "no_targets":
        targets = torch.zeros(0, 6)
    elif name == "nc1":
        nc = 1
        targets = torch.cat((make_targets(bs, 10, nc, gen), edge_targets(bs, nc)))
    elif name == "rect":
        shapes = SHAPES3_RECT
    elif name == "pw":
        hyp = {**hyp, "cls_pw": 1.7, "obj_pw": 0.6, "fl_gamma": 1.5}
    elif name == "sort_obj_iou":
        kw = {"sort_obj_iou": True}
    elif name == "autobalance":
        kw = {"autobalance": True}
    elif name == "two_levels":
        nc, shapes, anchors, strides = 3, [(26, 26), (13, 13)], ANCHORS2, (16, 32)
        hyp = scale_yolov5_hyp({**HYP, "label_smoothing": 0.1}, nl=2, nc=nc, imgsz=416)
        targets = torch.cat((make_targets(bs, 8, nc, gen), edge_targets(bs, nc)))
    return preds_for(bs, shapes, nc, gen), targets, hyp, anchors, strides, nc, kw


CASES = ["ls0.0_g0.0", "ls0.1_g0.0", "ls0.0_g1.5", "ls0.1_g1.5", "some_images_empty", "no_targets", "nc1", "rect",
         "pw", "sort_obj_iou", "autobalance", "two_levels"]  # fmt: skip


@pytest.mark.parametrize("case", CASES)
def test_parity_list(case):
    """Every config of the parity list: fused (dense and compact positives) and reference against the slow
    oracle (tests/loss_oracle.py), and fused against the reference formulation, all to 1e-5 relative."""
    preds, targets, hyp, anchors, strides, nc, kw = parity_case(case)
    calls = 2 if case == "autobalance" else 1
    oracle = OracleLoss(hyp, anchors, strides, nc, **kw)
    expected = [step(oracle, preds, targets) for _ in range(calls)]
    expected = [(t.reshape(()), i, g) for t, i, g in expected]
    results = {}
    for impl in IMPLS:
        loss = YoloLoss.from_yolov5_hyp(hyp, anchors, strides, nc, **impl, **kw)
        assert loss.fused == (impl["impl"] == "fused")
        results[impl.get("positives", "reference")] = got = [step(loss, preds, targets) for _ in range(calls)]
        for a, b in zip(got, expected):
            assert_same(a, b)
        if kw.get("autobalance"):
            torch.testing.assert_close(loss.balance, torch.tensor(oracle.balance), rtol=1e-6, atol=0)
    for name in ("dense", "compact"):
        for a, b in zip(results[name], results["reference"]):
            assert_same(a, b)


OPTIONS = [
    {"box_kind": "iou"}, {"box_kind": "giou"}, {"box_kind": "diou"},
    {"label_smoothing": 0.2, "label_smoothing_kind": "uniform"},
    {"label_smoothing": 0.2, "label_smoothing_kind": "prior", "fl_gamma": 1.5, "cls_pw": 2.0},
    {"gr": 0.3, "sort_obj_iou": True},
    {"gr": 0.0},
    {"assign": "darknet", "decode": "darknet", "scale_x_y": (1.2, 1.1, 1.05), "iou_thresh": 0.213},
    {"assign": "darknet", "decode": "darknet", "iou_thresh": 1.0, "box_kind": "giou", "gr": 0.5},
]  # fmt: skip


@pytest.mark.parametrize("options", OPTIONS, ids=lambda d: "-".join(f"{k}={v}" for k, v in d.items()))
@pytest.mark.parametrize("fused", FUSED, ids=lambda d: d["positives"])
def test_options_match_reference(options, fused):
    gen = torch.Generator().manual_seed(11)
    nc, bs = 6, 2
    prior = torch.tensor([0.3, 0.25, 0.2, 0.1, 0.1, 0.05]) if options.get("label_smoothing_kind") == "prior" else None
    targets = torch.cat((make_targets(bs, 9, nc, gen), edge_targets(bs, nc)))
    preds = preds_for(bs, [(32, 32), (16, 16), (8, 8)], nc, gen)
    cfg = LossConfig(**options)
    ref = YoloLoss(ANCHORS3, STRIDES3, nc, cfg.replace(impl="reference"), class_prior=prior)
    ours = YoloLoss(ANCHORS3, STRIDES3, nc, cfg.replace(**fused), class_prior=prior)
    assert_same(step(ours, preds, targets), step(ref, preds, targets))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_dtypes_match_reference(dtype):
    gen = torch.Generator().manual_seed(12)
    preds = [p.to(dtype) for p in preds_for(2, [(16, 16), (8, 8)], 4, gen)]
    targets = torch.cat((make_targets(2, 8, 4, gen), edge_targets(2, 4)))
    cfg = LossConfig(label_smoothing=0.1)
    a = step(YoloLoss(ANCHORS2, (16, 32), 4, cfg.replace(impl="fused", positives="dense")), preds, targets)
    b = step(YoloLoss(ANCHORS2, (16, 32), 4, cfg.replace(impl="reference")), preds, targets)
    assert a[0].dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
    assert all(g.dtype == dtype for g in a[2])
    tol = 1e-5 if dtype == torch.float64 else 1e-2  # low precision: the same ops, rounding in another order
    torch.testing.assert_close(a[0], b[0], rtol=tol, atol=tol)
    for ga, gb in zip(a[2], b[2]):
        torch.testing.assert_close(ga.double(), gb.double(), rtol=tol, atol=tol * gb.double().abs().max().item())


def test_under_autocast_matches_reference():
    gen = torch.Generator().manual_seed(13)
    preds = preds_for(2, [(16, 16), (8, 8)], 3, gen)
    targets = make_targets(2, 6, 3, gen)
    head = torch.nn.Linear(8, 8)
    out = {}
    for impl in ("fused", "reference"):
        head.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            total, _ = YoloLoss(ANCHORS2, (16, 32), 3, LossConfig(impl=impl))([head(p) for p in preds], targets)
        total.backward()
        out[impl] = total.detach(), head.weight.grad.clone()
    assert out["fused"][0].dtype == torch.float32
    torch.testing.assert_close(out["fused"][0], out["reference"][0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out["fused"][1], out["reference"][1], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("preset,kind,positives", [("yolov5", "diou", "dense"), ("yolov5", "giou", "compact"),
                                                   ("yolov4", "diou", "dense")])  # fmt: skip
def test_gradcheck_float64(preset, kind, positives):
    # gr = 0: the objectness target does not follow the (detached) IoU; DIoU/GIoU: exact gradients (CIoU's alpha
    # is gradient-free by definition); duplicate positives in a cell exercise the accumulating backward
    t = torch.tensor([[0, 1, 0.4, 0.6, 0.3, 0.35], [0, 0, 0.45, 0.55, 0.3, 0.3]], dtype=torch.float64)
    cfg = LossConfig.preset(preset, scale_x_y=1.1, label_smoothing=0.1, check_finite=False, gr=0.0, box_kind=kind,
                            ignore_thresh=1.0, fl_gamma=1.5 if kind == "giou" else 0.0, obj_pw=1.3, cls_pw=0.7,
                            impl="fused", positives=positives)  # fmt: skip
    loss = YoloLoss([[[20, 20], [40, 30]]], [8], 2, cfg).double()
    p = (torch.randn(1, 2, 4, 4, 7, dtype=torch.float64) * 0.5).requires_grad_()
    assert torch.autograd.gradcheck(lambda x: loss([x], t)[0], (p,), eps=1e-6, atol=1e-5, fast_mode=True)


def test_dense_candidates_are_the_reference_positives_in_order():
    gen = torch.Generator().manual_seed(17)
    targets = torch.cat((make_targets(3, 12, 5, gen), edge_targets(3, 5)))
    anchors = torch.tensor(ANCHORS3, dtype=torch.float32).view(3, 3, 2) / torch.tensor([8.0, 16, 32]).view(3, 1, 1)
    grids = [(80, 80), (40, 40), (20, 20)]
    pairs = [(assign_yolov5(targets, anchors, grids, 4.0, dense=True), assign_yolov5(targets, anchors, grids, 4.0)),
             (assign_darknet(targets, anchors, [8.0, 16.0, 32.0], grids, 0.213, dense=True),
              assign_darknet(targets, anchors, torch.tensor([8.0, 16, 32]), grids, 0.213))]  # fmt: skip
    for dense, ref in pairs:
        for c, lt in zip(dense, ref):
            v = c.valid
            assert int(c.count) == len(lt) > 0 and len(c) > len(lt)
            for name in ("b", "a", "gj", "gi", "tbox", "anchors", "tcls"):
                assert torch.equal(getattr(c, name)[v], getattr(lt, name)), name
            assert torch.isfinite(c.tbox).all() and (c.gj >= 0).all() and (c.gi >= 0).all()


def test_closed_form_bce_matches_autograd():
    x = torch.linspace(-30, 30, 241, dtype=torch.float64).repeat(2, 1).requires_grad_()
    for t in (torch.rand(2, 241, dtype=torch.float64), 0.05):
        for pw, gamma in ((1.0, 0.0), (2.5, 0.0), (0.6, 1.5), (1.0, 2.0)):
            target = t if isinstance(t, torch.Tensor) else torch.full_like(x, t)
            ref = bce_terms(x, target, torch.tensor([pw], dtype=torch.float64), gamma, 0.25)
            (g,) = torch.autograd.grad(ref.sum(), x)
            torch.testing.assert_close(bce_value(x.detach(), t, pw, gamma), ref.detach(), rtol=1e-10, atol=1e-12)
            torch.testing.assert_close(bce_sum(x.detach(), target, pw, gamma), ref.sum().detach(), rtol=1e-10, atol=0)
            torch.testing.assert_close(bce_grad(x.detach(), t, pw, gamma), g, rtol=1e-8, atol=1e-12)
    sat = torch.tensor([-200.0, 200.0])  # sigmoid saturates: m = 0 with gamma < 1 stays finite
    assert torch.isfinite(bce_grad(sat, torch.tensor([0.0, 1.0]), 1.0, 0.5)).all()


def test_softplus_sum_fp32_against_float64():
    """The sigmoid/log form of sum softplus: fp32 within summation error of float64 softplus, over an objectness-like
    grid (most logits near -7, ignored cells at IGNORED_LOGIT, a few large positives) and per row of class logits."""
    gen = torch.Generator().manual_seed(5)
    grid = torch.randn(300_000, generator=gen) - 7.0
    grid[::97] = IGNORED_LOGIT
    grid[::1009] = 40.0
    grid[5] = 0.0
    ref = torch.nn.functional.softplus(grid.double()).sum()
    torch.testing.assert_close(softplus_sum(grid).double(), ref, rtol=2e-6, atol=0)
    assert softplus_sum(torch.full((4,), IGNORED_LOGIT)).item() == 0.0  # exactly: an ignored cell adds nothing
    rows = torch.randn(50, 80, generator=gen) * 6
    ref_rows = torch.nn.functional.softplus(rows.double()).sum(1)
    torch.testing.assert_close(softplus_sum(rows, 1).double(), ref_rows, rtol=1e-6, atol=0)


@pytest.mark.parametrize("cols", [1, 80, 120, 121, 250, 1000])
def test_softplus_sum_log_of_products_never_underflows(cols):
    """The logs are summed as logs of products of up to PROD_GROUP factors in [1/2, 1]: rows of any width, and whole
    tensors with a tail, match float64; all-zero logits (every factor 1/2, the smallest product) give cols * log 2."""
    gen = torch.Generator().manual_seed(cols)
    rows = torch.randn(9, cols, generator=gen) * 4
    rows[0] = 0.0
    ref = torch.nn.functional.softplus(rows.double())
    ulps = 1.2e-7 * cols  # an ulp of 1 an element: log sigmoid(|x|) near 0 (the form's absolute error)
    torch.testing.assert_close(softplus_sum(rows, 1).double(), ref.sum(1), rtol=2e-6, atol=ulps)
    assert softplus_sum(rows, 1)[0].item() == pytest.approx(cols * math.log(2.0), rel=1e-6)
    torch.testing.assert_close(softplus_sum(rows).double(), ref.sum(), rtol=2e-6, atol=9 * ulps)
    half = softplus_sum(rows.half(), 1)  # fp16 logits: the products are taken in fp32 (no fp16 underflow)
    ref_half = torch.nn.functional.softplus(rows.half().double()).sum(1)
    torch.testing.assert_close(half.double(), ref_half, rtol=2e-3, atol=1e-3 * cols)  # fp16 sigmoid: ulp 1e-3


@pytest.mark.parametrize("pw,gamma", [(1.0, 0.0), (1.7, 0.0), (1.0, 1.5)])
@pytest.mark.parametrize("prior", [False, True])
def test_class_rows_match_autograd(pw, gamma, prior):
    """Row sums and gradients of the class BCE without a target tensor, against bce_terms on the full targets."""
    gen = torch.Generator().manual_seed(22)
    x = (torch.randn(7, 5, generator=gen, dtype=torch.float64) * 4).requires_grad_()
    tcls = torch.tensor([0, 4, 2, 2, 1, 3, 0])
    if prior:
        t_other = 0.2 * torch.tensor([0.4, 0.3, 0.1, 0.1, 0.1], dtype=torch.float64)
        t_true = t_other[tcls] + 0.8
    else:
        t_other, t_true = 0.05, 0.95
    full = (t_other * torch.ones(7, 5, dtype=torch.float64)).index_put(
        (torch.arange(7), tcls), torch.as_tensor(t_true, dtype=torch.float64)
    )
    ref = bce_terms(x, full, torch.tensor([pw], dtype=torch.float64), gamma, 0.25).sum(1)
    (g,) = torch.autograd.grad(ref.sum(), x)
    torch.testing.assert_close(class_row_losses(x.detach(), t_other, t_true, tcls, pw, gamma), ref.detach())
    torch.testing.assert_close(class_grad(x.detach(), torch.empty_like(x), t_other, t_true, tcls, pw, gamma), g)
    y = x.detach().clone()
    torch.testing.assert_close(class_grad(y, y, t_other, t_true, tcls, pw, gamma), g)  # in place


def test_every_preset_and_kind_takes_the_closed_form_kernel():
    """No config falls back to autograd: every preset and smoothing kind runs the closed-form kernel by default."""
    assert YoloLoss(ANCHORS2, (16, 32), 3).fused
    assert not YoloLoss(ANCHORS2, (16, 32), 3, LossConfig(impl="reference")).fused
    for cfg in (LossConfig.preset("yolov3"), LossConfig.preset("yolov4"), LossConfig(label_smoothing_kind="online"),
                LossConfig(multi_label=True), LossConfig.preset("yolov4", impl="fused")):  # fmt: skip
        assert YoloLoss(ANCHORS3, STRIDES3, 3, cfg).fused
    assert not hasattr(LossConfig, "fused_unsupported")
    with pytest.raises(ValueError, match="impl"):
        LossConfig(impl="fast")
    with pytest.raises(ValueError, match="positives"):
        LossConfig(positives="sparse")


@pytest.mark.parametrize("positives", ["dense", "compact"])
def test_extreme_logits_finite(positives):
    gen = torch.Generator().manual_seed(20)
    preds = preds_for(2, [(8, 8), (4, 4)], 3, gen)
    targets = make_targets(2, 4, 3, gen)
    for cfg in (LossConfig(), LossConfig(fl_gamma=1.5, cls_pw=2.0, box_kind="giou"), LossConfig.preset("yolov4",
                ignore_thresh=1.0, scale_x_y=1.05)):  # fmt: skip
        loss = YoloLoss(ANCHORS2, (16, 32), 3, cfg.replace(impl="fused", positives=positives))
        for sign in (1.0, -1.0):
            ps = [(torch.sign(p) * 1e4 * sign).requires_grad_() for p in preds]
            total, _ = loss(ps, targets)
            total.backward()
            assert torch.isfinite(total) and all(torch.isfinite(p.grad).all() for p in ps)


def test_checks_keep_working_on_the_dense_path():
    preds = preds_for(2, [(8, 8), (4, 4)], 3, torch.Generator().manual_seed(23))
    targets = make_targets(2, 4, 3, torch.Generator().manual_seed(24))
    loss = YoloLoss(ANCHORS2, (16, 32), 3, LossConfig(positives="dense"))
    preds[1][0, 0, 0, 0, 4] = float("nan")
    with pytest.raises(FloatingPointError, match="level 1"):
        loss(preds, targets)
    with pytest.raises(ValueError, match="class id"):
        loss(preds, torch.tensor([[0, 3, 0.5, 0.5, 0.1, 0.1]]))
