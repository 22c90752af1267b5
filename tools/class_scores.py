"""Class scores at the positives: what label smoothing does to the class branch, measured without NMS.

::

    python tools/class_scores.py --weights runs/train/a/weights/last.pt runs/train/b/weights/last.pt [--data D]

For each checkpoint, every ground-truth box of the split (``--task``, default val; no augmentation) is assigned
to its anchor cells by the loss's own assignment (:meth:`detloss.YoloLoss.assign` with the model's anchors and
strides) and the model's logits there are read. Reported, averaged over all positive cells: ``true`` the
sigmoid score of the labelled class, ``other`` the mean sigmoid of the other classes, ``max other`` the highest
other-class score, ``obj`` the objectness, and ``top1`` the fraction of positives whose best class is the
labelled one. Under YOLO smoothing with eps the class targets are ``1 - eps/2`` and ``eps/2``, so a model that
fits them puts ``true`` near ``1 - eps/2`` and ``other`` near ``eps/2``: the check that an online smoothing
variant keeps true-positive class scores at plain smoothing's level (issue 13) reads these columns.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from typing import TYPE_CHECKING  # noqa: E402

import torch  # noqa: E402

if TYPE_CHECKING:
    from models import Detector

COLUMNS = ("true", "other", "max other", "obj", "top1", "positives")


@torch.inference_mode()
def class_scores(model: Detector, loader, device: torch.device) -> dict[str, float]:
    """The module docstring's figures for ``model`` over ``loader`` (batches of ``data.datasets.collate_fn``)."""
    from detloss import YoloLoss, split_ignore

    assign = YoloLoss(**model.loss_kwargs())  # only its target assignment is used
    model.eval()
    sums = torch.zeros(5, dtype=torch.float64)
    n = 0
    for imgs, labels, _paths, _metas in loader:
        x = imgs.to(device).float() / 255.0
        _, logits = model(x, raw=True)
        targets, _ = split_ignore(labels.to(device))
        if not len(targets):
            continue
        level_targets = assign.assign(targets, [(p.shape[2], p.shape[3]) for p in logits])
        for p, t in zip(logits, level_targets):
            if not len(t.b):
                continue
            cell = p[t.b, t.a, t.gj, t.gi].float()
            cls = cell[:, 5:].sigmoid()
            true = cls.gather(1, t.tcls[:, None]).squeeze(1)
            others = cls.scatter(1, t.tcls[:, None], float("nan"))
            k = cls.shape[1]
            other_mean = others.nansum(1) / max(k - 1, 1)
            other_max = others.nan_to_num(-1.0).amax(1)
            top1 = (cls.argmax(1) == t.tcls).double()
            stack = torch.stack([true.double(), other_mean.double(), other_max.double(),
                                 cell[:, 4].sigmoid().double(), top1])  # fmt: skip
            sums += stack.sum(1).cpu()
            n += len(t.b)
    if n == 0:
        raise ValueError("the split has no ground-truth boxes: no positives to read class scores at")
    means = (sums / n).tolist()
    return dict(zip(COLUMNS, [*means, float(n)]))


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", nargs="+", required=True, help="detloss checkpoints (.pt)")
    p.add_argument("--data", default=None, help="data YAML (default: the demo)")
    p.add_argument("--task", default="val", help="split to read (default val)")
    p.add_argument("--imgsz", type=int, default=None, help="default: each checkpoint's training size")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--device", default="")
    p.add_argument("--json-out", default=None, help="write {weights: {column: value}} as JSON")
    args = p.parse_args(argv)

    from data.datasets import build_dataset, collate_fn
    from models.checkpoint import load_checkpoint, load_model
    from tools.inference import checkpoint_imgsz, select_device
    from tools.inference.datasets import resolve_data

    device = select_device(args.device)
    data = resolve_data(args.data)[0]
    out: dict[str, dict[str, float]] = {}
    print("| weights | " + " | ".join(COLUMNS) + " |\n|---|" + "---|" * len(COLUMNS))
    for w in args.weights:
        ckpt = load_checkpoint(w, map_location="cpu")
        imgsz = args.imgsz or checkpoint_imgsz(ckpt)
        ds = build_dataset(data, args.task, imgsz, augment=False)
        loader = torch.utils.data.DataLoader(ds, batch_size=args.batch_size, collate_fn=collate_fn)
        res = class_scores(load_model(ckpt, map_location=device), loader, device)
        out[w] = res
        print(f"| {w} | " + " | ".join(f"{res[c]:.4f}" if c != "positives" else f"{res[c]:.0f}" for c in COLUMNS)
              + " |")  # fmt: skip
    if args.json_out:
        import json

        from fileio import atomic_write

        atomic_write(args.json_out, json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    from tools.cli.errors import run_script

    run_script("class_scores.py", main)
