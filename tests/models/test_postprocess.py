"""non_max_suppression: hand-made boxes, options, and equality with a per-image, per-class reference."""

import pytest
import torch
from torchvision.ops import nms

from models import postprocess
from models.postprocess import non_max_suppression

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]


def rows(*dets, nc=2):
    """Build ``Tensor[1, N, 5 + nc]`` from (x1, y1, x2, y2, obj, cls_scores...)."""
    return torch.tensor([list(d) for d in dets], dtype=torch.float32).view(1, len(dets), 5 + nc)


@pytest.mark.parametrize("device", DEVICES)
def test_suppresses_overlap_of_same_class(device):
    # A and B overlap: intersection 9 x 10 = 90, union 110, IoU 0.818 > 0.6; C is apart
    pred = rows(
        (0, 0, 10, 10, 0.9, 0.9, 0.1),  # A: score 0.81, class 0
        (1, 0, 11, 10, 0.8, 0.9, 0.1),  # B: 0.72, class 0 -> suppressed by A
        (20, 20, 30, 30, 0.5, 0.2, 0.8),  # C: 0.40, class 1
    ).to(device)
    (out,) = non_max_suppression(pred, conf_thres=0.25, iou_thres=0.6)
    assert out.device.type == device
    exp = torch.tensor([[0, 0, 10, 10, 0.81, 0], [20, 20, 30, 30, 0.40, 1]])
    assert torch.allclose(out.cpu(), exp)
    # above the IoU threshold B survives
    (out,) = non_max_suppression(pred, conf_thres=0.25, iou_thres=0.85)
    assert out.shape[0] == 3 and torch.allclose(out[:, 4].cpu(), torch.tensor([0.81, 0.72, 0.40]))


def test_classes_apart_unless_agnostic():
    pred = rows((0, 0, 10, 10, 0.9, 0.9, 0.1), (1, 0, 11, 10, 0.8, 0.1, 0.9))  # same place, classes 0 and 1
    (out,) = non_max_suppression(pred, conf_thres=0.25, iou_thres=0.6)
    assert out[:, 5].tolist() == [0.0, 1.0]
    (out,) = non_max_suppression(pred, conf_thres=0.25, iou_thres=0.6, agnostic=True)
    assert out[:, 5].tolist() == [0.0] and out[0, 4].item() == pytest.approx(0.81)


def test_multi_label():
    pred = rows((0, 0, 10, 10, 1.0, 0.9, 0.8), (50, 50, 60, 60, 0.5, 0.6, 0.2))
    (single,) = non_max_suppression(pred, conf_thres=0.25)
    assert torch.allclose(single[:, 4:], torch.tensor([[0.9, 0], [0.3, 0]]))
    (multi,) = non_max_suppression(pred, conf_thres=0.25, multi_label=True)
    # box 1 gives two rows (0.9 class 0, 0.8 class 1); box 2's class 1 scores 0.1 < 0.25
    assert torch.allclose(multi[:, 4:], torch.tensor([[0.9, 0], [0.8, 1], [0.3, 0]]))
    assert torch.equal(multi[0, :4], multi[1, :4])


def test_max_det_keeps_best_per_image():
    boxes = [(20 * i, 0, 20 * i + 10, 10, 0.1 * (i + 1), 1.0, 0.0) for i in range(5)]
    pred = torch.cat((rows(*boxes), rows(*boxes[:2])[:, [0, 1, 0, 1, 0]]), 0)  # image 1: 5 rows, two distinct
    out = non_max_suppression(pred, conf_thres=0.01, max_det=3)
    assert out[0][:, 4].tolist() == pytest.approx([0.5, 0.4, 0.3])
    assert out[1][:, 4].tolist() == pytest.approx([0.2, 0.1])  # duplicates of the same box are suppressed


def test_max_nms_limits_candidates():
    boxes = [(20 * i, 0, 20 * i + 10, 10, 0.1 * (i + 1), 1.0, 0.0) for i in range(5)]
    (out,) = non_max_suppression(rows(*boxes), conf_thres=0.01, max_nms=2)
    assert out[:, 4].tolist() == pytest.approx([0.5, 0.4])


def test_same_box_in_two_images_is_kept_in_both():
    one = rows((0, 0, 10, 10, 0.9, 0.9, 0.1))
    out = non_max_suppression(torch.cat((one, one)), conf_thres=0.25)
    assert [o.shape[0] for o in out] == [1, 1]


@pytest.mark.parametrize("device", DEVICES)
def test_empty_and_all_below_conf(device):
    out = non_max_suppression(torch.zeros(3, 0, 7, device=device))
    assert len(out) == 3 and all(o.shape == (0, 6) and o.device.type == device for o in out)
    pred = rows((0, 0, 10, 10, 0.9, 0.2, 0.1), (0, 0, 10, 10, 0.1, 0.9, 0.1)).to(device)
    out = non_max_suppression(pred.repeat(2, 1, 1), conf_thres=0.25, multi_label=True)
    assert [o.shape for o in out] == [(0, 6), (0, 6)]


def test_non_finite_rows_dropped():
    pred = rows((0, 0, float("nan"), 10, 0.9, 0.9, 0.1), (20, 20, 30, 30, 0.9, 0.9, 0.1))
    (out,) = non_max_suppression(pred, conf_thres=0.25)
    assert out[:, :4].tolist() == [[20, 20, 30, 30]]


def reference(pred, conf_thres, iou_thres, max_det, multi_label, agnostic):
    """Per image and per class, plain torchvision nms."""
    outs = []
    for p in pred:
        scores = p[:, 5:] * p[:, 4:5]
        if multi_label:
            i, c = (scores > conf_thres).nonzero(as_tuple=True)
            conf = scores[i, c]
        else:
            conf, c = scores.max(1)
            i = (conf > conf_thres).nonzero().flatten()
            conf, c = conf[i], c[i]
        dets = []
        for cls in [None] if agnostic else c.unique().tolist():
            sel = torch.ones_like(c, dtype=torch.bool) if cls is None else c == cls
            b, s, cc = p[i[sel], :4], conf[sel], c[sel]
            k = nms(b.double(), s.double(), iou_thres)
            dets.append(torch.cat((b[k], s[k, None], cc[k, None].float()), 1))
        d = torch.cat(dets) if dets else torch.zeros(0, 6)
        outs.append(d[d[:, 4].argsort(descending=True)][:max_det])
    return outs


@pytest.fixture(params=["split", "one-call"])
def nms_path(request, monkeypatch):
    """Run both suppression paths on any device: per image (CPU default) and one call (CUDA default)."""
    monkeypatch.setattr(postprocess, "SPLIT_BY_IMAGE_ON", ("cpu", "cuda") if request.param == "split" else ())
    return request.param


@pytest.mark.parametrize("multi_label, agnostic", [(False, False), (True, False), (False, True)])
def test_matches_per_image_per_class_reference(multi_label, agnostic, nms_path):
    g = torch.Generator().manual_seed(1)
    bs, n, nc = 3, 300, 4
    xy = torch.rand(bs, n, 2, generator=g) * 200
    wh = torch.rand(bs, n, 2, generator=g) * 60 + 5
    scores = torch.rand(bs, n, 1 + nc, generator=g)
    pred = torch.cat((xy, xy + wh, scores), 2)
    got = non_max_suppression(pred, 0.2, 0.45, max_det=40, multi_label=multi_label, agnostic=agnostic)
    exp = reference(pred, 0.2, 0.45, 40, multi_label, agnostic)
    for a, b in zip(got, exp):
        assert a.shape == b.shape and a.shape[0] > 5
        assert torch.allclose(a, b)


def test_large_batch_offsets_keep_precision(nms_path):
    # 64 images x 80 classes, boxes spanning 0..640 px: the last group sits ~3e6 px away, where float32 steps
    # are 0.25 px; IoUs of 0.601 / 0.599 (heights differing by 0.04 px) around the 0.6 threshold must hold
    pred = torch.zeros(64, 4, 85)
    pred[..., 4] = 1.0
    pred[:, :3, 5 + 79] = 0.9
    pred[:, 3, 5] = 0.5
    pred[:, 0, :4] = torch.tensor([600.0, 600.0, 640.0, 640.0])
    pred[:, 1, :4] = torch.tensor([600.0, 600.0, 640.0, 600 + 40 * 0.601])  # IoU 0.601 with row 0
    pred[:, 2, :4] = torch.tensor([600.0, 600.0, 640.0, 600 + 40 * 0.599])  # IoU 0.599 with row 0
    pred[:, 3, :4] = torch.tensor([0.0, 0.0, 10.0, 10.0])  # class 0, far away
    pred[:, 1, 4] = 0.95  # scores: row 0 0.9 > row 1 0.855 > row 2 0.81 > row 3 0.5
    pred[:, 2, 4] = 0.9
    out = non_max_suppression(pred, 0.1, 0.6)
    assert all(torch.equal(o[:, :4], pred[0, [0, 2, 3], :4]) for o in out)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"pred": torch.rand(2, 5)}, "shape"),
        ({"pred": torch.rand(1, 5, 5)}, "nc >= 1"),
        ({"pred": torch.ones(1, 5, 7, dtype=torch.long)}, "float"),
        ({"pred": [[0.0] * 7]}, "torch.Tensor"),
        ({"conf_thres": 1.5}, "conf_thres"),
        ({"iou_thres": -0.1}, "iou_thres"),
        ({"max_det": 0}, "max_det"),
        ({"max_nms": 2.5}, "max_nms"),
    ],
)
def test_rejects_bad_arguments(kwargs, match):
    args = {"pred": torch.rand(1, 5, 7)} | kwargs
    with pytest.raises(ValueError, match=match):
        non_max_suppression(**args)
