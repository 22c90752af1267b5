"""Optional: YoloLoss (yolov5 preset) and our oracle against the real yolov5 package's ComputeLoss.

Runs only where the ``yolov5`` pip package is installed (``pip install yolov5==7.0.14 --no-deps``); it is
never a dependency. Only its loss code is loaded (``yolov5/utils/loss.py`` and ``utils/metrics.py``), not the
package's ``__init__`` (which needs pandas, requests, ultralytics, ...): a bare ``yolov5`` package object
pointing at the installed files stands in, and ``utils.torch_utils`` (only ``de_parallel`` is used) is stubbed.
ComputeLoss reads the model's ``hyp`` and its Detect layer (``na``, ``nc``, ``nl``, ``anchors`` in grid
units, ``stride``), so a small stand-in model carries exactly those.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from pathlib import Path

import pytest
import torch
from builders import ANCHORS2, ANCHORS3, HYP, SHAPES3, assert_same, edge_targets, make_targets, preds_for, step
from loss_oracle import OracleLoss
from torch import nn

from detloss import YoloLoss, scale_yolov5_hyp


@pytest.fixture(scope="module")
def compute_loss_cls():
    spec = importlib.util.find_spec("yolov5")
    if spec is None or spec.origin is None:
        pytest.skip("the yolov5 package is not installed (pip install yolov5==7.0.14 --no-deps)")
    root = Path(spec.origin).parent
    if not (root / "utils" / "loss.py").is_file():
        pytest.skip(f"no utils/loss.py in the installed yolov5 at {root}")
    saved = {k: v for k, v in sys.modules.items() if k == "yolov5" or k.startswith("yolov5.")}
    for k in saved:
        del sys.modules[k]
    package = types.ModuleType("yolov5")
    package.__path__ = [str(root)]
    torch_utils = types.ModuleType("yolov5.utils.torch_utils")
    torch_utils.de_parallel = lambda model: getattr(model, "module", model)  # type: ignore[attr-defined]
    sys.modules["yolov5"] = package
    try:
        importlib.import_module("yolov5.utils")
        sys.modules["yolov5.utils.torch_utils"] = torch_utils
        cls = importlib.import_module("yolov5.utils.loss").ComputeLoss
    except ImportError as e:  # e.g. matplotlib missing for utils/metrics.py
        pytest.skip(f"yolov5's loss module does not import here: {e}")
    finally:
        for k in [k for k in sys.modules if k == "yolov5" or k.startswith("yolov5.")]:
            del sys.modules[k]
        sys.modules.update(saved)
    return cls


class _Detect:
    def __init__(self, anchors_px, strides, nc):
        self.nl, self.nc = len(strides), nc
        stride = torch.tensor(strides, dtype=torch.float32)
        self.anchors = torch.tensor(anchors_px, dtype=torch.float32).view(self.nl, -1, 2) / stride.view(-1, 1, 1)
        self.na, self.stride = self.anchors.shape[1], stride


class _Model(nn.Module):
    def __init__(self, hyp, anchors_px, strides, nc):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))  # ComputeLoss takes its device from the first parameter
        self.hyp = hyp
        self.model = [_Detect(anchors_px, strides, nc)]


def _case(name):
    gen = torch.Generator().manual_seed(21)
    nc, bs, shapes, anchors, strides, kw = 5, 2, SHAPES3, ANCHORS3, (8, 16, 32), {}
    hyp = scale_yolov5_hyp(HYP, nl=3, nc=nc, imgsz=640)
    targets = torch.cat((make_targets(bs, 10, nc, gen), edge_targets(bs, nc)))
    if name == "smoothing_focal_pw":
        hyp = {**hyp, "label_smoothing": 0.1, "fl_gamma": 1.5, "cls_pw": 1.7, "obj_pw": 0.6}
    elif name == "nc1":
        nc = 1
        targets = torch.cat((make_targets(bs, 10, nc, gen), edge_targets(bs, nc)))
    elif name == "no_targets":
        targets = torch.zeros(0, 6)
    elif name == "sort_obj_iou":
        kw = {"sort_obj_iou": True}
    elif name == "autobalance":
        kw = {"autobalance": True}
    elif name == "two_levels":
        nc, shapes, anchors, strides = 3, [(26, 26), (13, 13)], ANCHORS2, (16, 32)
        hyp = scale_yolov5_hyp({**HYP, "label_smoothing": 0.1}, nl=2, nc=nc, imgsz=416)
        targets = torch.cat((make_targets(bs, 8, nc, gen), edge_targets(bs, nc)))
    return preds_for(bs, shapes, nc, gen), targets, hyp, anchors, strides, nc, kw


CASES = ["plain", "smoothing_focal_pw", "nc1", "no_targets", "sort_obj_iou", "autobalance", "two_levels"]


def test_matches_the_yolov5_package(compute_loss_cls):
    """One test (one skip where yolov5 is absent) over the cases: value, items and gradients to 1e-5."""
    for name in CASES:
        _check_case(compute_loss_cls, name)


def _check_case(compute_loss_cls, name):
    preds, targets, hyp, anchors, strides, nc, kw = _case(name)
    real = compute_loss_cls(_Model(hyp, anchors, strides, nc), autobalance=kw.get("autobalance", False))
    real.sort_obj_iou = kw.get("sort_obj_iou", False)
    oracle = OracleLoss(hyp, anchors, strides, nc, **kw)
    ours = YoloLoss.from_yolov5_hyp(hyp, anchors, strides, nc, **kw)
    for _ in range(2 if kw.get("autobalance") else 1):
        want = step(real, preds, targets)
        want = (want[0].reshape(()), want[1], want[2])
        got_oracle = step(oracle, preds, targets)
        assert_same(step(ours, preds, targets), want)
        assert_same((got_oracle[0].reshape(()), got_oracle[1], got_oracle[2]), want)
    if kw.get("autobalance"):
        torch.testing.assert_close(ours.balance, torch.tensor(real.balance[:3]), rtol=1e-6, atol=0)
        assert oracle.balance == pytest.approx(real.balance[:3], rel=1e-9)
