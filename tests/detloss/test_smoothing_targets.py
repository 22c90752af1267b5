"""Softmax smoothed-target forms: hand-computed values, invariants, and the input checks."""

import pytest
import torch

from detloss.smoothing import (
    class_prior_from_counts,
    k1_targets,
    prior_targets,
    smooth_BCE,
    smooth_BCE_k,
    uniform_targets,
)

TARGET = torch.tensor([0, 2, 3])
U = torch.tensor([0.4, 0.3, 0.2, 0.1], dtype=torch.float64)


def test_uniform_hand_values():
    # K = 4, eps = 0.2: true 1 - 0.2 + 0.2/4 = 0.85, others 0.2/4 = 0.05.
    q = uniform_targets(TARGET, 4, 0.2, dtype=torch.float64)
    expected = torch.tensor(
        [[0.85, 0.05, 0.05, 0.05], [0.05, 0.05, 0.85, 0.05], [0.05, 0.05, 0.05, 0.85]], dtype=torch.float64
    )
    torch.testing.assert_close(q, expected, rtol=0, atol=1e-12)
    assert q.dtype == torch.float64


def test_k1_hand_values():
    # K = 4, eps = 0.2: true 0.8, others 0.2/3 = 0.0667.
    q = k1_targets(TARGET, 4, 0.2, dtype=torch.float64)
    o = 0.2 / 3
    expected = torch.tensor([[0.8, o, o, o], [o, o, 0.8, o], [o, o, o, 0.8]], dtype=torch.float64)
    torch.testing.assert_close(q, expected, rtol=0, atol=1e-12)
    assert abs(o - 0.0667) < 1e-4


def test_prior_hand_values():
    # eps = 0.2, u = (0.4, 0.3, 0.2, 0.1): off-class eps*u = (0.08, 0.06, 0.04, 0.02); true adds 0.8.
    q = prior_targets(TARGET, U, 0.2)
    expected = torch.tensor(
        [[0.88, 0.06, 0.04, 0.02], [0.08, 0.06, 0.84, 0.02], [0.08, 0.06, 0.04, 0.82]], dtype=torch.float64
    )
    torch.testing.assert_close(q, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.5, 0.9])
def test_rows_sum_to_one_and_uniform_prior_is_uniform(eps):
    t = torch.randint(0, 7, (20,))
    for q in (uniform_targets(t, 7, eps), k1_targets(t, 7, eps), prior_targets(t, torch.full((7,), 1 / 7), eps)):
        torch.testing.assert_close(q.sum(1), torch.ones(20))
        assert torch.equal(q.argmax(1), t) or eps >= 0.5
    torch.testing.assert_close(prior_targets(t, torch.full((7,), 1 / 7), eps), uniform_targets(t, 7, eps))


def test_eps_zero_is_onehot_and_k2_conventions():
    t = torch.tensor([1, 0])
    assert torch.equal(uniform_targets(t, 3, 0.0), torch.nn.functional.one_hot(t, 3).float())
    assert torch.equal(k1_targets(t, 3, 0.0), torch.nn.functional.one_hot(t, 3).float())
    # At K = 2 YOLO's (1 - eps/2, eps/2) equals softmax's (1 - eps + eps/2, eps/2); the k1 form gives (1 - eps, eps).
    cp, cn = smooth_BCE(0.2)
    assert uniform_targets(t, 2, 0.2)[0].tolist() == pytest.approx([cn, cp])
    assert smooth_BCE_k(0.2, 2) == pytest.approx((cp, cn))
    assert k1_targets(t, 2, 0.2)[0].tolist() == pytest.approx([0.2, 0.8])


def test_empty_target():
    t = torch.zeros(0, dtype=torch.long)
    assert uniform_targets(t, 3, 0.1).shape == (0, 3)
    assert prior_targets(t, torch.tensor([0.5, 0.5]), 0.1).shape == (0, 2)


def test_integer_dtypes_accepted():
    q = uniform_targets(torch.tensor([1, 2], dtype=torch.int32), 3, 0.3)
    torch.testing.assert_close(q, uniform_targets(torch.tensor([1, 2]), 3, 0.3))


def test_class_prior_from_counts():
    torch.testing.assert_close(class_prior_from_counts([40, 30, 20, 10]), U.float())
    u = class_prior_from_counts(torch.tensor([3, 0, 1]))
    torch.testing.assert_close(u, torch.tensor([0.75, 0.0, 0.25]))
    # Laplace floor: (c + 1) / (4 + 3) keeps every class above zero.
    u1 = class_prior_from_counts(torch.tensor([3, 0, 1]), pseudo_count=1.0)
    torch.testing.assert_close(u1, torch.tensor([4 / 7, 1 / 7, 2 / 7]))
    assert class_prior_from_counts(torch.tensor([1.0, 3.0], dtype=torch.float64)).dtype == torch.float64
    torch.testing.assert_close(class_prior_from_counts([0, 0], pseudo_count=0.5), torch.tensor([0.5, 0.5]))


BAD = [
    (lambda: uniform_targets(TARGET, 4, 1.0), "eps must be in"),
    (lambda: uniform_targets(TARGET, 4, -0.1), "eps must be in"),
    (lambda: k1_targets(TARGET, 4, float("nan")), "finite"),
    (lambda: uniform_targets(torch.tensor([0]), 1, 0.1), "num_classes must be an int >= 2"),
    (lambda: k1_targets(torch.tensor([0]), 2.0, 0.1), "num_classes must be an int >= 2"),
    (lambda: uniform_targets(torch.tensor([0, 4]), 4, 0.1), r"target class indices must be in \[0, 4\)"),
    (lambda: k1_targets(torch.tensor([-1, 0]), 4, 0.1), r"in \[0, 4\), got values in \[-1, 0\]"),
    (lambda: uniform_targets(torch.tensor([0.0, 1.0]), 4, 0.1), "integer class indices"),
    (lambda: uniform_targets(torch.tensor([True]), 4, 0.1), "integer class indices"),
    (lambda: uniform_targets(torch.tensor([[0, 1]]), 4, 0.1), "1-D"),
    (lambda: prior_targets(TARGET, U[:3] / U[:3].sum(), 0.1), r"target class indices must be in \[0, 3\)"),
    (lambda: prior_targets(TARGET, torch.tensor([0.5, 0.3, 0.1, 0.05]), 0.1), "prior must sum to 1"),
    (lambda: prior_targets(TARGET, torch.tensor([0.6, 0.6, -0.1, -0.1]), 0.1), "non-negative"),
    (lambda: prior_targets(TARGET, torch.tensor([1, 0, 0, 0]), 0.1), "floating-point"),
    (lambda: prior_targets(TARGET, torch.tensor([1.0]), 0.1), "K >= 2"),
    (lambda: prior_targets(TARGET, torch.tensor([float("nan"), 1.0]), 0.1), "non-finite"),
    (lambda: class_prior_from_counts([0, 0, 0]), "all zero"),
    (lambda: class_prior_from_counts([1, -1, 3]), "non-negative"),
    (lambda: class_prior_from_counts([5]), "K >= 2"),
    (lambda: class_prior_from_counts([1, 2], pseudo_count=-1), "pseudo_count"),
]


@pytest.mark.parametrize("call,match", BAD)
def test_bad_inputs(call, match):
    with pytest.raises(ValueError, match=match):
        call()
