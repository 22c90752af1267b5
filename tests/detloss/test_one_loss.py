"""One loss for every preset and kind: the two BCE kernels and the two row layouts agree, and the windowed overlap
mask (darknet ignore_thresh, ignore regions) equals a brute-force pairwise IoU / IoF."""

from __future__ import annotations

import pytest
import torch
from builders import ANCHORS3, STRIDES3, assert_same, edge_targets, make_targets, preds_for, step

from detloss import LossConfig, YoloLoss, box_iou, decode_grid
from detloss.ignore import overlap_mask

pytestmark = pytest.mark.usefixtures("one_thread")

CONFIGS = {
    "yolov4": LossConfig.preset("yolov4"),
    "yolov3": LossConfig.preset("yolov3"),
    "online": LossConfig(label_smoothing=0.1, label_smoothing_kind="online"),
    "yolov4-focal-ml": LossConfig.preset("yolov4", fl_gamma=1.5, multi_label=True, ignore_thresh=0.4),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_kernels_and_layouts_agree(name):
    """Closed form (dense and compact rows) against plain autograd, with ignore_thresh, MSE, online smoothing
    (two training steps: the second uses the learned rows), multi-label and ignore regions."""
    gen = torch.Generator().manual_seed(31)
    nc, bs = 5, 2
    targets = torch.cat((make_targets(bs, 9, nc, gen), edge_targets(bs, nc)))
    targets = torch.cat((targets, targets[:2] * torch.tensor([1, 0, 1, 1, 1, 1]) + torch.tensor([0, 3, 0, 0, 0, 0])))
    preds = preds_for(bs, [(32, 32), (16, 16), (8, 8)], nc, gen)
    ignore = torch.tensor([[0, 0.3, 0.3, 0.2, 0.2], [1, 0.7, 0.6, 0.3, 0.1]])
    cfg = CONFIGS[name]
    results = {}
    for impl in ({"impl": "reference"}, {"impl": "fused", "positives": "dense"}, {"positives": "compact"}):
        loss = YoloLoss(ANCHORS3, STRIDES3, nc, cfg.replace(**impl))
        assert loss.fused == (impl.get("impl") != "reference")
        for _ in range(2):
            out = step(lambda p, t, loss=loss: loss(p, t, ignore), preds, targets)
            loss.next_epoch()
        results[str(impl)] = out
    ref, *others = results.values()
    for other in others:
        assert_same(other, ref)


def brute_force(p, boxes, anchors, decode, scale, measure, thresh, band=0.0):
    """Every prediction against every box of its image, with detloss.box_iou / a plain IoF: the mask of predictions
    whose best overlap passes ``thresh``, and (``band > 0``) of those whose best overlap lies within ``band`` of it,
    where a decode one float rounding apart may decide either way."""
    bs, na, ny, nx, _ = p.shape
    pred = decode_grid(p, anchors, 1.0, decode, scale).view(bs, -1, 4)  # grid units (stride 1)
    best = torch.full((bs, na * ny * nx), -1.0)
    for b in range(bs):
        bx = boxes[boxes[:, 0] == b, 1:] * torch.tensor([nx, ny, nx, ny])
        if not len(bx):
            continue
        if measure == "iou":
            best[b] = box_iou(pred[b], bx, fmt="cxcywh").amax(1)
        else:
            lo = torch.maximum(pred[b, :, None, :2] - pred[b, :, None, 2:] / 2, bx[None, :, :2] - bx[None, :, 2:] / 2)
            hi = torch.minimum(pred[b, :, None, :2] + pred[b, :, None, 2:] / 2, bx[None, :, :2] + bx[None, :, 2:] / 2)
            inter = (hi - lo).clamp(min=0).prod(-1)
            area = pred[b, :, 2:].prod(-1).clamp(min=torch.finfo(torch.float32).tiny)
            best[b] = (inter / area[:, None]).amax(1)
    out = (best > thresh) if measure == "iou" else (best >= thresh)
    near = ((best - thresh).abs() <= band) & (band > 0)
    return out.view(bs, na, ny, nx), near.view(bs, na, ny, nx)


@pytest.mark.parametrize("measure,thresh", [("iou", 0.7), ("iou", 0.5), ("iou", 0.3), ("iou", 0.0),
                                            ("iof", 0.5), ("iof", 0.2), ("iof", 1.0)])  # fmt: skip
@pytest.mark.parametrize("decode,scale", [("darknet", 1.2), ("yolov5", 1.0), ("darknet", 1.0)])
@pytest.mark.parametrize("few", [False, True], ids=["many-boxes", "few-boxes"])
@pytest.mark.parametrize("chunk", [1 << 16, 7], ids=["one-chunk", "many-chunks"])
def test_windowed_overlap_mask_is_exact(measure, thresh, decode, scale, few, chunk, monkeypatch):
    """The window (only the cells a box can reach) loses no hit: windowed == every pair == brute force. Few boxes:
    fewer pairs than cells, so only the pairs' predictions are decoded (read straight from the logits' storage).
    Many chunks: the pairs split in chunks of a few (box, cell, anchor) triples give the same mask. At IoF 1.0 a
    prediction inside a box may go either way (``inter`` and ``area`` are computed two ways, equal up to rounding,
    and a vectorised sigmoid differs from a scalar one in the last bit)."""
    import detloss.ignore

    monkeypatch.setattr(detloss.ignore, "CHUNK_ELEMS", chunk)
    gen = torch.Generator().manual_seed(32)
    p = torch.randn(3, 3, 12, 10, 7, generator=gen) * 1.5
    anchors = torch.tensor([[1.0, 1.5], [2.5, 2.0], [4.0, 5.0]])
    boxes = make_targets(3, 40, 2, gen)[:, [0, 2, 3, 4, 5]]
    pred = decode_grid(p, anchors, 1.0, decode, scale)  # boxes near predictions: overlaps on both sides of thresh
    pick = torch.randint(0, pred[:2].numel() // 4, (60,), generator=gen)
    near = pred[:2].reshape(-1, 4)[pick] * (1 + 0.25 * (torch.rand(60, 4, generator=gen) - 0.5))
    near = near / torch.tensor([10, 12, 10, 12])
    img = torch.div(pick, pred[0].numel() // 4, rounding_mode="floor").float()
    boxes = torch.cat((boxes, torch.cat((img[:, None], near), 1)))
    boxes = boxes[boxes[:, 0] != 2]  # an image without boxes
    if few:
        boxes = boxes[-3:]
        p = p.permute(0, 4, 1, 2, 3).contiguous().permute(0, 2, 3, 4, 1)  # the head's native layout
    band = 1e-4 if thresh == 1.0 else 0.0  # IoF 1.0: a contained box's IoF is 1 up to rounding (corners ~ 10 cells)
    expected, edge = brute_force(p, boxes, anchors, decode, scale, measure, thresh, band)
    assert 0 < int(expected.sum()) < expected.numel() or thresh == 0.0 or few
    for windowed in (True, False):
        got = overlap_mask(p, boxes, anchors, decode, scale, measure, thresh, windowed=windowed)
        assert torch.equal(got | edge, expected | edge), (windowed, int(((got != expected) & ~edge).sum()))


@pytest.mark.parametrize("name", list(CONFIGS))
def test_dense_rows_have_no_data_dependent_ops(name):
    """Dense rows with darknet's ignore_thresh, MSE, online smoothing (training mode) and multi-label: nothing reads a
    device value on the host or has a data-dependent shape (FakeTensorMode raises on either)."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    gen = torch.Generator().manual_seed(33)
    preds = preds_for(2, [(8, 8), (4, 4), (2, 2)], 3, gen)
    targets = torch.cat((make_targets(2, 4, 3, gen), edge_targets(2, 3)))
    cfg = CONFIGS[name].replace(positives="dense", check_finite=False, validate_targets=False)
    loss = YoloLoss(ANCHORS3, STRIDES3, 3, cfg)
    with FakeTensorMode(allow_non_fake_inputs=True) as mode:
        ps = [mode.from_tensor(p).requires_grad_() for p in preds]
        total, _ = loss(ps, mode.from_tensor(targets))
        total.backward()
        assert ps[0].grad.shape == ps[0].shape
