"""GradBuffers: memory reuse when nothing else holds it, and the fallback for a torch without the use count."""

from __future__ import annotations

import torch

from detloss import LossConfig, YoloLoss
from detloss.grad_buffer import GradBuffers

ANCHORS = [[10, 14, 23, 27, 37, 58], [81, 82, 135, 169, 344, 319]]


def _step(loss: YoloLoss, seed: int) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    preds = [torch.randn(2, 3, s, s, 8, generator=gen).requires_grad_() for s in (8, 4)]
    targets = torch.tensor([[0, 1, 0.3, 0.4, 0.2, 0.3], [1, 2, 0.6, 0.5, 0.4, 0.2]])
    loss(preds, targets)[0].backward()
    return [p.grad for p in preds]


def test_reuses_only_unreferenced_memory():
    bufs = GradBuffers()
    like = torch.empty(4, 5)
    a = bufs.get(0, like)
    ptr = a.data_ptr()
    b = bufs.get(0, like)
    assert b.data_ptr() != ptr  # `a` still refers to the first buffer: it must not be handed out again
    del a
    c_ptr = b.data_ptr()
    del b
    assert bufs.get(0, like).data_ptr() == c_ptr  # nothing holds it now: reused


def test_without_storage_use_count_every_buffer_is_fresh(monkeypatch):
    monkeypatch.delattr(torch._C, "_storage_Use_Count")
    bufs = GradBuffers()
    like = torch.empty(4, 5)
    first = bufs.get(0, like)
    assert first.shape == like.shape and bufs.nbytes() == 0  # nothing cached
    kept = first.data_ptr()
    first.fill_(1.0)
    second = bufs.get(0, like)
    assert second.data_ptr() != kept and torch.equal(first, torch.ones(4, 5))
    # the fused loss still gives the reference gradients
    fused = YoloLoss(ANCHORS, (16, 32), 3, LossConfig(impl="fused"))
    ref = YoloLoss(ANCHORS, (16, 32), 3, LossConfig(impl="reference"))
    for g, r in zip(_step(fused, 3), _step(ref, 3)):
        torch.testing.assert_close(g, r, rtol=1e-5, atol=1e-6)
    assert fused._grad_buffers.nbytes() == 0


def test_rows_keep_room_for_a_changing_count():
    """The positives change from step to step: a smaller or slightly larger count reuses the memory (first rows of
    a buffer made a quarter larger), a held view blocks reuse, and a much larger count makes a new buffer."""
    bufs = GradBuffers()
    a = bufs.rows(7, 40, 85, torch.float32, torch.device("cpu"))
    assert a.shape == (40, 85) and a.is_contiguous()
    ptr = a.data_ptr()
    del a
    b = bufs.rows(7, 31, 85, torch.float32, torch.device("cpu"))
    assert b.shape == (31, 85) and b.data_ptr() == ptr
    c = bufs.rows(7, 50, 85, torch.float32, torch.device("cpu"))  # 50 <= 40 + 10, but `b` still holds it
    assert c.data_ptr() != ptr
    del b, c
    assert bufs.rows(7, 50, 85, torch.float32, torch.device("cpu")).data_ptr() != ptr  # now kept: the new one
    big = bufs.rows(7, 500, 85, torch.float32, torch.device("cpu"))
    assert big.shape == (500, 85)


def test_fused_gradients_over_steps_with_different_positives():
    """Consecutive steps whose positives differ in number and place reuse the gradient and rows memory and keep the
    reference gradients: only the last step's rows are zeroed (GradBuffers.dirty), and none of them is left over."""
    fused = YoloLoss(ANCHORS, (16, 32), 3, LossConfig(impl="fused"))
    ref = YoloLoss(ANCHORS, (16, 32), 3, LossConfig(impl="reference"))
    gen = torch.Generator().manual_seed(4)
    ptrs = []
    for n in (6, 2, 5):
        preds = [torch.randn(2, 3, s, s, 8, generator=gen) for s in (8, 4)]
        t = torch.rand(n, 6, generator=gen) * 0.4 + 0.3  # centres in 0.3-0.7, sides 0.3-0.6 (half <= 0.3)
        t[:, 4:] = t[:, 4:] * 0.75
        t[:, 0], t[:, 1] = torch.arange(n) % 2, torch.arange(n) % 3
        grads = []
        for loss in (fused, ref):
            leaves = [p.clone().requires_grad_() for p in preds]
            loss(leaves, t)[0].backward()
            grads.append([p.grad for p in leaves])
        for g, r in zip(*grads):
            torch.testing.assert_close(g, r, rtol=1e-5, atol=1e-6)
        ptrs.append([g.data_ptr() for g in grads[0]])
        del g, r, grads  # nothing of this step's gradients kept: the next step may reuse their memory
    assert ptrs[0] == ptrs[1] == ptrs[2]  # every step wrote into the memory of the first
    assert fused._grad_buffers.nbytes() > 0


def test_marked_rows_come_back_only_for_the_same_untouched_memory():
    """dirty() returns the rows mark() recorded when the buffer handed out is that memory, unwritten since; an
    in-place write (version counter), a fresh buffer or a second call give None (zero all of it)."""
    bufs, like = GradBuffers(), torch.empty(6, 3)
    a = bufs.get(0, like)
    assert bufs.dirty(0, a) is None  # fresh memory: unknown contents
    a.zero_()
    a[2] = 1.0
    bufs.mark(0, a, torch.tensor([2]))
    ptr = a.data_ptr()
    del a
    b = bufs.get(0, like)
    assert b.data_ptr() == ptr and bufs.dirty(0, b).tolist() == [2]
    assert bufs.dirty(0, b) is None  # taken once
    bufs.mark(0, b, torch.tensor([2]))
    b.add_(1.0)  # written in place after the mark: the recorded rows no longer tell where it is non-zero
    del b
    c = bufs.get(0, like)
    assert c.data_ptr() == ptr and bufs.dirty(0, c) is None


def test_in_place_write_into_a_kept_gradient_forces_a_full_zero():
    """A step's gradient changed in place after the loss wrote it (here: +1 everywhere, then dropped): the next step
    reuses the memory but zeroes all of it, and still gives the reference gradients."""
    fused = YoloLoss(ANCHORS, (16, 32), 3, LossConfig(impl="fused"))
    ref = YoloLoss(ANCHORS, (16, 32), 3, LossConfig(impl="reference"))
    grads = _step(fused, 5)
    ptrs = [g.data_ptr() for g in grads]
    torch._foreach_add_(grads, 1.0)
    del grads
    again = _step(fused, 6)
    assert [g.data_ptr() for g in again] == ptrs  # the same memory
    for g, r in zip(again, _step(ref, 6)):
        torch.testing.assert_close(g, r, rtol=1e-5, atol=1e-6)
