"""tools.inference.predict.predict reads its NMS thresholds, max_det and half from an EvalConfig."""

from __future__ import annotations

import pytest
import torch

from tools.evaluation import EvalConfig
from tools.inference.predict import predict

META = {"ratio": (1.0, 1.0), "pad": (0.0, 0.0), "orig_shape": (64, 64)}


class _Fixed(torch.nn.Module):
    """Decoded output of three candidates ``[x1, y1, x2, y2, obj, cls0]``: two disjoint boxes (scores 0.9, 0.3)
    and one inside the first, half its area (IoU 128 / 256 = 0.5 with it, score 0.8)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = [[8.0, 8.0, 24.0, 24.0, 0.9, 1.0], [44.0, 44.0, 52.0, 52.0, 0.3, 1.0], [8.0, 8.0, 24.0, 16.0, 0.8, 1.0]]
        return torch.tensor([rows]).expand(x.shape[0], -1, -1)


@pytest.mark.parametrize(
    "config, scores",
    [
        (EvalConfig(conf_thres=0.25, iou_thres=0.45), [0.9, 0.3]),  # the overlap (IoU 0.5) suppressed
        (EvalConfig(conf_thres=0.25, iou_thres=0.6), [0.9, 0.8, 0.3]),  # IoU 0.5 < 0.6: kept
        (EvalConfig(conf_thres=0.5, iou_thres=0.6), [0.9, 0.8]),  # below conf 0.5: dropped
        (EvalConfig(conf_thres=0.25, iou_thres=0.6, max_det=1), [0.9]),
    ],
)
def test_config_thresholds_and_max_det(config, scores):
    batch = torch.zeros(1, 3, 64, 64, dtype=torch.uint8)
    (det,) = predict(_Fixed().eval(), batch, [META], torch.device("cpu"), config)
    assert det[:, 4].tolist() == pytest.approx(scores)
    assert det[0, :4].tolist() == pytest.approx([8.0, 8.0, 24.0, 24.0])  # ratio 1, no padding: the same pixels
