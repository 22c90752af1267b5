"""Online label smoothing: a two-epoch case worked by hand, state round trips, the loss formula and DDP sums."""

import io
import math
import os
import socket
from datetime import timedelta
from unittest import mock

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from detloss.online_smoothing import OnlineLabelSmoothing

# Logits = log(p), so softmax(logits) = p exactly enough to reason about by hand.
P = {
    "a": ((0.7, 0.2, 0.1), 0),  # correct (argmax 0)
    "b": ((0.5, 0.3, 0.2), 0),  # correct
    "c": ((0.1, 0.6, 0.3), 1),  # correct
    "d": ((0.6, 0.3, 0.1), 1),  # wrong: argmax 0, not accumulated
    "e": ((0.2, 0.5, 0.3), 2),  # wrong: argmax 1, so class 2 has no correct sample this epoch
    "f": ((0.1, 0.2, 0.7), 2),  # correct
}


def batch(*names, dtype=torch.float32):
    logits = torch.tensor([P[n][0] for n in names], dtype=torch.float64).log().to(dtype)
    return logits, torch.tensor([P[n][1] for n in names])


S0 = torch.tensor([[0.9, 0.05, 0.05], [0.05, 0.9, 0.05], [0.05, 0.05, 0.9]])
# After epoch 1 (a, b, c correct; d, e wrong):
#   column 0 = (a + b) / 2 = ((0.7 + 0.5) / 2, (0.2 + 0.3) / 2, (0.1 + 0.2) / 2) = (0.6, 0.25, 0.15)
#   column 1 = c = (0.1, 0.6, 0.3); column 2 kept from S0 = (0.05, 0.05, 0.9)
S1 = torch.tensor([[0.6, 0.1, 0.05], [0.25, 0.6, 0.05], [0.15, 0.3, 0.9]])
# After epoch 2 (only f correct): column 2 = f = (0.1, 0.2, 0.7), columns 0 and 1 kept from S1.
S2 = torch.tensor([[0.6, 0.1, 0.1], [0.25, 0.6, 0.2], [0.15, 0.3, 0.7]])


def run_epoch1(ols):
    ols(*batch("a", "d"))
    ols(*batch("b", "c", "e"))


def test_initial_matrix():
    ols = OnlineLabelSmoothing(0.5, n_classes=3, smoothing=0.1)
    torch.testing.assert_close(ols.supervise, S0)
    torch.testing.assert_close(
        ols.soft_targets(torch.tensor([2, 0])), torch.tensor([[0.05, 0.05, 0.9], S0[:, 0].tolist()])
    )


def test_two_epochs_by_hand():
    ols = OnlineLabelSmoothing(0.5, n_classes=3, smoothing=0.1)
    run_epoch1(ols)
    assert ols.idx_count.tolist() == [2, 1, 0]
    torch.testing.assert_close(ols.update[:, 0], torch.tensor([1.2, 0.5, 0.3]))
    torch.testing.assert_close(ols.supervise, S0)  # S only changes at next_epoch
    ols.eval()
    ols(*batch("f", "a"))  # eval mode: nothing accumulated
    ols.accumulate(torch.tensor([[0.1, 0.2, 0.7]]), torch.tensor([2]))
    assert ols.idx_count.tolist() == [2, 1, 0]
    ols.train()
    ols.next_epoch()
    torch.testing.assert_close(ols.supervise, S1)
    torch.testing.assert_close(ols.supervise.sum(0), torch.ones(3))
    assert ols.idx_count.tolist() == [0, 0, 0] and not ols.update.any()
    ols(*batch("f", "d"))
    ols.next_epoch()
    torch.testing.assert_close(ols.supervise, S2)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
def test_loss_value_manual_formula(reduction, alpha):
    ols = OnlineLabelSmoothing(alpha, n_classes=3, smoothing=0.1, reduction=reduction)
    run_epoch1(ols)
    ols.next_epoch()
    names = ("a", "d", "e")
    per = []
    for n in names:
        p, y = P[n]
        hard = -math.log(p[y])
        soft = -sum(S1[k, y].item() * math.log(p[k]) for k in range(3))
        per.append(alpha * hard + (1 - alpha) * soft)
    expected = torch.tensor(per)
    expected = {"mean": expected.mean(), "sum": expected.sum(), "none": expected}[reduction]
    torch.testing.assert_close(ols(*batch(*names)), expected, rtol=1e-6, atol=1e-6)


def test_first_epoch_soft_part_is_k1_smoothing():
    # With S0 the soft CE is CE to the eps/(K-1) target; at K = 3, eps = 0.1 torch's label_smoothing needs
    # eps' with 1 - eps' + eps'/3 = 0.9, i.e. eps' = 0.15 (off-class eps'/3 = 0.05).
    x, t = torch.randn(6, 3), torch.randint(0, 3, (6,))
    soft = OnlineLabelSmoothing(0.0, n_classes=3, smoothing=0.1).eval()(x, t)
    torch.testing.assert_close(soft, F.cross_entropy(x, t, label_smoothing=0.15))
    hard = OnlineLabelSmoothing(1.0, n_classes=3, smoothing=0.1).eval()(x, t)
    torch.testing.assert_close(hard, F.cross_entropy(x, t))


def test_state_dict_round_trip_mid_epoch():
    ols = OnlineLabelSmoothing(0.5, n_classes=3, smoothing=0.1)
    run_epoch1(ols)
    ols.next_epoch()
    ols(*batch("f"))  # mid-epoch accumulator
    assert set(ols.state_dict()) == {"supervise", "update", "idx_count"}
    buf = io.BytesIO()
    torch.save(ols.state_dict(), buf)
    buf.seek(0)
    restored = OnlineLabelSmoothing(0.5, n_classes=3, smoothing=0.3)
    restored.load_state_dict(torch.load(buf))
    for name in ("supervise", "update", "idx_count"):
        assert torch.equal(getattr(restored, name), getattr(ols, name))
    x, t = batch("a", "e")
    with torch.no_grad():
        torch.testing.assert_close(restored.eval()(x, t), ols.eval()(x, t))  # eval: a is not accumulated
    restored.train()
    ols.train()
    restored.next_epoch()
    ols.next_epoch()
    torch.testing.assert_close(restored.supervise, S2)
    assert torch.equal(restored.supervise, ols.supervise)


def test_soft_targets_and_sigmoid_accumulate():
    ols = OnlineLabelSmoothing(0.5, n_classes=3, smoothing=0.1)
    # BCE branch: sigmoid probabilities normalised per row before accumulation
    sig = torch.tensor([[0.9, 0.3, 0.3], [0.2, 0.2, 0.6]])
    ols.accumulate(sig / sig.sum(1, keepdim=True), torch.tensor([0, 1]))  # second row wrong (argmax 2)
    assert ols.idx_count.tolist() == [1, 0, 0]
    ols.next_epoch()
    torch.testing.assert_close(ols.supervise[:, 0], torch.tensor([0.6, 0.2, 0.2]))
    q = ols.soft_targets(torch.tensor([0, 0, 2]))
    torch.testing.assert_close(q, torch.tensor([[0.6, 0.2, 0.2], [0.6, 0.2, 0.2], [0.05, 0.05, 0.9]]))


def test_no_gradient_into_matrix_and_gradcheck():
    ols = OnlineLabelSmoothing(0.4, n_classes=3, smoothing=0.1).double()
    run_epoch1(ols)
    ols.next_epoch()
    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    t = torch.tensor([0, 1, 2, 1])
    assert torch.autograd.gradcheck(lambda z: ols(z, t), (x,))
    ols.eval()
    assert torch.autograd.gradcheck(lambda z: ols(z, t), (x,))
    assert not ols.supervise.requires_grad


def test_empty_batch():
    x = torch.zeros(0, 3, requires_grad=True)
    loss = OnlineLabelSmoothing(n_classes=3)(x, torch.zeros(0, dtype=torch.long))
    loss.backward()
    assert loss.item() == 0.0


def test_ddp_all_reduce_mocked():
    ols = OnlineLabelSmoothing(0.5, n_classes=3, smoothing=0.1)
    ols(*batch("a"))

    def fake_all_reduce(t, op=None, group=None):
        t.mul_(2)  # as if another rank held the same accumulator

    with (
        mock.patch.object(dist, "is_initialized", return_value=True),
        mock.patch.object(dist, "get_world_size", return_value=2),
        mock.patch.object(dist, "all_reduce", side_effect=fake_all_reduce) as ar,
    ):
        ols.next_epoch()
    assert ar.call_count == 2
    torch.testing.assert_close(ols.supervise[:, 0], torch.tensor([0.7, 0.2, 0.1]))


def _ddp_worker(rank, port, out_dir):
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2, timeout=timedelta(seconds=20)
    )
    try:
        ols = OnlineLabelSmoothing(0.5, n_classes=3, smoothing=0.1)
        ols(*(batch("a", "d") if rank == 0 else batch("b", "c", "e")))  # epoch 1 split over two ranks
        counts_before = ols.idx_count.clone()
        ols.next_epoch()
        torch.save({"S": ols.supervise, "local_counts": counts_before}, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed not built")
def test_ddp_sums_accumulators_over_two_ranks(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_ddp_worker, args=(port, str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    assert r0["local_counts"].tolist() == [1, 0, 0] and r1["local_counts"].tolist() == [1, 1, 0]
    torch.testing.assert_close(r0["S"], S1)  # the same as one process seeing all samples
    assert torch.equal(r0["S"], r1["S"])


BAD = [
    (lambda: OnlineLabelSmoothing(1.5, n_classes=3), "alpha must be"),
    (lambda: OnlineLabelSmoothing(-0.1, n_classes=3), "alpha must be"),
    (lambda: OnlineLabelSmoothing(0.5, n_classes=1), "n_classes must be an int >= 2"),
    (lambda: OnlineLabelSmoothing(0.5, n_classes=3, smoothing=1.0), "smoothing must be in"),
    (lambda: OnlineLabelSmoothing(0.5, n_classes=3, reduction="batchmean"), "unknown reduction"),
    (lambda: OnlineLabelSmoothing(n_classes=4)(*batch("a")), "built for 4"),
    (lambda: OnlineLabelSmoothing(n_classes=3)(batch("a")[0], torch.tensor([3])), r"in \[0, 3\)"),
    (lambda: OnlineLabelSmoothing(n_classes=3)(batch("a")[0], torch.tensor([0.0])), "integer class indices"),
    (lambda: OnlineLabelSmoothing(n_classes=3)(batch("a")[0][0], torch.tensor([0])), "2-D"),
    (lambda: OnlineLabelSmoothing(n_classes=3).soft_targets(torch.tensor([-1])), r"in \[0, 3\)"),
    (lambda: OnlineLabelSmoothing(n_classes=3).accumulate(torch.ones(2, 4) / 4, torch.tensor([0, 1])), r"\[N, 3\]"),
    (lambda: OnlineLabelSmoothing(n_classes=3).accumulate(torch.ones(2, 3) / 3, torch.tensor([0])), "2 rows"),
]


@pytest.mark.parametrize("call,match", BAD)
def test_bad_inputs(call, match):
    with pytest.raises(ValueError, match=match):
        call()
