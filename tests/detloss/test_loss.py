"""YoloLoss: hand-worked values, darknet presets, numerics, gradients and input validation."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from detloss import LossConfig, YoloLoss

ANCHORS3 = [[10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119], [116, 90, 156, 198, 373, 326]]
ANCHORS2 = [[10, 14, 23, 27, 37, 58], [81, 82, 135, 169, 344, 319]]


def test_hand_worked_single_level():
    """One level (stride 8, 8x8 grid, 64 px image), one anchor (16x16 px = 2x2 cells), nc = 2, eps = 0.1.

    Target centred at cell (3, 2) + (0.5, 0.5), size 2x2 cells == the anchor, class 0. With the cell's box logits 0
    the decode gives xy = 2*0.5 - 0.5 = 0.5 and wh = (2*0.5)^2 * 2 = 2: a perfect box, CIoU = 1, box loss 0.
    Frac exactly .5 adds no neighbour, so one positive. Its objectness logit is 2 (target 1), every other cell 0
    (target 0): lobj = (log(1 + e^-2) + 63 log 2) / 64, weighted by balance 4.0. Class logits (1, -1), targets
    (0.95, 0.05): both terms equal -(0.95 log s(1) + 0.05 log s(-1)).
    """
    loss = YoloLoss([[16, 16]], [8], 2, LossConfig(label_smoothing=0.1, balance=(4.0,)))
    p = torch.zeros(1, 1, 8, 8, 7)
    p[0, 0, 2, 3, 4] = 2.0
    p[0, 0, 2, 3, 5:] = torch.tensor([1.0, -1.0])
    targets = torch.tensor([[0, 0, 3.5 / 8, 2.5 / 8, 2 / 8, 2 / 8]])
    total, items = loss([p], targets)
    lobj = (math.log1p(math.exp(-2)) + 63 * math.log(2)) / 64 * 4.0
    s = torch.sigmoid(torch.tensor(1.0)).item()
    lcls = -(0.95 * math.log(s) + 0.05 * math.log(1 - s))
    assert items[0].item() == pytest.approx(0.0, abs=1e-7)
    assert items[1].item() == pytest.approx(lobj * 1.0, rel=1e-6)
    assert items[2].item() == pytest.approx(lcls * 0.5, rel=1e-6)
    assert total.item() == pytest.approx(lobj + 0.5 * lcls, rel=1e-6)
    assert total.dim() == 0 and items.shape == (3,) and not items.requires_grad


def test_label_smoothing_reaches_class_targets():
    """The class gradient at a positive is sigmoid(x) - target: with zero logits 0.5 - 0.95 and 0.5 - 0.05."""
    loss = YoloLoss([[16, 16]], [8], 3, LossConfig(label_smoothing=0.1, balance=(1.0,), box=0.0, obj=0.0, cls=1.0))
    p = torch.zeros(1, 1, 8, 8, 8, requires_grad=True)
    loss([p], torch.tensor([[0, 1, 3.5 / 8, 2.5 / 8, 2 / 8, 2 / 8]]))[0].backward()
    g = p.grad[0, 0, 2, 3, 5:] * 3  # mean over 1 positive x 3 classes
    torch.testing.assert_close(g, torch.tensor([0.45, -0.45, 0.45]))


def test_uniform_and_prior_kinds():
    p = torch.zeros(1, 1, 8, 8, 9, requires_grad=True)
    tg = torch.tensor([[0, 1, 3.5 / 8, 2.5 / 8, 2 / 8, 2 / 8]])
    base = dict(label_smoothing=0.2, balance=(1.0,), box=0.0, obj=0.0, cls=1.0)
    YoloLoss([[16, 16]], [8], 4, LossConfig(label_smoothing_kind="uniform", **base))([p], tg)[0].backward()
    torch.testing.assert_close(p.grad[0, 0, 2, 3, 5:] * 4, 0.5 - torch.tensor([0.05, 0.85, 0.05, 0.05]))
    p.grad = None
    prior = [0.4, 0.3, 0.2, 0.1]
    YoloLoss([[16, 16]], [8], 4, LossConfig(label_smoothing_kind="prior", **base), class_prior=prior)([p], tg)[
        0
    ].backward()
    torch.testing.assert_close(p.grad[0, 0, 2, 3, 5:] * 4, 0.5 - torch.tensor([0.08, 0.86, 0.04, 0.02]))
    with pytest.raises(ValueError, match="sum to 1"):
        YoloLoss([[16, 16]], [8], 4, LossConfig(label_smoothing_kind="prior"), class_prior=[0.5, 0.5, 0.5, 0.5])
    with pytest.raises(ValueError, match="4 classes"):
        YoloLoss([[16, 16]], [8], 4, LossConfig(label_smoothing_kind="prior"), class_prior=[0.5, 0.5])
    with pytest.raises(ValueError, match="needs class_prior"):
        YoloLoss([[16, 16]], [8], 4, LossConfig(label_smoothing_kind="prior"))


def _batch(bs=2, nc=3, shapes=((16, 16), (8, 8)), seed=0):
    g = torch.Generator().manual_seed(seed)
    preds = [torch.randn(bs, 3, ny, nx, 5 + nc, generator=g) for ny, nx in shapes]
    targets = torch.tensor([[0, 1, 0.5, 0.5, 0.3, 0.2], [1, 2, 0.2, 0.7, 0.1, 0.15], [1, 0, 0.7, 0.3, 0.5, 0.5]])
    return preds, targets


@pytest.mark.parametrize("preset", ["yolov5", "yolov4", "yolov3"])
@pytest.mark.parametrize("kind", ["iou", "giou", "diou", "ciou", "mse"])
def test_presets_and_box_kinds_train(preset, kind):
    cfg = LossConfig.preset(preset, box_kind=kind, scale_x_y=1.05 if preset == "yolov4" else 1.0)
    loss = YoloLoss(ANCHORS2, (16, 32), 3, cfg)
    preds, targets = _batch()
    preds = [p.requires_grad_() for p in preds]
    total, items = loss(preds, targets)
    total.backward()
    assert torch.isfinite(total) and (items >= 0).all() and items[0] > 0
    assert all(torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0 for p in preds)


def test_darknet_ignore_thresh_masks_negatives():
    """A negative cell whose predicted box overlaps a target above ignore_thresh gets no objectness gradient."""
    cfg = LossConfig.preset("yolov3", ignore_thresh=0.5)
    loss = YoloLoss([[[16, 16]]], [8], 1, cfg)
    p = torch.zeros(1, 1, 8, 8, 6)
    p[..., 4] = 3.0  # confident everywhere
    p.requires_grad_()
    # target: 2x2 cells at (3.5, 2.5); the neighbour cell (2, 4) predicts a 2x2 box at (4.5, 2.5): IoU 1/3 < .5,
    # cell (2, 3) is the positive. With exp decode wh = anchor = 2 cells and xy = 0.5 + cell.
    t = torch.tensor([[0, 0, 3.5 / 8, 2.5 / 8, 2 / 8, 2 / 8]])
    loss([p], t)[0].backward()
    g = p.grad[0, 0, :, :, 4]
    assert g[2, 3] < 0 and g[2, 4] > 0  # positive pulled up, low-overlap negative pushed down
    cfg2 = LossConfig.preset("yolov3", ignore_thresh=0.3)  # now IoU 1/3 > .3: the neighbour is ignored
    p.grad = None
    YoloLoss([[[16, 16]]], [8], 1, cfg2)([p], t)[0].backward()
    assert p.grad[0, 0, 2, 4, 4] == 0 and p.grad[0, 0, 2, 3, 4] < 0 and p.grad[0, 0, 6, 6, 4] > 0


def test_gradcheck_loss_float64():
    for preset in ("yolov5", "yolov4"):
        # gr = 0: objectness target 1 at positives (with gr > 0 the target follows the detached IoU, which the
        # numerical Jacobian sees and the analytical one, by design, does not)
        cfg = LossConfig.preset(preset, scale_x_y=1.1, label_smoothing=0.1, check_finite=False, gr=0.0)
        p = (torch.randn(1, 2, 4, 4, 7, dtype=torch.float64) * 0.5).requires_grad_()
        t = torch.tensor([[0, 1, 0.4, 0.6, 0.3, 0.35]], dtype=torch.float64)
        # CIoU's alpha is gradient-free by definition; check DIoU and GIoU, whose gradients are exact
        for kind in ("diou", "giou"):
            l2 = YoloLoss([[[20, 20], [40, 30]]], [8], 2, cfg.replace(box_kind=kind)).double()
            # fast mode compares v^T J u for random u, v (numerical vs analytical): a wrong gradient anywhere
            # still fails it, at a few loss evaluations instead of two per input element
            f = lambda x, l2=l2, t=t: l2([x], t)[0]  # noqa: E731
            assert torch.autograd.gradcheck(f, (p,), eps=1e-6, atol=1e-5, fast_mode=True)


def test_extreme_logits_finite():
    preds, targets = _batch()
    for preset in ("yolov5", "yolov4", "yolov3"):
        loss = YoloLoss(ANCHORS2, (16, 32), 3, LossConfig.preset(preset, scale_x_y=1.05))
        for sign in (1.0, -1.0):
            ps = [(torch.sign(p) * 1e4 * sign).requires_grad_() for p in preds]
            total, _ = loss(ps, targets)
            total.backward()
            assert torch.isfinite(total), preset
            assert all(torch.isfinite(p.grad).all() for p in ps), preset


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_preds(dtype):
    preds, targets = _batch()
    loss = YoloLoss(ANCHORS2, (16, 32), 3, LossConfig(label_smoothing=0.1))
    ref, _ = loss(preds, targets)
    low = [p.to(dtype).requires_grad_() for p in preds]
    out, items = loss(low, targets)
    out.backward()
    assert out.dtype == torch.float32 and items.dtype == torch.float32
    assert out.item() == pytest.approx(ref.item(), rel=2e-2)
    assert all(p.grad.dtype == dtype and torch.isfinite(p.grad.float()).all() for p in low)


def test_under_autocast():
    preds, targets = _batch()
    loss = YoloLoss(ANCHORS2, (16, 32), 3)
    head = torch.nn.Linear(8, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        outs = [head(p) for p in preds]  # bf16 activations, as a head under AMP
        total, _ = loss(outs, targets)
    assert total.dtype == torch.float32 and torch.isfinite(total)
    total.backward()
    ref, _ = loss([head(p).float() for p in preds], targets)
    assert total.item() == pytest.approx(ref.item(), rel=3e-2)


def test_empty_targets_keep_graph():
    preds, _ = _batch()
    preds = [p.requires_grad_() for p in preds]
    total, items = YoloLoss(ANCHORS2, (16, 32), 3)(preds, torch.zeros(0, 6))
    total.backward()
    assert items[0] == 0 and items[2] == 0 and items[1] > 0
    expected = sum(F.binary_cross_entropy_with_logits(p[..., 4], torch.zeros_like(p[..., 4])) * b
                   for p, b in zip(preds, (4.0, 1.0))) * 2  # fmt: skip
    assert total.item() == pytest.approx(expected.item(), rel=1e-6)


def test_non_finite_preds_name_the_level():
    preds, targets = _batch()
    preds[1][0, 0, 0, 0, 4] = float("nan")
    loss = YoloLoss(ANCHORS2, (16, 32), 3)
    with pytest.raises(FloatingPointError, match="level 1"):
        loss(preds, targets)
    fast = YoloLoss(ANCHORS2, (16, 32), 3, LossConfig(check_finite=False))
    assert torch.isnan(fast(preds, targets)[0])


BAD_TARGETS = [
    (torch.zeros(3, 5), "shape"),
    (torch.zeros(3, 6, dtype=torch.long), "floating"),
    (torch.tensor([[0, 1, float("nan"), 0.5, 0.1, 0.1]]), "non-finite"),
    (torch.tensor([[0, 1, 0.5, float("inf"), 0.1, 0.1]]), "non-finite"),
    (torch.tensor([[0, 3, 0.5, 0.5, 0.1, 0.1]]), "class id"),
    (torch.tensor([[0, 1.5, 0.5, 0.5, 0.1, 0.1]]), "class id"),
    (torch.tensor([[0, -1, 0.5, 0.5, 0.1, 0.1]]), "class id"),
    (torch.tensor([[0, 1, 0.5, 0.5, 0.0, 0.1]]), "width or height"),
    (torch.tensor([[0, 1, 0.5, 0.5, 0.1, -0.1]]), "width or height"),
    (torch.tensor([[0, 1, 1.2, 0.5, 0.1, 0.1]]), "outside"),
    (torch.tensor([[0, 1, 0.5, 0.5, 1.5, 0.1]]), "outside"),
    (torch.tensor([[2, 1, 0.5, 0.5, 0.1, 0.1]]), "image index"),
    (torch.tensor([[-1, 1, 0.5, 0.5, 0.1, 0.1]]), "image index"),
    ([[0, 1, 0.5, 0.5, 0.1, 0.1]], "torch.Tensor"),
]


@pytest.mark.parametrize("targets,match", BAD_TARGETS)
def test_bad_targets(targets, match):
    preds, _ = _batch()
    with pytest.raises(ValueError, match=match):
        YoloLoss(ANCHORS2, (16, 32), 3)(preds, targets)


def test_bad_preds_and_construction():
    preds, targets = _batch()
    loss = YoloLoss(ANCHORS2, (16, 32), 3)
    cases = [
        (preds[:1], "2 prediction levels"),
        ([preds[0][0], preds[1]], "5-D"),
        ([preds[0][..., :7], preds[1]], "channels"),
        ([preds[0].long(), preds[1]], "floating"),
        ([preds[0][:, :2], preds[1]], "anchors"),
        ([preds[0], preds[1][:1]], "batch size"),
        (preds[0], "list"),
    ]
    for p, match in cases:
        with pytest.raises(ValueError, match=match):
            loss(p, targets)
    with pytest.raises(ValueError, match="strides"):
        YoloLoss(ANCHORS2, (16,), 3)
    with pytest.raises(ValueError, match="anchors"):
        YoloLoss([[10, 14, 23]], (16,), 3)
    with pytest.raises(ValueError, match="anchors"):
        YoloLoss([[10, 14], [23, 27, 37, 58]], (16, 32), 3)
    with pytest.raises(ValueError, match="num_classes"):
        YoloLoss(ANCHORS2, (16, 32), 0)
    with pytest.raises(ValueError, match="box_kind"):
        LossConfig(box_kind="eiou")
    with pytest.raises(ValueError, match="unknown preset"):
        LossConfig.preset("yolov8")
    with pytest.raises(ValueError, match="label_smoothing"):
        LossConfig(label_smoothing=1.0)
    with pytest.raises(ValueError, match="scale_x_y"):
        YoloLoss(ANCHORS2, (16, 32), 3, LossConfig.preset("yolov4"))  # 3 scales for 2 levels
    with pytest.raises(ValueError, match="stride-16"):
        YoloLoss(ANCHORS2, (8, 32), 3, LossConfig(autobalance=True))
    with pytest.raises(ValueError, match="unknown LossConfig field"):
        LossConfig().replace(boxx=1.0)


def test_devices_must_match():
    """Preds on another device than the targets (the meta device stands in for a GPU here)."""
    preds, targets = _batch()
    with pytest.raises(ValueError, match="same device"):
        YoloLoss(ANCHORS2, (16, 32), 3)([p.to("meta") for p in preds], targets)
    with pytest.raises(ValueError, match="preds\\[1\\] is on"):
        YoloLoss(ANCHORS2, (16, 32), 3)([preds[0], preds[1].to("meta")], targets)


def test_import_detloss_imports_only_torch_and_stdlib():
    """Whatever `import detloss` loads beyond what `import torch` loads must be detloss or the standard library."""

    def modules(stmt: str) -> set[str]:
        code = f"import sys; {stmt}; print(sorted({{m.split('.')[0] for m in sys.modules}}))"
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        return set(eval(out))

    extra = modules("import torch, detloss") - modules("import torch")
    assert extra <= {"detloss"} | set(sys.stdlib_module_names), extra


def test_online_kind_targets_and_epoch_update():
    """Online smoothing in the BCE branch: target cn + (cp - cn) * (alpha*onehot + (1-alpha)*s_y); s_y learns.

    Updated with the BCE redesign (detloss.online_smoothing_bce): the old test pinned the sum-to-1 soft labels
    (target alpha*onehot + (1-alpha)*S[:, y] learned from sum-normalised sigmoid scores), the form that let
    true-positive class scores sink. Now the first epoch is the yolo pair (0.95, 0.05) and the update
    puts each class's mean score on the [cn, cp] scale: s = (p - cn) / (cp - cn), s_y[y] = 1.
    """
    cfg = LossConfig(label_smoothing=0.1, label_smoothing_kind="online", ols_alpha=0.5, balance=(1.0,), box=0.0,
                     obj=0.0, cls=1.0)  # fmt: skip
    loss = YoloLoss([[16, 16]], [8], 3, cfg)
    logits = torch.tensor([0.0, 2.0, 0.0])  # predicts class 1 correctly

    def grad_target() -> torch.Tensor:
        p = torch.zeros(1, 1, 8, 8, 8)
        p[0, 0, 2, 3, 5:] = logits
        p.requires_grad_()
        loss([p], torch.tensor([[0, 1, 3.5 / 8, 2.5 / 8, 2 / 8, 2 / 8]]))[0].backward()
        return torch.sigmoid(logits) - p.grad[0, 0, 2, 3, 5:] * 3  # d(mean BCE)/dz = (sigmoid - t) / 3

    torch.testing.assert_close(grad_target(), torch.tensor([0.05, 0.95, 0.05]))  # epoch 0: the yolo kind
    loss.eval()
    grad_target()  # eval mode does not accumulate
    loss.train()
    loss.next_epoch()
    probs = torch.sigmoid(logits)
    s1 = (probs - 0.05) / 0.9
    s1[1] = 1.0  # [0.5, 1, 0.5]
    torch.testing.assert_close(loss.ols.supervise[:, 1], s1)
    torch.testing.assert_close(loss.ols.supervise[:, 0], torch.tensor([1.0, 0.0, 0.0]))  # no sample: kept
    off = 0.05 + 0.9 * 0.5 * s1[0]
    torch.testing.assert_close(grad_target(), torch.tensor([off, 0.95, off]))  # the true class stays at cp
    state = loss.state_dict()
    assert "ols.supervise" in state
    fresh = YoloLoss([[16, 16]], [8], 3, cfg)
    fresh.load_state_dict(state)
    torch.testing.assert_close(fresh.ols.supervise, loss.ols.supervise)
