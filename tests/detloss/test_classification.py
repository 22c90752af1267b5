"""Softmax label-smoothing losses against torch's cross entropy, float64 references and the KL/CE relation."""

import math

import pytest
import torch
import torch.nn.functional as F

from detloss.classification import (
    KLDivLabelSmoothing,
    LabelSmoothingCrossEntropy,
    k1_target_entropy,
    label_smoothing_cross_entropy,
)
from detloss.smoothing import k1_targets, prior_targets, uniform_targets


def soft_ce64(logits, q):
    """Float64 reference: -sum_k q_k log softmax(logits)_k per row."""
    return -(q.double() * torch.log_softmax(logits.double(), 1)).sum(1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("eps", [0.0, 0.05, 0.1, 0.3, 0.9])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_matches_torch_label_smoothing(dtype, eps, reduction):
    logits = 3 * torch.randn(13, 6, dtype=dtype)
    target = torch.randint(0, 6, (13,))
    ours = LabelSmoothingCrossEntropy(eps, reduction)(logits, target)
    ref = F.cross_entropy(logits, target, label_smoothing=eps, reduction=reduction)
    assert ours.dtype == dtype and ours.shape == ref.shape
    torch.testing.assert_close(ours, ref, rtol=1e-6, atol=1e-6)


def test_hand_value_and_float64_reference():
    # logits all zero, K = 4: p = 1/4 everywhere, -log p = log 4 for every class, so loss = log 4 for any eps.
    z = torch.zeros(2, 4)
    assert LabelSmoothingCrossEntropy(0.2)(z, torch.tensor([1, 3])).item() == pytest.approx(math.log(4))
    # logits (2, 0, 0, 0), target 0, eps = 0.2: q = (0.85, 0.05, 0.05, 0.05).
    logits = torch.tensor([[2.0, 0.0, 0.0, 0.0]])
    lse = math.log(math.exp(2) + 3)
    hand = 0.85 * (lse - 2) + 3 * 0.05 * lse
    assert LabelSmoothingCrossEntropy(0.2)(logits, torch.tensor([0])).item() == pytest.approx(hand, rel=1e-6)
    x, t = torch.randn(9, 5), torch.randint(0, 5, (9,))
    ref = soft_ce64(x, uniform_targets(t, 5, 0.25, dtype=torch.float64))
    torch.testing.assert_close(LabelSmoothingCrossEntropy(0.25, "none")(x, t).double(), ref, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_prior_matches_soft_target_reference(reduction):
    u = torch.tensor([0.4, 0.3, 0.2, 0.1], dtype=torch.float64)
    x, t = torch.randn(11, 4, dtype=torch.float64), torch.randint(0, 4, (11,))
    loss = LabelSmoothingCrossEntropy(0.2, reduction, prior=u)(x, t)
    ref = soft_ce64(x, prior_targets(t, u, 0.2))
    ref = {"mean": ref.mean(), "sum": ref.sum(), "none": ref}[reduction]
    torch.testing.assert_close(loss, ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(label_smoothing_cross_entropy(x, t, 0.2, reduction, prior=u), loss)
    # the uniform prior reproduces torch's label smoothing
    flat = LabelSmoothingCrossEntropy(0.2, reduction, prior=torch.full((4,), 0.25, dtype=torch.float64))(x, t)
    torch.testing.assert_close(flat, F.cross_entropy(x, t, label_smoothing=0.2, reduction=reduction))


def test_prior_buffer_follows_module():
    m = LabelSmoothingCrossEntropy(0.1, prior=torch.tensor([0.5, 0.25, 0.25]))
    assert "prior" in m.state_dict()
    m2 = LabelSmoothingCrossEntropy(0.1, prior=torch.full((3,), 1 / 3))
    m2.load_state_dict(m.state_dict())
    assert torch.equal(m2.prior, m.prior)
    assert "prior" not in LabelSmoothingCrossEntropy(0.1).state_dict()


def test_half_logits_upcast():
    x, t = torch.randn(8, 5), torch.randint(0, 5, (8,))
    out = LabelSmoothingCrossEntropy(0.1)(x.half(), t)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, F.cross_entropy(x.half().float(), t, label_smoothing=0.1))


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.4])
def test_kl_equals_soft_ce_minus_target_entropy(eps):
    x, t = torch.randn(10, 6, dtype=torch.float64), torch.randint(0, 6, (10,))
    q = k1_targets(t, 6, eps, dtype=torch.float64)
    ce = soft_ce64(x, q)
    h = -(q * torch.log(q.clamp_min(1e-300))).sum(1)  # per-row entropy, the same for every row
    torch.testing.assert_close(h, torch.full_like(h, k1_target_entropy(6, eps)))
    per_sample = KLDivLabelSmoothing(6, eps, "none")(x, t)
    torch.testing.assert_close(per_sample, ce - k1_target_entropy(6, eps), rtol=1e-10, atol=1e-12)
    kl = KLDivLabelSmoothing(6, eps)
    torch.testing.assert_close(kl(x, t), (ce - kl.target_entropy).mean())
    torch.testing.assert_close(KLDivLabelSmoothing(6, eps, "sum")(x, t), (ce - kl.target_entropy).sum())
    # at p = q the divergence is 0
    if eps > 0:
        assert kl(q.log(), t).item() == pytest.approx(0.0, abs=1e-12)


def test_kl_hand_value_and_entropy():
    # K = 4, eps = 0.2: H = -0.8 ln 0.8 - 0.2 ln(0.2/3)
    assert k1_target_entropy(4, 0.2) == pytest.approx(-0.8 * math.log(0.8) - 0.2 * math.log(0.2 / 3))
    assert k1_target_entropy(4, 0.0) == 0.0
    # uniform prediction: KL = sum q ln(q / 0.25) = ln 4 - H
    kl = KLDivLabelSmoothing(4, 0.2)(torch.zeros(3, 4), torch.tensor([0, 1, 2]))
    assert kl.item() == pytest.approx(math.log(4) - k1_target_entropy(4, 0.2), rel=1e-6)


@pytest.mark.filterwarnings("ignore:reduction. 'mean' divides")
def test_plain_mean_divides_by_k_and_is_refused():
    k = 7
    x, t = torch.randn(5, k, dtype=torch.float64), torch.randint(0, k, (5,))
    logp, q = torch.log_softmax(x, 1), k1_targets(t, k, 0.1, dtype=torch.float64)
    batchmean = KLDivLabelSmoothing(k, 0.1)(x, t)
    torch.testing.assert_close(F.kl_div(logp, q, reduction="batchmean"), batchmean)
    torch.testing.assert_close(F.kl_div(logp, q, reduction="mean") * k, batchmean)
    with pytest.raises(ValueError, match="batchmean"):
        KLDivLabelSmoothing(k, 0.1, reduction="mean")


def test_empty_batch_keeps_graph():
    x = torch.zeros(0, 4, requires_grad=True)
    t = torch.zeros(0, dtype=torch.long)
    for loss_fn in (LabelSmoothingCrossEntropy(0.1), KLDivLabelSmoothing(4, 0.1)):
        loss = loss_fn(x, t)
        assert loss.item() == 0.0
        loss.backward()
        assert x.grad is not None and x.grad.shape == (0, 4)


@pytest.mark.parametrize(
    "make",
    [
        lambda: LabelSmoothingCrossEntropy(0.2, "sum"),
        lambda: LabelSmoothingCrossEntropy(0.2, "none", prior=torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64)),
        lambda: KLDivLabelSmoothing(4, 0.2),
        lambda: KLDivLabelSmoothing(4, 0.2, "none"),
    ],
)
def test_gradcheck(make):
    x = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    t = torch.tensor([0, 3, 1])
    loss_fn = make()
    assert torch.autograd.gradcheck(lambda z: loss_fn(z, t), (x,))


def test_gradient_is_softmax_minus_target():
    x, t = torch.randn(4, 5, dtype=torch.float64, requires_grad=True), torch.tensor([0, 1, 4, 2])
    LabelSmoothingCrossEntropy(0.3, "sum")(x, t).backward()
    torch.testing.assert_close(x.grad, torch.softmax(x.detach(), 1) - uniform_targets(t, 5, 0.3, torch.float64))


X, T = torch.randn(3, 4), torch.tensor([0, 1, 2])
BAD = [
    (lambda: LabelSmoothingCrossEntropy(1.0), "eps must be in"),
    (lambda: LabelSmoothingCrossEntropy(-0.01), "eps must be in"),
    (lambda: LabelSmoothingCrossEntropy(0.1, "batchmean"), "unknown reduction"),
    (lambda: LabelSmoothingCrossEntropy(0.1, prior=torch.tensor([0.5, 0.6])), "prior must sum to 1"),
    (lambda: LabelSmoothingCrossEntropy(0.1, prior=torch.tensor([0.5, 0.5]))(X, T), "prior has 2 entries"),
    (lambda: LabelSmoothingCrossEntropy()(X, torch.tensor([0, 1, 4])), r"must be in \[0, 4\)"),
    (lambda: LabelSmoothingCrossEntropy()(X, torch.tensor([0, 1])), "target has 2 entries but logits have 3"),
    (lambda: LabelSmoothingCrossEntropy()(X, T.float()), "integer class indices"),
    (lambda: LabelSmoothingCrossEntropy()(X[0], T), "logits must be 2-D"),
    (lambda: LabelSmoothingCrossEntropy()(X.long(), T), "floating-point"),
    (lambda: LabelSmoothingCrossEntropy()(X[:, :1], T), "K >= 2"),
    (lambda: label_smoothing_cross_entropy(X, T, 0.1, prior=torch.tensor([0.5, 0.5])), "prior has 2 entries"),
    (lambda: label_smoothing_cross_entropy(X, T, 0.1, prior=torch.tensor([0.2, 0.2, 0.2, 0.2])), "sum to 1"),
    (lambda: KLDivLabelSmoothing(1), "num_classes must be an int >= 2"),
    (lambda: KLDivLabelSmoothing(4, 1.5), "eps must be in"),
    (lambda: KLDivLabelSmoothing(5)(X, T), "built for 5"),
]


@pytest.mark.parametrize("call,match", BAD)
def test_bad_inputs(call, match):
    with pytest.raises(ValueError, match=match):
        call()
