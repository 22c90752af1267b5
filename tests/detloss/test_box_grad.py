"""The closed-form box loss gradient (detloss.box_grad) against autograd over the same expressions, in float64."""

from __future__ import annotations

import pytest
import torch

from detloss import LossConfig
from detloss.assign import LevelTargets
from detloss.box_grad import box_loss_grad, decode_grad, iou_value_grad
from detloss.decode import WH_LOGIT_MAX, decode_wh, decode_xy
from detloss.iou import IOU_KINDS, aligned_iou
from detloss.level import box_terms

F64 = torch.float64


def _pairs() -> tuple[torch.Tensor, torch.Tensor]:
    """cxcywh prediction/target pairs: random overlaps, plus by hand: identical boxes (every min/max a tie), a box
    inside another, edges that touch (intersection side exactly 0), disjoint boxes, a collapsed 0 x 0 prediction,
    equal widths with shifted centres (enclosing-box ties)."""
    gen = torch.Generator().manual_seed(3)
    xy, wh = torch.rand(40, 2, generator=gen, dtype=F64) * 4, torch.rand(40, 2, generator=gen, dtype=F64) * 3 + 0.1
    p = torch.cat((xy, wh), 1)
    t = p + torch.randn(40, 4, generator=gen, dtype=F64) * 0.4
    t[:, 2:] = t[:, 2:].abs() + 0.1
    hand_p = [[1, 1, 2, 2], [1, 1, 1, 1], [0, 0, 2, 2], [0, 0, 1, 1], [1, 1, 0, 0], [0, 0, 2, 2]]
    hand_t = [[1, 1, 2, 2], [1, 1, 3, 2], [2, 0, 2, 2], [5, 5, 1, 1], [1, 1, 1, 1], [0.5, 0, 2, 3]]
    return torch.cat((p, torch.tensor(hand_p, dtype=F64))), torch.cat((t, torch.tensor(hand_t, dtype=F64)))


@pytest.mark.parametrize("kind", IOU_KINDS)
def test_iou_value_and_gradient_match_autograd(kind):
    pred, target = _pairs()
    leaf = pred.clone().requires_grad_()
    ref = aligned_iou(leaf, target, kind)
    (g_ref,) = torch.autograd.grad(ref.sum(), leaf)
    value, iou, g = iou_value_grad(pred, target, kind)
    assert torch.equal(value, ref.detach())  # the same expressions: the same numbers
    assert torch.equal(iou, aligned_iou(pred, target, "iou"))
    torch.testing.assert_close(g, g_ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("style,scale", [("yolov5", 1.0), ("darknet", 1.0), ("darknet", 1.2)])
def test_decode_and_derivative_match_autograd(style, scale):
    gen = torch.Generator().manual_seed(4)
    box = torch.randn(30, 4, generator=gen, dtype=F64) * 3
    box[0, 2:] = WH_LOGIT_MAX + 1.0  # darknet: the exp is capped; no gradient above the cap
    box[1, 2:] = WH_LOGIT_MAX  # at the cap: no gradient either (autograd's clamp passes none at its bound)
    anchors = torch.rand(30, 2, generator=gen, dtype=F64) + 0.5
    pbox, d = decode_grad(box, anchors, style, scale)
    leaf = box.clone().requires_grad_()
    ref = torch.cat((decode_xy(leaf[:, :2], style, scale), decode_wh(leaf[:, 2:], anchors, style)), 1)
    assert torch.equal(pbox, ref.detach())
    for j in range(4):  # element-wise: the Jacobian is diagonal
        (g,) = torch.autograd.grad(ref[:, j].sum(), leaf, retain_graph=True)
        torch.testing.assert_close(d[:, j], g[:, j], rtol=1e-12, atol=1e-12)


def _level(n: int, dense: bool) -> tuple[torch.Tensor, LevelTargets]:
    gen = torch.Generator().manual_seed(n)
    box = torch.randn(n, 4, generator=gen, dtype=F64)
    zeros = torch.zeros(n, dtype=torch.long)
    tbox = torch.cat((torch.rand(n, 2, generator=gen), torch.rand(n, 2, generator=gen) * 3 + 0.2), 1)
    valid = torch.rand(n, generator=gen) > 0.4 if dense else None
    lt = LevelTargets(zeros, zeros, zeros, zeros, tbox, torch.rand(n, 2, generator=gen) + 0.5, zeros, zeros, valid)
    return box, lt


@pytest.mark.parametrize("kind", [*IOU_KINDS, "mse"])
@pytest.mark.parametrize("decode", ["yolov5", "darknet"])
@pytest.mark.parametrize("dense", [False, True], ids=["compact", "dense"])
def test_box_loss_gradient_matches_autograd(kind, decode, dense):
    """The loss, the IoU that sets the objectness targets and d loss / d logits, against autograd over box_terms;
    dense rows: the invalid rows get no gradient and do not count in the mean."""
    cfg = LossConfig(box_kind=kind, decode=decode)
    box, lt = _level(25, dense)
    leaf = box.clone().requires_grad_()
    ref_loss, ref_iou = box_terms(leaf, lt, cfg, 1.1, 400)
    (g_ref,) = torch.autograd.grad(ref_loss, leaf)
    loss, iou, g = box_loss_grad(box, lt, cfg, 1.1, 400)
    torch.testing.assert_close(loss, ref_loss.detach(), rtol=1e-13, atol=0)
    torch.testing.assert_close(iou, ref_iou.detach(), rtol=1e-14, atol=1e-15)  # column-major: vectorised atan, exp
    torch.testing.assert_close(g, g_ref, rtol=1e-11, atol=1e-14)
    if dense:
        assert (g[~lt.valid] == 0).all()


def test_no_positives_give_zero_loss_and_empty_gradient():
    box, lt = _level(0, False)
    loss, iou, g = box_loss_grad(box, lt, LossConfig(), 1.0, 400)
    assert loss.item() == 0.0 and iou.shape == (0,) and g.shape == (0, 4)
