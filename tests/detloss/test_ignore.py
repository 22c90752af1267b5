"""Ignore regions in YoloLoss: no objectness loss inside them, everything else exactly as without them."""

from __future__ import annotations

import pytest
import torch

from detloss import LossConfig, YoloLoss, assign_yolov5, split_ignore

ANCHORS2 = [[10, 14, 23, 27, 37, 58], [81, 82, 135, 169, 344, 319]]
STRIDES = (16, 32)
GRIDS = [(8, 8), (4, 4)]  # a 128 px input
NC = 4
IMPLS = [
    {"impl": "reference"},
    {"impl": "fused", "positives": "dense"},
    {"impl": "fused", "positives": "compact"},
]
# one target inside the region (its positives must keep their gradient), one outside
TARGETS = torch.tensor([[0, 1, 0.2, 0.3, 0.15, 0.2], [0, 2, 0.75, 0.7, 0.3, 0.3], [1, 3, 0.5, 0.5, 0.4, 0.4]])
IGNORE = torch.tensor([[0, 0.25, 0.5, 0.5, 1.0]])  # the left half of image 0


def make_preds(bs: int = 2, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(bs, 3, ny, nx, 5 + NC, generator=g) * 0.5 for ny, nx in GRIDS]


def grads(loss_fn, preds, targets, ignore=None, **call):
    ps = [p.clone().requires_grad_(True) for p in preds]
    total, items = loss_fn(ps, targets, ignore) if ignore is not None or call.get("pass_none") else loss_fn(ps, targets)
    total.backward()
    return total.detach(), items, [p.grad for p in ps]


def covered(preds, anchors_grid, ignore, iof=0.5):
    """Per level, BoolTensor[bs, na, ny, nx]: yolov5-decoded box covered >= iof by a region of its image (by hand)."""
    out = []
    for p, anc in zip(preds, anchors_grid):
        bs, na, ny, nx, _ = p.shape
        s = p[..., :4].sigmoid()
        gx = torch.arange(nx).view(1, 1, 1, nx)
        gy = torch.arange(ny).view(1, 1, ny, 1)
        cx, cy = (s[..., 0] * 2 - 0.5 + gx) / nx, (s[..., 1] * 2 - 0.5 + gy) / ny
        w = (s[..., 2] * 2) ** 2 * anc[:, 0].view(1, na, 1, 1) / nx
        h = (s[..., 3] * 2) ** 2 * anc[:, 1].view(1, na, 1, 1) / ny
        mask = torch.zeros(bs, na, ny, nx, dtype=torch.bool)
        for img, rx, ry, rw, rh in ignore.tolist():
            iw = (cx + w / 2).clamp(max=rx + rw / 2) - (cx - w / 2).clamp(min=rx - rw / 2)
            ih = (cy + h / 2).clamp(max=ry + rh / 2) - (cy - h / 2).clamp(min=ry - rh / 2)
            frac = iw.clamp(min=0) * ih.clamp(min=0) / (w * h)
            mask[int(img)] |= frac[int(img)] >= iof
        out.append(mask)
    return out


@pytest.mark.parametrize("kw", IMPLS, ids=lambda k: "-".join(k.values()))
def test_objectness_gradient_zero_inside_unchanged_elsewhere(kw):
    preds = make_preds()
    loss_fn = YoloLoss(ANCHORS2, STRIDES, NC, LossConfig(**kw))
    _, _, g0 = grads(loss_fn, preds, TARGETS)
    _, _, g1 = grads(loss_fn, preds, TARGETS, IGNORE)
    inside = covered(preds, loss_fn.anchors, IGNORE)
    pos_levels = assign_yolov5(TARGETS, loss_fn.anchors, GRIDS)
    n_inside = n_pos_inside = 0
    for a, b, ins, lt in zip(g0, g1, inside, pos_levels):
        pos = torch.zeros_like(ins)
        pos[lt.b, lt.a, lt.gj, lt.gi] = True
        dropped = ins & ~pos
        n_inside += int(dropped.sum())
        n_pos_inside += int((ins & pos).sum())
        assert (b[..., 4][dropped] == 0).all()
        assert torch.equal(b[..., 4][~dropped], a[..., 4][~dropped])  # bit-identical elsewhere
        assert (a[..., 4][dropped] != 0).all()  # they did have a gradient without the region
        assert torch.equal(b[..., :4], a[..., :4]) and torch.equal(b[..., 5:], a[..., 5:])  # box, class untouched
    assert n_inside > 20 and n_pos_inside > 0  # the case covers both kinds of cells


def test_paths_agree_with_ignore():
    preds = make_preds(seed=3)
    res = [grads(YoloLoss(ANCHORS2, STRIDES, NC, LossConfig(**kw)), preds, TARGETS, IGNORE) for kw in IMPLS]
    for total, _items, g in res[1:]:
        torch.testing.assert_close(total, res[0][0])
        for a, b in zip(g, res[0][2]):
            torch.testing.assert_close(a, b)


@pytest.mark.parametrize("kw", IMPLS, ids=lambda k: "-".join(k.values()))
def test_none_and_empty_are_exactly_today(kw):
    preds = make_preds(seed=1)
    loss_fn = YoloLoss(ANCHORS2, STRIDES, NC, LossConfig(**kw))
    base = grads(loss_fn, preds, TARGETS)
    for ig in (None, torch.zeros(0, 5)):
        other = grads(loss_fn, preds, TARGETS, ig, pass_none=True)
        assert torch.equal(other[0], base[0]) and torch.equal(other[1], base[1])
        assert all(torch.equal(a, b) for a, b in zip(other[2], base[2]))


def test_region_over_everything_leaves_only_positives():
    preds = make_preds(seed=2)
    loss_fn = YoloLoss(ANCHORS2, STRIDES, NC, LossConfig(impl="reference", ignore_iof=1e-6))
    whole = torch.tensor([[0, 0.5, 0.5, 1.0, 1.0], [1, 0.5, 0.5, 1.0, 1.0]])
    _, _, g = grads(loss_fn, preds, TARGETS, whole)
    for gl, lt in zip(g, assign_yolov5(TARGETS, loss_fn.anchors, GRIDS)):
        pos = torch.zeros(gl.shape[:4], dtype=torch.bool)
        pos[lt.b, lt.a, lt.gj, lt.gi] = True
        assert (gl[..., 4][~pos] == 0).all() and (gl[..., 4][pos] != 0).all()


def test_ignore_validated():
    preds = make_preds()
    loss_fn = YoloLoss(ANCHORS2, STRIDES, NC)
    with pytest.raises(ValueError, match=r"shape \(m, 5\)"):
        loss_fn(preds, TARGETS, torch.zeros(2, 6))
    with pytest.raises(ValueError, match="invalid ignore regions.*image index"):
        loss_fn(preds, TARGETS, torch.tensor([[2, 0.5, 0.5, 0.2, 0.2]]))
    with pytest.raises(ValueError, match="invalid ignore regions.*outside"):
        loss_fn(preds, TARGETS, torch.tensor([[0, 0.9, 0.5, 0.5, 0.2]]))
    with pytest.raises(ValueError) as e:  # the region's own row and layout, no class or num_classes
        loss_fn(preds, TARGETS, torch.tensor([[0, 0.5, 0.5, 0.2, 0.2], [1, 0.5, 0.5, 0.0, 0.2]]))
    assert str(e.value) == (
        "invalid ignore regions: 1 bad row(s), first row 1 [1.0, 0.5, 0.5, 0.0, 0.20000000298023224]: width or "
        "height <= 0 (batch size 2; rows are [image, cx, cy, w, h] normalised to 0..1)"
    )
    with pytest.raises(ValueError, match="invalid targets"):  # the targets' own message when they are the bad rows
        loss_fn(preds, TARGETS.clone().index_fill_(1, torch.tensor([1]), 9.0), IGNORE)
    with pytest.raises(ValueError, match="ignore_iof"):
        LossConfig(ignore_iof=0.0)
    with pytest.raises(ValueError, match="ignore_iof"):
        LossConfig(ignore_iof=1.5)


def test_split_ignore():
    t = torch.tensor([[0, 1, 0.5, 0.5, 0.2, 0.2], [0, -1, 0.3, 0.3, 0.4, 0.4], [1, 0, 0.5, 0.5, 0.1, 0.1]])
    targets, ignore = split_ignore(t)
    assert torch.equal(targets, t[[0, 2]])
    assert torch.equal(ignore, torch.tensor([[0, 0.3, 0.3, 0.4, 0.4]]))
    targets, ignore = split_ignore(torch.zeros(0, 6))
    assert targets.shape == (0, 6) and ignore.shape == (0, 5)
    with pytest.raises(ValueError, match=r"\(n, 6\)"):
        split_ignore(torch.zeros(3, 5))


def test_dense_path_with_ignore_and_multi_label_has_no_data_dependent_ops():
    """Under FakeTensorMode a host read of a tensor value or a data-dependent shape raises: the region mask and
    the multi-label merge on the dense fused path have none, so they add no host sync on a GPU."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    preds = make_preds()
    targets = torch.cat((TARGETS, TARGETS[:1].clone().index_fill_(1, torch.tensor([1]), 3.0)))  # a 2-class box
    cfg = LossConfig(impl="fused", positives="dense", check_finite=False, validate_targets=False, multi_label=True)
    loss_fn = YoloLoss(ANCHORS2, STRIDES, NC, cfg)
    with FakeTensorMode(allow_non_fake_inputs=True) as mode:
        ps = [mode.from_tensor(p).requires_grad_() for p in preds]
        total, _ = loss_fn(ps, mode.from_tensor(targets), mode.from_tensor(IGNORE))
        total.backward()
        assert ps[0].grad.shape == ps[0].shape


@pytest.mark.cuda
def test_cuda_no_host_sync_with_ignore():
    cfg = LossConfig(check_finite=False, validate_targets=False, multi_label=True)
    loss_fn = YoloLoss(ANCHORS2, STRIDES, NC, cfg).cuda()
    ps = [p.cuda().requires_grad_() for p in make_preds()]
    tg, ig = TARGETS.cuda(), IGNORE.cuda()
    loss_fn(ps, tg, ig)[0].backward()  # warm-up (per-device constants)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        loss_fn(ps, tg, ig)[0].backward()
    finally:
        torch.cuda.set_sync_debug_mode(0)
    ref = YoloLoss(ANCHORS2, STRIDES, NC, cfg.replace(impl="reference"))
    torch.testing.assert_close(loss_fn(ps, tg, ig)[0].cpu(), ref(make_preds(), TARGETS, IGNORE)[0])


@pytest.mark.parametrize("nx", [1, 2, 5, 13, 80])
def test_window_widths_padded_to_few_groups(nx):
    """Each window is padded to the next of 1, 2, 3, 4, 6, 8, 12, ... (at most the row): never narrower than the box's
    own window, at most 1.5x wider (2x from 1 to 2), every box in exactly one group, and few groups."""
    from detloss.ignore import _width_groups

    wx = torch.arange(1, nx + 1).repeat(3)
    groups = _width_groups(wx, nx, windowed=True)
    padded = torch.zeros_like(wx)
    for width, boxes in groups:
        padded[boxes] = width
    assert sorted(torch.cat([b for _, b in groups]).tolist()) == list(range(wx.numel()))
    assert (padded >= wx).all() and (padded <= nx).all()
    assert (padded <= torch.maximum(wx * 3 // 2, torch.full_like(wx, 2))).all()
    assert len(groups) <= 2 * max(nx, 2).bit_length()
    whole = _width_groups(wx, nx, windowed=False)  # every cell of the image: one group of whole rows
    assert len(whole) == 1 and whole[0][0] == nx and whole[0][1].tolist() == list(range(wx.numel()))
