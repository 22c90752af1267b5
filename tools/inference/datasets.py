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
    """A COCO ground-truth dict from a ``data`` dataset's own labels, for splits without a COCO JSON.

    Uses ``labels`` (per image ``[n, 5]`` ``cls, cx, cy, w, h`` normalised to the original image), ``shapes``
    (``(h0, w0)``), ``image_ids``, ``cat_ids`` and ``names``. Areas are box ``w * h`` in pixels. An ignore region
    (class -1 row) becomes a crowd annotation of every category (COCO matching then ignores detections inside it);
    prefer the split's own COCO JSON when there is one. Rows sharing a box with several classes stay separate
    ground truths, one per class.
    """
    ds = base_dataset(dataset)
    images: list[dict] = []
    anns: list[dict] = []
    for image_id, (h0, w0), lab in zip(ds.image_ids, ds.shapes, ds.labels):
        images.append({"id": image_id, "width": int(w0), "height": int(h0)})
        for cls, cx, cy, w, h in lab.tolist():
            box = [(cx - w / 2) * w0, (cy - h / 2) * h0, w * w0, h * h0]
            crowd = int(cls) < 0
            for cat in ds.cat_ids if crowd else [ds.cat_ids[int(cls)]]:
                anns.append(
                    {
                        "id": len(anns) + 1,
                        "image_id": image_id,
                        "category_id": cat,
                        "bbox": box,
                        "area": box[2] * box[3],
                        "iscrowd": int(crowd),
                    }
                )
    categories = [{"id": c, "name": str(n)} for c, n in zip(ds.cat_ids, ds.names)]
    return {"images": images, "annotations": anns, "categories": categories}
