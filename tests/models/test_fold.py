"""models/fold.py: conv + batch-norm folding is exact in eval mode, leaves the original alone, and is what
inference runs (tools.inference.loop.infer, tools.inference.weights.load_weights)."""

from __future__ import annotations

import pytest
import torch

from models import build_model
from models.fold import fold_conv_bn, folded_for_eval

pytestmark = pytest.mark.usefixtures("one_thread")


def _trained_bn_model(cfg: str = "yolov4-tiny-s") -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model(cfg, 3).train()
    x = torch.rand(2, 3, 64, 64)
    for _ in range(3):  # running statistics away from (0, 1)
        model(x * 3 + 0.5)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return model


def test_fold_conv_bn_is_exact_in_eval_and_leaves_the_model():
    """The folded copy gives the eval outputs of the original (float rounding) with non-trivial BN statistics; the
    original keeps its batch norms and its outputs."""
    model = _trained_bn_model()
    x = torch.rand(2, 3, 64, 64)
    model.eval()
    before = model(x)
    folded = fold_conv_bn(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    torch.testing.assert_close(folded(x), before, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(model(x), before, rtol=0, atol=0)


@pytest.mark.parametrize("cfg", ["yolov4-tiny-s", "yolov4-tiny-3l-s", "yolov3-tiny"])
def test_folded_for_eval_copies_once(cfg):
    model = _trained_bn_model(cfg)
    x = torch.rand(1, 3, 64, 64)
    folded = folded_for_eval(model)
    assert folded is not model and model.training and not folded.training  # the original keeps its mode
    assert folded_for_eval(folded) is folded  # nothing left to fold: no second copy
    model.eval()
    torch.testing.assert_close(folded(x), model(x), rtol=1e-4, atol=1e-4)
    runner = object()  # e.g. an ONNX session: passed through
    assert folded_for_eval(runner) is runner
