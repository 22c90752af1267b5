"""IoU family: hand-worked values, gradients in float64, properties (hypothesis), autocast."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from detloss import aligned_iou, box_convert, box_iou, iou_loss, wh_iou

KINDS = ("iou", "giou", "diou", "ciou")


def t(*rows):
    return torch.tensor(rows, dtype=torch.float64)


@pytest.mark.parametrize("kind", KINDS)
def test_identical_boxes_give_one(kind):
    b = t([0.0, 0.0, 2.0, 3.0], [1.0, 1.0, 5.0, 2.0])
    torch.testing.assert_close(aligned_iou(b, b, kind, fmt="xyxy"), torch.ones(2, dtype=torch.float64))
    assert iou_loss(b, b, kind, fmt="xyxy").item() == pytest.approx(0.0, abs=1e-6)


def test_hand_worked_values():
    big, quarter = t([0.0, 0.0, 2.0, 2.0]), t([0.0, 0.0, 1.0, 1.0])
    # quarter box: inter 1, union 4; enclosing box == big, so GIoU == IoU
    assert aligned_iou(big, quarter, "iou", "xyxy").item() == pytest.approx(0.25)
    assert aligned_iou(big, quarter, "giou", "xyxy").item() == pytest.approx(0.25)
    # DIoU: centres (1,1) and (.5,.5): rho^2 = 0.5, enclosing diagonal^2 = 8 -> 0.25 - 1/16
    assert aligned_iou(big, quarter, "diou", "xyxy").item() == pytest.approx(0.1875)
    # side by side: IoU 0, enclosing area 2 == union -> GIoU 0, loss 1; rho^2 = 1, c^2 = 5 -> DIoU -0.2
    a, b = t([0.0, 0.0, 1.0, 1.0]), t([1.0, 0.0, 2.0, 1.0])
    assert aligned_iou(a, b, "giou", "xyxy").item() == pytest.approx(0.0, abs=1e-7)
    assert iou_loss(a, b, "giou", "xyxy").item() == pytest.approx(1.0, abs=1e-7)
    assert aligned_iou(a, b, "diou", "xyxy").item() == pytest.approx(-0.2)
    assert aligned_iou(a, b, "ciou", "xyxy").item() == pytest.approx(-0.2)  # same aspect: v = 0
    # one box gap: enclosing 3, union 2 -> GIoU -1/3
    assert aligned_iou(a, t([2.0, 0.0, 3.0, 1.0]), "giou", "xyxy").item() == pytest.approx(-1 / 3)
    # CIoU with different aspect: 2x1 vs 1x2 at the origin. IoU 1/3, rho^2 = .5, c^2 = 8,
    # v = 4/pi^2 (atan 2 - atan .5)^2, alpha = v / (v - IoU + 1)
    v = 4 / math.pi**2 * (math.atan(2.0) - math.atan(0.5)) ** 2
    expect = 1 / 3 - 0.5 / 8 - v * v / (v - 1 / 3 + 1)
    got = aligned_iou(t([0.0, 0.0, 2.0, 1.0]), t([0.0, 0.0, 1.0, 2.0]), "ciou", "xyxy").item()
    assert got == pytest.approx(expect, rel=1e-6)
    assert got == pytest.approx(0.237081, abs=1e-5)


def test_cxcywh_matches_xyxy():
    g = torch.Generator().manual_seed(0)
    b1 = torch.rand(50, 4, generator=g, dtype=torch.float64) + 0.1
    b2 = torch.rand(50, 4, generator=g, dtype=torch.float64) + 0.1
    for kind in KINDS:
        a = aligned_iou(b1, b2, kind, "cxcywh")
        b = aligned_iou(box_convert(b1, "cxcywh", "xyxy"), box_convert(b2, "cxcywh", "xyxy"), kind, "xyxy")
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("kind", ("iou", "giou", "diou"))
def test_gradcheck(kind):
    g = torch.Generator().manual_seed(1)
    b1 = (torch.rand(6, 4, generator=g, dtype=torch.float64) * 0.5 + 0.3).requires_grad_()
    b2 = (torch.rand(6, 4, generator=g, dtype=torch.float64) * 0.5 + 0.3).requires_grad_()
    assert torch.autograd.gradcheck(lambda x, y: aligned_iou(x, y, kind, "cxcywh"), (b1, b2))


def test_ciou_gradient_treats_alpha_as_constant():
    """CIoU's alpha carries no gradient (yolov5, Zheng et al.): compare with an explicit float64 formula."""
    g = torch.Generator().manual_seed(2)
    b1 = (torch.rand(5, 4, generator=g, dtype=torch.float64) * 0.5 + 0.3).requires_grad_()
    b2 = torch.rand(5, 4, generator=g, dtype=torch.float64) * 0.5 + 0.3
    aligned_iou(b1, b2, "ciou").sum().backward()
    x = b1.detach().clone().requires_grad_()
    iou = aligned_iou(x, b2, "iou")
    diou = aligned_iou(x, b2, "diou")
    v = 4 / math.pi**2 * (torch.atan(b2[:, 2] / (b2[:, 3] + 1e-7)) - torch.atan(x[:, 2] / (x[:, 3] + 1e-7))) ** 2
    alpha = (v / (v - iou + 1 + 1e-7)).detach()
    (diou - alpha * v).sum().backward()
    torch.testing.assert_close(b1.grad, x.grad)


box_st = st.tuples(st.floats(-10, 10), st.floats(-10, 10), st.floats(0.01, 10), st.floats(0.01, 10)).map(
    lambda r: [r[0], r[1], r[2], r[3]]
)


@settings(max_examples=200, deadline=None)
@given(box_st, box_st)
def test_ranges_and_symmetry(a, b):
    x, y = t(a), t(b)  # [1, 4] each
    for kind, lo in (("iou", 0.0), ("giou", -1.0), ("diou", -1.0), ("ciou", -1.5)):
        v1, v2 = aligned_iou(x, y, kind).item(), aligned_iou(y, x, kind).item()
        assert lo - 1e-9 <= v1 <= 1.0 + 1e-9
        assert v1 == pytest.approx(v2, abs=1e-9)
    iou = aligned_iou(x, y, "iou").item()
    assert aligned_iou(x, y, "giou").item() <= iou + 1e-9
    assert aligned_iou(x, y, "diou").item() <= iou + 1e-9
    pair = box_iou(x, y, fmt="cxcywh").item()
    assert pair == pytest.approx(iou, abs=1e-9)


def test_box_iou_pairwise_and_wh_iou():
    a = t([0.0, 0.0, 2.0, 2.0], [10.0, 10.0, 11.0, 11.0])
    b = t([0.0, 0.0, 1.0, 1.0], [1.0, 1.0, 3.0, 3.0], [10.0, 10.0, 11.0, 11.0])
    m = box_iou(a, b)
    assert m.shape == (2, 3)
    torch.testing.assert_close(m, t([0.25, 1 / 7, 0.0], [0.0, 0.0, 1.0]), atol=1e-6, rtol=0)
    torch.testing.assert_close(wh_iou(t([2.0, 2.0]), t([1.0, 1.0], [2.0, 4.0])), t([0.25, 0.5]), atol=1e-6, rtol=0)


def test_low_precision_computed_in_fp32():
    b1 = torch.tensor([[0.5, 0.5, 0.2, 0.3]]).half()
    b2 = torch.tensor([[0.52, 0.5, 0.2, 0.31]]).half()
    out = aligned_iou(b1, b2, "ciou")
    assert out.dtype == torch.float32
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out2 = aligned_iou(b1.float(), b2.float(), "ciou")
    assert out2.dtype == torch.float32
    torch.testing.assert_close(out, out2, rtol=1e-3, atol=1e-3)


def test_bad_arguments():
    b = torch.zeros(2, 4)
    with pytest.raises(ValueError, match="unknown IoU kind"):
        aligned_iou(b, b, "eiou")
    with pytest.raises(ValueError, match="box format"):
        aligned_iou(b, b, "iou", fmt="xywh")
    with pytest.raises(ValueError, match=r"\[\.\.\., 4\]"):
        aligned_iou(torch.zeros(2, 3), b)
    with pytest.raises(ValueError, match="reduction"):
        iou_loss(b, b, reduction="avg")


def test_empty_keeps_graph():
    x = torch.zeros(0, 4, requires_grad=True)
    loss = iou_loss(x, torch.zeros(0, 4))
    loss.backward()
    assert loss.item() == 0.0 and x.grad is not None
