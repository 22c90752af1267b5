"""Online label smoothing for the BCE branch: targets in [cn, cp], the true class at cp, the update rule, state."""

from __future__ import annotations

import pytest
import torch

from detloss import OnlineLabelSmoothing, OnlineLabelSmoothingBCE


def test_first_epoch_is_the_yolo_pair():
    ols = OnlineLabelSmoothingBCE(0.5, n_classes=4, smoothing=0.2)
    t = ols.soft_targets(torch.tensor([2, 0]))
    want = torch.full((2, 4), 0.1)
    want[0, 2] = want[1, 0] = 0.9
    torch.testing.assert_close(t, want)


def test_true_class_target_stays_at_cp_while_the_old_form_sinks():
    """Small case, three epochs of a model whose scores follow its targets plus confusion with class 1.

    The sum-normalised softmax form (the old adaptation) drives the true class's target below cp; the BCE
    form keeps it at cp exactly, every target in [cn, cp].
    """
    k, eps = 3, 0.1
    cp, cn = 0.95, 0.05
    new = OnlineLabelSmoothingBCE(0.5, n_classes=k, smoothing=eps)
    old = OnlineLabelSmoothing(0.5, n_classes=k, smoothing=eps)
    target = torch.zeros(8, dtype=torch.long)
    fixed = torch.tensor([0.9, 0.4, 0.05]).repeat(8, 1)  # class 0, often confused with class 1
    probs = fixed.clone()
    old_diag = []
    for _ in range(3):
        new.accumulate(fixed, target)
        new.next_epoch()
        t = new.soft_targets(target)
        assert torch.all(t[:, 0] >= cp - 1e-6) and torch.all((t >= cn - 1e-6) & (t <= cp + 1e-6))
        old.accumulate(probs / probs.sum(1, keepdim=True), target)
        old.next_epoch()
        old_diag.append(float(0.5 + 0.5 * old.supervise[0, 0]))  # old BCE target of the true class
        probs = torch.cat([torch.full((8, 1), old_diag[-1]), probs[:, 1:]], 1)  # the model learns the old target
    assert old_diag[-1] < cp - 0.1 and old_diag == sorted(old_diag, reverse=True)
    s = (0.4 - cn) / (cp - cn)  # class 1 mean score 0.4 on the [cn, cp] scale
    torch.testing.assert_close(new.supervise[:, 0], torch.tensor([1.0, s, 0.0]))
    torch.testing.assert_close(new.soft_targets(target[:1])[0], torch.tensor([cp, cn + 0.9 * 0.5 * s, cn]))


def test_perfect_fit_decays_the_similarity_and_wrong_rows_are_not_counted():
    ols = OnlineLabelSmoothingBCE(0.5, n_classes=2, smoothing=0.0)
    ols.accumulate(torch.tensor([[0.8, 0.4], [0.3, 0.9]]), torch.tensor([0, 0]))  # row 2 misclassified: skipped
    assert ols.idx_count.tolist() == [1, 0]
    ols.next_epoch()
    assert ols.supervise[1, 0].item() == pytest.approx(0.4)  # eps 0: (cn, cp) = (0, 1), s = mean score
    fitted = ols.soft_targets(torch.tensor([0]))  # [1, 0.2]: a model that fits it exactly
    ols.accumulate(fitted, torch.tensor([0]))
    ols.next_epoch()
    assert ols.supervise[1, 0].item() == pytest.approx(0.2)  # (1 - alpha) * s: decays without confusion
    assert ols.supervise[:, 1].tolist() == [0.0, 1.0]  # class 1 never seen: identity column kept


def test_multi_hot_rows_give_cp_to_every_listed_class():
    ols = OnlineLabelSmoothingBCE(0.5, n_classes=3, smoothing=0.1)
    ols.supervise.copy_(torch.tensor([[1.0, 0.2, 0.6], [0.4, 1.0, 0.0], [0.0, 0.0, 1.0]]))
    t = ols.multi_hot_targets(torch.tensor([[1.0, 1.0, 0.0], [0.0, 1.0, 0.0]]))
    torch.testing.assert_close(t[0], torch.tensor([0.95, 0.95, 0.05]))
    torch.testing.assert_close(t[1], ols.soft_targets(torch.tensor([1]))[0])


def test_eval_mode_state_dict_and_bad_input():
    ols = OnlineLabelSmoothingBCE(0.5, n_classes=3)
    ols.eval()
    loss = ols(torch.zeros(2, 3, requires_grad=True), torch.tensor([0, 1]))
    loss.backward()
    assert ols.idx_count.sum() == 0
    ols.train()
    ols(torch.tensor([[3.0, 0.0, 0.0]]), torch.tensor([0]))
    ols.next_epoch()
    fresh = OnlineLabelSmoothingBCE(0.5, n_classes=3)
    fresh.load_state_dict(ols.state_dict())
    torch.testing.assert_close(fresh.supervise, ols.supervise)
    with pytest.raises(ValueError, match="probs must be a Tensor"):
        ols.accumulate(torch.zeros(2, 4), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="alpha"):
        OnlineLabelSmoothingBCE(1.5, n_classes=3)


@pytest.mark.parametrize("cls", [OnlineLabelSmoothing, OnlineLabelSmoothingBCE])
def test_shared_base_keeps_checkpoint_keys(cls):
    """Both forms share one base (buffers, checks, all-reduce); a checkpoint written before still loads."""
    from detloss.online_base import OnlineStats

    m = cls(0.5, n_classes=3)
    assert isinstance(m, OnlineStats)
    assert list(m.state_dict()) == ["supervise", "update", "idx_count"]
    old = {"supervise": torch.full((3, 3), 0.25), "update": torch.ones(3, 3), "idx_count": torch.tensor([1, 0, 2])}
    m.load_state_dict(old)  # strict: same keys, shapes and dtypes as before the base class
    m.next_epoch()  # classes 0 and 2 had correct samples: their columns change, class 1 keeps 0.25
    assert torch.equal(m.supervise[:, 1], torch.full((3,), 0.25)) and not torch.equal(
        m.supervise[:, 0], old["supervise"][:, 0]
    )
    assert m.idx_count.tolist() == [0, 0, 0] and m.update.abs().sum() == 0
