"""models: topology sizes, output layout, head decode vs the loss, training step, input validation."""

import math

import pytest
import torch

from detloss import LossConfig, YoloLoss, decode_grid
from models import MODEL_CFGS, P3_P5_ANCHORS, TINY_ANCHORS, build_model, cfg_strides, count_flops, count_params
from models.darknet_tiny import YoloV4TinyBody
from models.layers import CSPTinyBlock, MaxPoolSame

# Layers written out from darknet's cfg files as (kernel, c_in, c_out, output side at 416): every BN conv,
# then the two detection convs (1x1 with bias, 3 * (5 + 80) = 255 outputs).
V3_TINY = [
    (3, 3, 16, 416), (3, 16, 32, 208), (3, 32, 64, 104), (3, 64, 128, 52), (3, 128, 256, 26),
    (3, 256, 512, 13), (3, 512, 1024, 13), (1, 1024, 256, 13), (3, 256, 512, 13),
    (1, 256, 128, 13), (3, 384, 256, 26),
]  # fmt: skip
V4_TINY = [
    (3, 3, 32, 208), (3, 32, 64, 104),
    (3, 64, 64, 104), (3, 32, 32, 104), (3, 32, 32, 104), (1, 64, 64, 104),
    (3, 128, 128, 52), (3, 64, 64, 52), (3, 64, 64, 52), (1, 128, 128, 52),
    (3, 256, 256, 26), (3, 128, 128, 26), (3, 128, 128, 26), (1, 256, 256, 26),
    (3, 512, 512, 13), (1, 512, 256, 13), (3, 256, 512, 13), (1, 256, 128, 13), (3, 384, 256, 26),
]  # fmt: skip
DETECT = [(512, 13), (256, 26)]  # (c_in, side) of the stride-32 and stride-16 detection convs


def table_counts(layers, width=1, nc=80):
    """Params (conv weights + BN gamma/beta + detection bias) and FLOPs (2 per multiply-add) by hand."""
    params = flops = 0
    for k, ci, co, side in layers:
        ci = 3 if ci == 3 else ci // width
        co //= width
        params += k * k * ci * co + 2 * co
        flops += 2 * k * k * ci * co * side * side
    no = 3 * (5 + nc)
    for ci, side in DETECT:
        params += (ci // width) * no + no
        flops += 2 * (ci // width) * no * side * side
    return params, flops


@pytest.mark.parametrize(
    "cfg, table, pub_params, pub_flops",
    [("yolov3-tiny", V3_TINY, 8.86e6, 5.571e9), ("yolov4-tiny", V4_TINY, 6.06e6, 6.910e9)],
)
def test_sizes_match_darknet(cfg, table, pub_params, pub_flops):
    m = build_model(cfg, 80)
    params, flops = count_params(m), count_flops(m, 416)
    assert (params, flops) == table_counts(table)
    # published: darknet prints 5.571 / 6.910 BFLOPs at 416; about 8.9 M / 6.1 M parameters
    assert abs(params / pub_params - 1) < 0.02
    assert abs(flops / pub_flops - 1) < 0.02
    assert m.training  # count_flops restores the mode


def test_width_multiplier_quarter_channels():
    m = build_model("yolov4-tiny-n", 80)
    assert (count_params(m), count_flops(m, 416)) == table_counts(V4_TINY, width=4)


@pytest.mark.parametrize("cfg", MODEL_CFGS)
def test_output_shapes(cfg):
    m = build_model(cfg, 3)
    x = torch.rand(2, 3, 64, 96)
    grids = [(64 // int(s), 96 // int(s)) for s in m.strides]
    assert [p.shape for p in m(x)] == [(2, 3, ny, nx, 8) for ny, nx in grids]
    m.eval()
    with torch.no_grad():
        y = m(x)
    assert y.shape == (2, 3 * sum(ny * nx for ny, nx in grids), 8)
    assert ((y[..., 4:] > 0) & (y[..., 4:] < 1)).all()
    assert (y[..., 2:4] > y[..., 0:2]).all()  # x2 > x1, y2 > y1


def test_attributes_and_bias_init():
    m = build_model("yolov4-tiny-n", 80, decode="darknet", scale_x_y=1.05)
    assert m.strides == [16.0, 32.0] and m.decode == "darknet" and m.scale_x_y == 1.05
    assert m.anchors_px.tolist() == [[[10, 14], [23, 27], [37, 58]], [[81, 82], [135, 169], [344, 319]]]
    assert "head.anchors_px" in m.state_dict()
    kw = m.loss_kwargs()
    assert kw["strides"] == [16.0, 32.0] and kw["num_classes"] == 80
    b16, b32 = (conv.bias.view(3, 85) for conv in m.head.m)
    # log(8 / (640/16)^2) = log(0.005); log(8 / (640/32)^2) = log(0.02); log(0.6 / 79.00001)
    assert torch.allclose(b16[:, 4], torch.tensor(-5.298317)) and torch.allclose(b32[:, 4], torch.tensor(-3.912023))
    assert torch.allclose(b16[:, 5:], torch.tensor(-4.880274))
    assert (b16[:, :4] == 0).all()


def test_three_level_model():
    m = build_model("yolov4-tiny-3l-s", 2)
    assert m.strides == [8.0, 16.0, 32.0] and cfg_strides("yolov4-tiny-3l-s") == (8.0, 16.0, 32.0)
    assert m.anchors_px.flatten(1).tolist() == [list(map(float, a)) for a in P3_P5_ANCHORS]
    assert m.body.out_channels == (64, 128, 256)  # width 0.5 of darknet's 128 / 256 / 512
    # the stride-8 branch is all that the -s body gains (a conv + BN each: 6 keys, and a third detection conv)
    two = build_model("yolov4-tiny-s", 2).state_dict()
    extra = [k for k in m.state_dict() if k not in two]
    assert len(extra) == 14 and all(k.startswith(("body.lateral3.", "body.head3.", "head.m.2.")) for k in extra)
    b8 = m.head.m[0].bias.view(3, 7)
    assert torch.allclose(b8[:, 4], torch.tensor(math.log(8 / 80**2)))  # log(8 / (640/8)^2)
    with pytest.raises(ValueError, match="3 detection levels"):
        build_model("yolov4-tiny-3l-s", 2, anchors=TINY_ANCHORS)


def test_maxpool_same_ignores_outside():
    x = torch.tensor([[5.0, 1.0], [2.0, -3.0]]).view(1, 1, 2, 2)
    # each 2x2 window reaching past the edge takes the max of the in-image part only (zero padding would give 0)
    assert MaxPoolSame()(x).view(2, 2).tolist() == [[5.0, 1.0], [2.0, -3.0]]


def test_csp_route_uses_second_half():
    blk = CSPTinyBlock(4, 8).eval()
    x = torch.rand(1, 4, 8, 8)
    _, f_ref = blk(x)

    def run_with(edit):
        h = blk.conv1.register_forward_hook(lambda mod, inp, out: edit(out.clone()))
        try:
            return blk(x)[1]
        finally:
            h.remove()

    def first_half(o):
        o[:, :4] += 10.0
        return o

    def second_half(o):
        o[:, 4:] += 10.0
        return o

    assert torch.equal(run_with(first_half), f_ref)  # the inner chain never sees group 0
    assert not torch.allclose(run_with(second_half), f_ref)


def _invert(xy_off, wh_ratio, style, s):
    """Logits that decode to grid offsets ``xy_off`` and size ``wh_ratio`` x anchor."""
    if style == "yolov5":
        return torch.logit((xy_off + 0.5) / 2), torch.logit(wh_ratio.sqrt() / 2)
    return torch.logit((xy_off + 0.5 * (s - 1)) / s), wh_ratio.log()


@pytest.mark.parametrize("style, s", [("yolov5", 1.0), ("darknet", 1.05)])
def test_eval_decode_places_known_box(style, s):
    m = build_model("yolov4-tiny-n", 2, decode=style, scale_x_y=s).eval()
    # stride-16 level, anchor 1 (23 x 27 px), cell gx=2, gy=1: centre (2.7, 1.3) cells, box 30 x 20 px
    txy, twh = _invert(torch.tensor([0.7, 0.3]), torch.tensor([30 / 23, 20 / 27]), style, s)
    with torch.no_grad():
        conv = m.head.m[0]
        conv.weight.zero_()
        b = conv.bias.view(3, 7)
        b[1, :2], b[1, 2:4], b[1, 4:] = txy, twh, torch.tensor([2.0, -1.0, 3.0])
        y = m(torch.rand(1, 3, 64, 64))
    row = 1 * 4 * 4 + 1 * 4 + 2  # anchor, row, column order
    cx, cy = 2.7 * 16, 1.3 * 16
    exp = torch.tensor([cx - 15, cy - 10, cx + 15, cy + 10])
    assert torch.allclose(y[0, row, :4], exp, atol=1e-4)
    assert torch.allclose(y[0, row, 4:], torch.tensor([2.0, -1.0, 3.0]).sigmoid())
    m.train()
    logits = m(torch.rand(1, 3, 64, 64))[0]
    assert torch.allclose(logits[0, 1, 1, 2, :4], torch.cat((txy, twh)))


def test_eval_decode_equals_detloss_decode_grid():
    m = build_model("yolov4-tiny-n", 3, decode="darknet", scale_x_y=1.1).eval()
    x = torch.rand(2, 3, 64, 96)
    with torch.no_grad():
        y = m(x)
        m.head.train()  # same features (eval BN), raw logits from the head
        logits = m.head(m.body(x))
    start = 0
    for i, p in enumerate(logits):
        boxes = decode_grid(p, m.anchors_px[i], m.strides[i], "darknet", 1.1).view(2, -1, 4)
        xyxy = torch.cat((boxes[..., :2] - boxes[..., 2:] / 2, boxes[..., :2] + boxes[..., 2:] / 2), -1)
        n = boxes.shape[1]
        assert torch.allclose(y[:, start : start + n, :4], xyxy, atol=1e-4)
        start += n


@pytest.mark.parametrize(
    "style, config",
    [
        ("yolov5", LossConfig()),
        ("darknet", LossConfig(decode="darknet", scale_x_y=1.05, assign="darknet", iou_thresh=0.213)),
    ],
)
def test_perfect_logits_zero_box_loss(style, config):
    m = build_model("yolov4-tiny-n", 3, decode=style, scale_x_y=config.scale_x_y)
    loss = YoloLoss(**m.loss_kwargs(), config=config)
    targets = torch.tensor([[0, 1, 0.42, 0.37, 0.30, 0.25], [1, 2, 0.70, 0.60, 0.5, 0.6], [1, 0, 0.2, 0.8, 0.1, 0.12]])
    shapes = [p.shape for p in m(torch.rand(2, 3, 128, 128))]
    preds = [torch.zeros(sh) for sh in shapes]
    levels = loss.assign(targets, [(sh[2], sh[3]) for sh in shapes])
    m.eval()
    npos = 0
    for i, lt in enumerate(levels):
        txy, twh = _invert(lt.tbox[:, :2], lt.tbox[:, 2:] / lt.anchors, style, config.scale_x_y)
        preds[i][lt.b, lt.a, lt.gj, lt.gi, :4] = torch.cat((txy, twh), 1)
        # the head decodes the same logits to the target box in pixels
        dec = m.head.decode_level(i, preds[i])
        flat = ((lt.b * 3 + lt.a) * shapes[i][2] + lt.gj) * shapes[i][3] + lt.gi
        got = dec.view(-1, 8)[flat, :4]
        s = m.strides[i]
        cxy = (lt.tbox[:, :2] + torch.stack((lt.gi, lt.gj), 1)) * s
        exp = torch.cat((cxy - lt.tbox[:, 2:] * s / 2, cxy + lt.tbox[:, 2:] * s / 2), 1)
        assert torch.allclose(got, exp, atol=1e-3)
        npos += len(lt)
    assert npos >= 3
    _, items = loss(preds, targets)
    assert items[0] < 1e-5
    preds[0][..., :4] += 0.3  # and a wrong box costs something
    preds[1][..., :4] += 0.3
    assert loss(preds, targets)[1][0] > 1e-3


@pytest.mark.parametrize("cfg", MODEL_CFGS)
def test_train_step(cfg):
    m = build_model(cfg, 4)
    loss = YoloLoss(**m.loss_kwargs())
    targets = torch.tensor([[0, 1, 0.5, 0.5, 0.4, 0.3], [1, 3, 0.3, 0.6, 0.2, 0.5]])
    total, items = loss(m(torch.rand(2, 3, 64, 64)), targets)
    total.backward()
    assert math.isfinite(total.item()) and (items > 0).all()
    grads = [p.grad for p in m.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert m.body.parameters().__next__().grad.abs().sum() > 0


def test_grid_cache_follows_shape():
    m = build_model("yolov4-tiny-n", 1).eval()
    with torch.no_grad():
        a = m(torch.rand(1, 3, 64, 64))
        b = m(torch.rand(1, 3, 96, 64))
    assert a.shape[1] == 3 * (16 + 4) and b.shape[1] == 3 * (24 + 6)
    # last cell of the stride-32 level of the 96x64 input: column 1, row 2 -> centre within that cell
    cx, cy = (b[0, -1, 0] + b[0, -1, 2]) / 2, (b[0, -1, 1] + b[0, -1, 3]) / 2
    assert 32 - 16 <= cx <= 64 + 16 and 64 - 16 <= cy <= 96 + 16


@pytest.mark.parametrize(
    "x, match",
    [
        (torch.rand(3, 64, 64), "4-D"),
        (torch.randint(0, 255, (1, 3, 64, 64), dtype=torch.uint8), "float"),
        (torch.rand(1, 4, 64, 64), r"\[bs >= 1, 3, H, W\]"),
        (torch.rand(1, 3, 64, 80), "multiples of 32"),
        (torch.rand(1, 3, 16, 16), "multiples of 32"),
        ([1, 2, 3], "torch.Tensor"),
    ],
)
def test_forward_rejects_bad_input(x, match):
    m = build_model("yolov4-tiny-n", 2)
    with pytest.raises(ValueError, match=match):
        m(x)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"cfg": "yolov5s", "nc": 2}, "yolov3-tiny"),
        ({"cfg": "yolov4-tiny", "nc": 0}, "nc"),
        ({"cfg": "yolov4-tiny", "nc": 2.0}, "nc"),
        ({"cfg": "yolov4-tiny", "nc": 2, "names": ["a"]}, "names has 1"),
        ({"cfg": "yolov4-tiny", "nc": 2, "names": "ab"}, "strings"),
        ({"cfg": "yolov4-tiny", "nc": 2, "decode": "v8"}, "decode style"),
        ({"cfg": "yolov4-tiny", "nc": 2, "scale_x_y": 0.5}, "scale_x_y"),
        ({"cfg": "yolov4-tiny", "nc": 2, "anchors": TINY_ANCHORS + ((1, 2, 3, 4, 5, 6),)}, "2 detection levels"),
        ({"cfg": "yolov4-tiny", "nc": 2, "anchors": [[10, -14], [23, 27]]}, "anchors"),
    ],
)
def test_build_model_rejects_bad_args(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_model(**kwargs)


def test_custom_anchors():
    m = build_model("yolov3-tiny", 1, anchors=[[23, 27, 37, 58, 81, 82], [81, 82, 135, 169, 344, 319]])
    assert m.anchors_px[0, 0].tolist() == [23, 27]
    assert m.head.m[0].out_channels == 3 * 6


def test_depth_multiplier_lengthens_csp_chain():
    deep = YoloV4TinyBody(width=0.25, depth=2.0)
    assert [len(b.inner) for b in (deep.csp1, deep.csp2, deep.csp3)] == [4, 4, 4]
    p4, p5 = deep(torch.rand(1, 3, 64, 64))
    assert p4.shape == (1, 64, 4, 4) and p5.shape == (1, 128, 2, 2)
    with pytest.raises(ValueError, match="width multiplier"):
        YoloV4TinyBody(width=0.0)
