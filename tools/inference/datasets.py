"""The data a model runs on: ``--data`` or the demo, and a split's ground truth from its own labels.

"No ``--data`` means the built-in demo dataset" is written here once (:func:`resolve_data`), for training,
evaluation and calibration alike.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

__all__ = ["base_dataset", "ground_truth_from_dataset", "resolve_data"]


def resolve_data(data: str | os.PathLike[str] | None) -> tuple[dict[str, Any], str]:
    """``(data dict, label for logs)`` of a data YAML; no ``--data`` (None or "") means the built-in demo."""
    from data.demo import ensure_demo
    from data.yaml_io import load_data_yaml

    path = Path(data) if data else ensure_demo()
    return load_data_yaml(path), str(path)


def base_dataset(dataset: Any) -> Any:
    """The dataset under ``torch.utils.data.Subset`` wrappers (it holds ``cat_ids``, ``labels``, ...)."""
    while isinstance(dataset, torch.utils.data.Subset):
        dataset = dataset.dataset
    return dataset


def ground_truth_from_dataset(dataset: Any) -> dict:
    """A COCO ground-truth dict from a ``data`` dataset's own labels (``Subset`` wrappers unwrapped), for splits
    without a COCO JSON: :func:`data.coco_gt.coco_from_labels`, whose category-id rule the detections share
    (``cat_ids`` of the dataset). Prefer the split's own COCO JSON when there is one.
    """
    from data.coco_gt import coco_from_labels

    return coco_from_labels(base_dataset(dataset))
