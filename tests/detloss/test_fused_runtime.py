"""Fused loss path at run time: gradient memory reuse and aliasing, head layouts, compile, no host syncs, bench."""

from __future__ import annotations

import copy
import time

import pytest
import torch
from builders import ANCHORS2, ANCHORS3, SHAPES3, STRIDES3, assert_same, edge_targets, make_targets, preds_for, step

from detloss import LossConfig, YoloLoss
from detloss.fused import ROWS_KEY, head_view

pytestmark = pytest.mark.usefixtures("one_thread")


def test_kept_leaf_grad_is_never_overwritten():
    """Step 1's .grad, kept by the caller, must survive step 2; with .grad dropped, the memory is reused."""
    gen = torch.Generator().manual_seed(14)
    loss = YoloLoss(ANCHORS2, (16, 32), 3)
    assert loss.fused
    p = [x.requires_grad_() for x in preds_for(2, [(16, 16), (8, 8)], 3, gen)]
    t1, t2 = make_targets(2, 5, 3, gen), make_targets(2, 5, 3, gen)
    loss(p, t1)[0].backward()
    kept = [x.grad for x in p]
    saved = [g.clone() for g in kept]
    for x in p:
        x.grad = None  # as zero_grad(set_to_none=True), but the caller still holds `kept`
    loss(p, t2)[0].backward()
    for g, s, x in zip(kept, saved, p):
        assert torch.equal(g, s)
        assert x.grad.data_ptr() != g.data_ptr() and not torch.equal(x.grad, g)
    ptrs = [x.grad.data_ptr() for x in p]
    del kept, saved
    for x in p:
        x.grad = None
    loss(p, t1)[0].backward()
    assert [x.grad.data_ptr() for x in p] == ptrs  # nothing held it: reused
    ref = YoloLoss(ANCHORS2, (16, 32), 3, LossConfig(impl="reference"))
    q = [x.detach().clone().requires_grad_() for x in p]
    ref(q, t1)[0].backward()
    for x, y in zip(p, q):
        torch.testing.assert_close(x.grad, y.grad, rtol=1e-5, atol=1e-7)


def test_accumulation_autograd_grad_and_two_calls_in_one_graph():
    gen = torch.Generator().manual_seed(15)
    preds = preds_for(2, [(16, 16), (8, 8)], 3, gen)
    t1, t2 = make_targets(2, 5, 3, gen), make_targets(2, 5, 3, gen)
    out = {}
    for impl in ("fused", "reference"):
        loss = YoloLoss(ANCHORS2, (16, 32), 3, LossConfig(impl=impl))
        p = [x.clone().requires_grad_() for x in preds]
        loss(p, t1)[0].backward()  # .grad kept, the next backward adds into it (zero_grad(set_to_none=False))
        (loss(p, t2)[0] + loss(p, t1)[0]).backward()  # two calls, one graph: gradients summed
        g1 = torch.autograd.grad(loss(p, t1)[0], p)
        g2 = torch.autograd.grad(loss(p, t2)[0], p)  # g1 is held: not overwritten
        out[impl] = [x.grad for x in p], g1, g2
    for a, b in zip(out["fused"], out["reference"]):
        for x, y in zip(a, b):
            torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-6)
    assert not torch.equal(out["fused"][1][0], out["fused"][2][0])


@pytest.mark.parametrize("layout", ["yolov5", "native"])
def test_head_layer_input(layout):
    gen = torch.Generator().manual_seed(16)
    nc, na, bs = 4, 3, 2
    feats = [torch.randn(bs, 6, n, n, generator=gen) for n in (16, 8)]
    targets = make_targets(bs, 6, nc, gen)
    grads = {}
    for impl in ("fused", "reference"):
        torch.manual_seed(0)
        convs = torch.nn.ModuleList(torch.nn.Conv2d(6, na * (5 + nc), 1) for _ in feats)
        loss = YoloLoss(ANCHORS2, (16, 32), nc, LossConfig(impl=impl))
        for _ in range(2):  # the second step reuses the gradient memory
            convs.zero_grad(set_to_none=True)
            outs = [c(f) for c, f in zip(convs, feats)]
            if layout == "native":
                preds = [head_view(o, na) for o in outs]
            else:
                preds = [o.view(bs, na, 5 + nc, *o.shape[2:]).permute(0, 1, 3, 4, 2).contiguous() for o in outs]
            loss(preds, targets)[0].backward()
        grads[impl] = [c.weight.grad for c in convs] + [c.bias.grad for c in convs]
    for a, b in zip(grads["fused"], grads["reference"]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="multiple of na"):
        head_view(torch.zeros(1, 10, 2, 2), 3)


def test_release_buffers_and_copies():
    loss = YoloLoss(ANCHORS2, (16, 32), 3)
    p = [x.requires_grad_() for x in preds_for(1, [(8, 8), (4, 4)], 3, torch.Generator().manual_seed(0))]
    loss(p, make_targets(1, 3, 3, torch.Generator().manual_seed(1)))[0].backward()
    bufs = loss._grad_buffers._bufs  # level gradients under the level index, the positives' rows above ROWS_KEY
    grads = sum(b.untyped_storage().nbytes() for k, (b, _) in bufs.items() if k < ROWS_KEY)
    assert grads == sum(x.numel() * 4 for x in p)
    assert {k // ROWS_KEY for k in bufs} == {0, 1, 2}  # gradients, gathered rows, gradient rows
    assert copy.deepcopy(loss)._grad_buffers.nbytes() == 0
    loss.release_buffers()
    assert loss._grad_buffers.nbytes() == 0


def _compile_case():
    gen = torch.Generator().manual_seed(18)
    preds = preds_for(1, [(8, 8), (4, 4)], 3, gen)
    targets = make_targets(1, 4, 3, gen)
    cfg = LossConfig(impl="fused", positives="dense", check_finite=False, validate_targets=False)
    return YoloLoss(ANCHORS2, (16, 32), 3, cfg), preds, targets


def test_torch_compile_fullgraph():
    """Dense positives, no checks: one graph (no break) under torch.compile; aot_eager keeps it to seconds."""
    loss, preds, targets = _compile_case()
    t0 = time.perf_counter()
    a = step(torch.compile(loss, backend="aot_eager", fullgraph=True), preds, targets)
    if time.perf_counter() - t0 > 20:
        pytest.skip("torch.compile took over 20 s here")
    assert_same(a, step(loss, preds, targets))


def test_dense_path_has_no_data_dependent_ops():
    """Under FakeTensorMode any host read of a tensor value or data-dependent shape raises: the dense path
    (autobalance included) has none, so it has no host sync on a GPU; the compact one selects with nonzero."""
    from torch._subclasses.fake_tensor import DynamicOutputShapeException, FakeTensorMode

    gen = torch.Generator().manual_seed(21)
    preds = preds_for(2, [(8, 8), (4, 4)], 3, gen)
    targets = torch.cat((make_targets(2, 4, 3, gen), edge_targets(2, 3)))
    cfg = LossConfig(impl="fused", check_finite=False, validate_targets=False, autobalance=True)
    for options in ({}, {"sort_obj_iou": True, "label_smoothing": 0.1, "fl_gamma": 1.5},
                    {"assign": "darknet", "decode": "darknet", "iou_thresh": 0.2}):  # fmt: skip
        dense = YoloLoss(ANCHORS2, (16, 32), 3, cfg.replace(positives="dense", **options))
        with FakeTensorMode(allow_non_fake_inputs=True) as mode:
            ps = [mode.from_tensor(p).requires_grad_() for p in preds]
            total, _ = dense(ps, mode.from_tensor(targets))
            total.backward()
            assert ps[0].grad.shape == ps[0].shape
    compact = YoloLoss(ANCHORS2, (16, 32), 3, cfg.replace(positives="compact"))
    with FakeTensorMode(allow_non_fake_inputs=True) as mode, pytest.raises(DynamicOutputShapeException):
        compact([mode.from_tensor(p) for p in preds], mode.from_tensor(targets))


@pytest.mark.cuda
def test_cuda_no_host_sync_and_parity():
    """No sync in forward + backward on CUDA (sync debug mode "error"); the CPU reference's numbers (on CUDA the
    reference's own tobj write is racy where positives share a cell)."""
    gen = torch.Generator().manual_seed(19)
    preds = preds_for(2, SHAPES3, 5, gen)
    targets = torch.cat((make_targets(2, 10, 5, gen), edge_targets(2, 5)))
    cfg = LossConfig(check_finite=False, validate_targets=False, autobalance=True)
    loss = YoloLoss(ANCHORS3, STRIDES3, 5, cfg).cuda()
    assert loss.fused
    ps = [p.cuda().requires_grad_() for p in preds]
    tg = targets.cuda()
    loss(ps, tg)[0].backward()  # warm-up (per-device constants)
    torch.cuda.synchronize()
    for p in ps:
        p.grad = None
    torch.cuda.set_sync_debug_mode("error")
    try:
        total, items = loss(ps, tg)
        total.backward()
    finally:
        torch.cuda.set_sync_debug_mode(0)
    ref = YoloLoss(ANCHORS3, STRIDES3, 5, cfg.replace(impl="reference"))
    ref(preds, targets)  # the same autobalance state
    b = step(ref, preds, targets)
    assert_same((total.cpu(), items.cpu(), [p.grad.cpu() for p in ps]), b)


def test_bench_tool_smoke():
    from tools import bench_loss

    res = bench_loss.main(["--sizes", "1:128:3", "--inputs", "leaf,native", "--reps", "1", "--threads", "1"])
    for r in res.values():
        assert r["ref"] > 0 and r["fused"] > 0 and r["floor"] > 0
        assert 0.9 < r["mem_fused"] < 3 and r["mem_ref"] > 0.9  # at least the gradient itself
