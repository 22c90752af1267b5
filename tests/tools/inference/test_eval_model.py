"""Model evaluation end to end on the built-in demo data: CLI with an untrained model, an oracle model that must
score AP 1 through the whole letterbox -> NMS -> unletterbox -> COCO path, and torchrun-style sharding."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
import torch
from torch import nn

from data.datasets import CocoDataset, build_dataset, coco_gt_for
from data.demo import ensure_demo
from data.yaml_io import load_data_yaml
from models import build_model, save_checkpoint
from tools import eval as eval_cli
from tools.evaluation import EvalConfig, read_json
from tools.inference.datasets import ground_truth_from_dataset
from tools.inference.device import select_device
from tools.inference.evaluate import evaluate_model
from tools.inference.loop import infer

IMGSZ = 64


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> dict:
    """A demo dataset with 8 val images, its data dict, and the checkpoint of an untrained yolov4-tiny-n."""
    root = tmp_path_factory.mktemp("evaldemo")
    data = load_data_yaml(ensure_demo(root / "demo", n_train=8, n_val=8))
    torch.manual_seed(0)
    model = build_model("yolov4-tiny-n", nc=len(data["names"]), names=data["names"])
    weights = save_checkpoint(root / "w.pt", model)
    return {"data": data, "weights": weights, "root": root}


def test_cli_model_mode_untrained(demo, tmp_path, capsys):
    out = tmp_path / "metrics.json"
    res = eval_cli.main(
        ["--weights", str(demo["weights"]), "--data", str(demo["data"]["yaml_file"]), "--imgsz", str(IMGSZ)]
        + ["--batch-size", "4", "--device", "cpu", "--workers", "0", "--project", str(tmp_path), "--name", "run"]
        + ["--backend", "faster", "--json-out", str(out), "--plots", str(tmp_path / "plots")]
    )
    text = capsys.readouterr().out
    assert "Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ]" in text and "circle" in text
    preds = read_json(tmp_path / "run" / "predictions.json")
    assert len(preds) == res.n_detections > 0  # an untrained model still emits low-confidence boxes
    assert {p["image_id"] for p in preds} <= set(range(8)) and all(len(p["bbox"]) == 4 for p in preds)
    assert res.n_images == 8 and len(res.coco.per_class) == len(demo["data"]["names"])
    assert all(0 <= s <= 1 or s == -1 for s in res.stats) and res.map < 0.1  # valid and low
    saved = json.loads(out.read_text())
    assert saved["stats"] == res.stats and saved["backend"] == "faster" and saved["images"] == 8
    assert set(saved["speed_ms_per_image"]) == {"pre", "inference", "nms"}
    assert (tmp_path / "plots" / "PR_curve.png").exists() and (tmp_path / "plots" / "reliability.png").exists()
    # a second run does not overwrite the first: runs/val/exp -> exp2 habit
    eval_cli.main(
        ["--weights", str(demo["weights"]), "--data", str(demo["data"]["yaml_file"]), "--imgsz", str(IMGSZ)]
        + ["--device", "cpu", "--workers", "0", "--project", str(tmp_path), "--name", "run", "--backend", "faster"]
    )
    assert (tmp_path / "run2" / "predictions.json").exists()


class OracleModel(nn.Module):
    """Returns, batch after batch, each image's ground-truth boxes (letterboxed pixels) with obj 0.9 and a one-hot
    class: evaluated through the real pipeline this must give AP 1, and every detection is correct at confidence
    0.9, so the D-ECE is |1 - 0.9| = 0.1."""

    def __init__(self, dataset, nc: int):
        super().__init__()
        self.rows = []
        for i in range(len(dataset)):
            lab = dataset[i][1]  # [n, 6] (0, cls, cx, cy, w, h), normalised to the letterboxed image
            s = dataset.imgsz
            p = torch.zeros(max(len(lab), 1), 5 + nc)
            cx, cy, w, h = (lab[:, 2:] * s).unbind(1)
            p[: len(lab), :4] = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1)
            p[: len(lab), 4] = 0.9
            p[torch.arange(len(lab)), 5 + lab[:, 1].long()] = 1.0
            self.rows.append(p)
        self.next = 0

    def forward(self, x):
        out = self.rows[self.next : self.next + len(x)]
        self.next += len(x)
        n = max(len(r) for r in out)
        return torch.stack([torch.cat([r, r.new_zeros(n - len(r), r.shape[1])]) for r in out])


@pytest.mark.parametrize("use_json_gt", [True, False])
def test_oracle_model_scores_ap_one(demo, use_json_gt):
    data = demo["data"]
    ds = build_dataset(data, "val", 128, augment=False)
    gt = coco_gt_for(data, "val") if use_json_gt else None  # None: ground truth from the dataset's labels
    res = evaluate_model(OracleModel(ds, len(data["names"])), ds, EvalConfig(batch_size=3, backend="faster"), gt, "cpu")
    assert res is not None
    assert res.map50 == pytest.approx(1.0, abs=1e-9) and res.map > 0.99
    assert res.calibration.ece == pytest.approx(0.1, abs=1e-6) and res.calibration.n == res.n_detections
    assert res.n_detections == sum(len(lb) for lb in ds.labels)


@pytest.mark.parametrize("use_json_gt", [True, False])
def test_oracle_scores_ap_one_with_non_contiguous_coco_ids(demo, tmp_path, use_json_gt):
    """A COCO dataset with category ids 1, 3, 7, ...: detections and ground truth built from the dataset use the
    same ids (``cat_ids``), so a perfect model scores AP 1, not a silent 0."""
    data = demo["data"]
    gt = read_json(coco_gt_for(data, "val"))
    ids = [1, 3, 7, 8, 20, 42]
    gt["categories"] = [{**c, "id": ids[c["id"]]} for c in gt["categories"]]
    gt["annotations"] = [{**a, "category_id": ids[a["category_id"]]} for a in gt["annotations"]]
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    ds = CocoDataset(tmp_path / "gt.json", Path(data["path"]) / "images" / "val", imgsz=128)
    cfg = EvalConfig(batch_size=4, backend="faster")
    res = evaluate_model(OracleModel(ds, len(ids)), ds, cfg, tmp_path / "gt.json" if use_json_gt else None, "cpu")
    assert res is not None and res.coco.cat_ids == ids
    assert res.map50 == pytest.approx(1.0, abs=1e-9)


def test_infer_maps_boxes_back_to_original_pixels(demo):
    data = demo["data"]
    ds = build_dataset(data, "val", 128, augment=False)
    from data.datasets import collate_fn

    loader = torch.utils.data.DataLoader(ds, batch_size=4, collate_fn=collate_fn)
    results = infer(
        OracleModel(ds, len(data["names"])), loader, torch.device("cpu"), cat_ids=[10, 11, 12, 13, 14, 15]
    ).results
    gt = ground_truth_from_dataset(ds)
    first = sorted(r["bbox"] for r in results if r["image_id"] == 0)
    truth = sorted(a["bbox"] for a in gt["annotations"] if a["image_id"] == 0)
    assert len(first) == len(truth) > 0
    for b, t in zip(first, truth):
        assert b == pytest.approx(t, abs=0.01)  # xywh in the original 256x256 image, not the 128 letterbox
    assert {r["category_id"] for r in results} <= {10, 11, 12, 13, 14, 15}
    with pytest.raises(ValueError, match="augment=False"):
        augmented = next(iter(loader))[:3] + ([{"image_id": 0, "ratio": None, "pad": None}],)
        infer(OracleModel(ds, 6), [augmented], "cpu", cat_ids=list(range(6)))


def test_select_device():
    assert select_device("cpu") == torch.device("cpu")
    assert select_device("") == torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA device 0 requested but not available"):
            select_device("0")
    with pytest.raises(ValueError, match="device must be"):
        select_device("gpu")
    with pytest.raises(ValueError, match="device must be"):
        select_device("0,x")
    assert select_device("cpu", local_rank=3) == torch.device("cpu")
    if not torch.cuda.is_available():  # a torchrun process takes the local_rank-th listed device (3 % 2 = 1)
        assert select_device("", local_rank=1) == torch.device("cpu")
        with pytest.raises(ValueError, match="CUDA device 1 requested"):
            select_device("0,1", local_rank=3)


def test_checkpoint_imgsz_rule():
    from tools.inference.weights import DEFAULT_IMGSZ, checkpoint_imgsz

    assert checkpoint_imgsz({"opt": {"imgsz": 64}}) == 64
    assert checkpoint_imgsz({"opt": None}) == checkpoint_imgsz({}) == DEFAULT_IMGSZ == 640


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, weights: str, yaml_file: str, out: str) -> None:
    import torch.distributed as dist

    from data.datasets import build_dataset, coco_gt_for
    from data.yaml_io import load_data_yaml
    from models import load_model
    from tools.evaluation import EvalConfig
    from tools.inference.evaluate import evaluate_model

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        torch.set_num_threads(1)
        data = load_data_yaml(yaml_file)
        ds = build_dataset(data, "val", IMGSZ)
        res = evaluate_model(load_model(weights), ds, EvalConfig(batch_size=1), coco_gt_for(data, "val"), "cpu")
        if rank == 0:
            Path(out).write_text(json.dumps(res.to_dict()))
        else:
            assert res is None
    finally:
        dist.destroy_process_group()


def test_distributed_shards_equal_single_process(demo, tmp_path):
    """Two gloo ranks each infer half the images (8 = 4 + 4, no padding duplicates); rank 0 gathers and gets
    the single-process numbers."""
    import torch.multiprocessing as mp

    from models import load_model

    data = demo["data"]
    out = tmp_path / "dist.json"
    args = (2, _free_port(), str(demo["weights"]), str(data["yaml_file"]), str(out))
    mp.spawn(_worker, args=args, nprocs=2, join=True)
    dist_res = json.loads(out.read_text())
    ds = build_dataset(data, "val", IMGSZ)
    single = evaluate_model(load_model(demo["weights"]), ds, EvalConfig(batch_size=1), coco_gt_for(data, "val"), "cpu")
    assert dist_res["images"] == single.n_images == 8
    assert dist_res["detections"] == single.n_detections
    assert dist_res["stats"] == pytest.approx(single.stats, abs=1e-9)


def test_inference_runs_the_folded_model_and_leaves_the_callers(demo, monkeypatch):
    """load_weights gives a model with no batch norm left (folded); infer folds a copy of a training model and gives
    its results, leaving the model in training mode with its batch norms and weights."""
    from data.datasets import collate_fn
    from tools.inference.weights import load_weights

    loaded, imgsz, _ = load_weights(demo["weights"], torch.device("cpu"))
    assert imgsz == 640 and not any(isinstance(m, nn.BatchNorm2d) for m in loaded.modules())
    data = demo["data"]
    ds = build_dataset(data, "val", IMGSZ, augment=False)
    loader = torch.utils.data.DataLoader(ds, batch_size=4, collate_fn=collate_fn)
    torch.manual_seed(0)
    model = build_model("yolov4-tiny-n", nc=len(data["names"]), names=data["names"]).train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = EvalConfig(conf_thres=0.0, max_det=5)
    res = infer(model, loader, "cpu", cfg, cat_ids=list(range(len(data["names"])))).results
    assert model.training and all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())
    monkeypatch.setattr("tools.inference.loop.folded_for_eval", lambda m: m)  # the unfolded model, as before
    ref = infer(model, loader, "cpu", cfg, cat_ids=list(range(len(data["names"])))).results
    assert len(res) == len(ref) > 0
    assert sorted(r["score"] for r in res) == pytest.approx(sorted(r["score"] for r in ref), abs=1e-5)
