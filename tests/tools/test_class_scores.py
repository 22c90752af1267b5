"""tools/class_scores.py: the class scores read at the loss's positive cells, on a model with known constant scores."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
import torch

from data.datasets import build_dataset, collate_fn
from data.demo import ensure_demo
from data.yaml_io import load_data_yaml
from detloss import YoloLoss, split_ignore
from models import build_model, save_checkpoint
from tools import class_scores


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


@pytest.fixture(scope="module")
def constant_model(tmp_path_factory):
    """A model whose outputs ignore the image: class k scores (k + 1) / 10, objectness 0.3."""
    root = tmp_path_factory.mktemp("cls")
    data = load_data_yaml(ensure_demo(root / "demo", n_train=2, n_val=4))
    torch.manual_seed(0)
    model = build_model("yolov4-tiny-n", nc=len(data["names"]), names=data["names"])
    with torch.no_grad():
        for conv in model.head.m:
            conv.weight.zero_()
            b = conv.bias.view(model.head.na, model.head.no)
            b[:, 4] = _logit(0.3)
            b[:, 5:] = torch.tensor([_logit((k + 1) / 10) for k in range(model.nc)])
    return data, model, save_checkpoint(root / "w.pt", model, opt={"imgsz": 64})


def test_known_scores_at_the_positives(constant_model):
    data, model, _ = constant_model
    ds = build_dataset(data, "val", 64, augment=False)
    loader = torch.utils.data.DataLoader(ds, batch_size=3, collate_fn=collate_fn)
    got = class_scores.class_scores(model, loader, torch.device("cpu"))
    # the expected figures from the loss's assignment of the same boxes
    assign = YoloLoss(**model.loss_kwargs())
    tcls = []
    for imgs, labels, _, _ in loader:
        grids = [(p.shape[2], p.shape[3]) for p in model(imgs.float() / 255, raw=True)[1]]
        tcls += [t.tcls for t in assign.assign(split_ignore(labels)[0], grids)]
    y = torch.cat(tcls).double()
    k = model.nc
    assert got["positives"] == len(y) > 0
    assert got["true"] == pytest.approx(((y + 1) / 10).mean().item(), abs=1e-6)
    total = sum((j + 1) / 10 for j in range(k))
    assert got["other"] == pytest.approx(((total - (y + 1) / 10) / (k - 1)).mean().item(), abs=1e-6)
    assert got["max other"] == pytest.approx(torch.where(y == k - 1, (k - 1) / 10, k / 10).mean().item(), abs=1e-6)
    assert got["top1"] == pytest.approx((y == k - 1).double().mean().item())
    assert got["obj"] == pytest.approx(0.3, abs=1e-6)


def test_cli_reads_checkpoints_and_refuses_a_split_without_boxes(constant_model, tmp_path, capsys):
    data, _, weights = constant_model
    out = class_scores.main(["--weights", str(weights), "--data", str(data["yaml_file"]), "--device", "cpu"])
    assert out[str(weights)]["obj"] == pytest.approx(0.3, abs=1e-6)
    assert "| true | other |" in capsys.readouterr().out
    empty = tmp_path / "empty"
    (empty / "images" / "val").mkdir(parents=True)
    (empty / "labels" / "val").mkdir(parents=True)
    src = sorted((Path(data["path"]) / "images" / "val").iterdir())[0]
    shutil.copy(src, empty / "images" / "val" / src.name)
    (empty / "labels" / "val" / (src.stem + ".txt")).write_text("")
    yaml_file = tmp_path / "e.yaml"
    yaml_file.write_text(f"path: {empty}\ntrain: images/val\nval: images/val\nnames: {list(data['names'])}\n")
    with pytest.raises(ValueError, match="no ground-truth boxes"):
        class_scores.main(["--weights", str(weights), "--data", str(yaml_file), "--device", "cpu"])
