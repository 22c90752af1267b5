"""A model evaluated on a dataset: inference (``loop.infer``) then the metrics (``tools.evaluation``).

Distributed (``torchrun``, ``torch.distributed`` initialised with world size > 1): each rank infers the
images ``rank, rank + world, ...`` (no padding duplicates, unlike ``DistributedSampler``), rank 0 gathers
the results with ``gather_object`` and evaluates; the other ranks get ``None``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from data.datasets import collate_fn
from tools.evaluation.calibrators import calibrate_results
from tools.evaluation.cocojson import atomic_write_json
from tools.evaluation.config import EvalConfig
from tools.evaluation.evaluate import EvalResult, evaluate_results

from .datasets import base_dataset, ground_truth_from_dataset
from .device import select_device
from .loop import InferenceOutput, infer

__all__ = ["evaluate_model"]


def _dist() -> tuple[int, int]:
    """``(rank, world_size)``; ``(0, 1)`` unless torch.distributed is initialised with several processes."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def evaluate_model(
    model: nn.Module,
    dataset: Any,
    config: EvalConfig | None = None,
    gt: str | os.PathLike | dict | None = None,
    device: torch.device | str = "",
    save_json: str | os.PathLike | None = None,
    calibrator: Any = None,
    val_loss: Callable[[list[torch.Tensor], torch.Tensor], torch.Tensor] | None = None,
) -> EvalResult | None:
    """Infer ``model`` on ``dataset`` and COCO-evaluate the results against ``gt`` (its COCO ground truth).

    Args:
        dataset: a ``data.datasets.build_dataset(...)`` dataset (items ``(img, labels, path, meta)``, ``.cat_ids``).
        config: the evaluation's settings (:class:`tools.evaluation.config.EvalConfig`; default ``EvalConfig()``).
        gt: the split's COCO ground-truth JSON (``data.datasets.coco_gt_for``) or dict; only the images of
            ``dataset`` are evaluated. None: built from the dataset's labels (``ground_truth_from_dataset``).
        save_json: also write the COCO results there (rank 0, atomically).
        calibrator: a post-hoc calibrator (a checkpoint's ``"calibrator"`` state): the results are calibrated
            after NMS, and the returned result's ``.before`` is the evaluation of the same pass uncalibrated.
        val_loss: ``val_loss(logits, targets) -> loss items`` computed in the same forward pass (``loop.infer``);
            their mean over batches (all ranks) is the result's ``.val_loss``.

    Returns:
        ``EvalResult`` on rank 0 (``.speed``: milliseconds per image for pre/inference/nms), ``None`` elsewhere.
    """
    cfg = EvalConfig() if config is None else config
    dev = select_device(device)
    cat_ids = base_dataset(dataset).cat_ids
    parts = _infer_all_ranks(model, dataset, cfg, dev, cat_ids, val_loss)
    if parts is None:
        return None
    results = [r for p in parts for r in p.results]
    ids = list(dict.fromkeys(i for p in parts for i in p.image_ids))
    if gt is None:
        gt = ground_truth_from_dataset(dataset)
    before = None
    if calibrator is not None:
        before = evaluate_results(gt, results, cfg, img_ids=ids)
        results = calibrate_results(results, calibrator, cat_ids)
    if save_json is not None:
        atomic_write_json(save_json, results)
    res = evaluate_results(gt, results, cfg, img_ids=ids)
    res.before = before
    if val_loss is not None:
        res.val_loss = _mean_val_loss(parts)
    n = max(len(ids), 1)
    res.speed = {k: 1000.0 * v / n for k, v in parts[0].times.items()}  # rank 0's stages, ms per image of all ranks
    return res


def _infer_all_ranks(model: nn.Module, dataset: Any, cfg: EvalConfig, dev: torch.device, cat_ids: list[int],
                     val_loss: Callable | None) -> list[InferenceOutput] | None:  # fmt: skip
    """Infer this rank's shard (images ``rank, rank + world, ...``); rank 0 gets every rank's output (its own
    first), the other ranks ``None``. One process: ``[its output]``."""
    rank, world = _dist()
    shard = dataset if world == 1 else torch.utils.data.Subset(dataset, range(rank, len(dataset), world))
    # as yolov5's val.py: no more loader processes than CPU cores or batches (8 workers on 2 cores only thrash)
    workers = min(cfg.workers, os.cpu_count() or 1, -(-len(shard) // cfg.batch_size))
    loader = torch.utils.data.DataLoader(shard, batch_size=cfg.batch_size, shuffle=False, num_workers=workers,
                                         collate_fn=collate_fn, pin_memory=dev.type == "cuda")  # fmt: skip
    part = infer(model, loader, dev, cfg, cat_ids, val_loss=val_loss)
    if world == 1:
        return [part]
    gathered: list[Any] | None = [None] * world if rank == 0 else None
    torch.distributed.gather_object(part, gathered, dst=0)
    return None if gathered is None else list(gathered)


def _mean_val_loss(parts: list[InferenceOutput]) -> list[float]:
    """The validation loss items averaged over the batches of all ranks (zeros when none was computed)."""
    sums = [p.loss_sum.cpu() for p in parts if p.loss_sum is not None]
    batches = sum(p.loss_batches for p in parts)
    return (torch.stack(sums).sum(0) / max(batches, 1)).tolist() if sums else [0.0, 0.0, 0.0]
