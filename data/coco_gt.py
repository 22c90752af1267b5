"""COCO ground truth from a dataset's own labels: the one writer behind ``data.convert.yolo_to_coco`` and the
evaluation of splits that have no COCO JSON (``tools.inference.datasets.ground_truth_from_dataset``).

Category ids (one rule, held by the readers in ``dataset.cat_ids``, class index ``k`` -> ``cat_ids[k]``):

* a dataset read from COCO JSON (:class:`data.datasets.CocoDataset`) keeps its original category ids
  (e.g. 1, 3, 7: COCO's own 80 classes are ids 1..90 with gaps);
* anything else (the yolov5 layout, :class:`data.datasets.YoloDataset`) uses the class index itself,
  ``cat_ids == [0, 1, ..., nc - 1]``: the layout has no ids of its own, a predictions file then needs no
  map (``tools.evaluation.cocojson.detections_to_coco`` with ``cat_ids=None`` writes the class index), and
  the JSON files made before (the demo's, ``yolo_to_coco``'s) keep their meaning. Category id 0 is valid
  COCO (only an *annotation* id of 0 trips pycocotools, so annotation ids start at 1).

Detections must take their ids from the same ``dataset.cat_ids`` (``tools.inference.loop.infer`` does),
so ground truth and detections agree for any dataset.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["coco_from_labels"]


def coco_from_labels(dataset: Any, root: str | os.PathLike | None = None) -> dict:
    """A COCO ground-truth dict (``images``, ``annotations``, ``categories``) from a dataset's labels.

    Reads ``labels`` (per image ``[n, 5]`` ``cls, cx, cy, w, h`` normalised to the original image), ``shapes``
    (``(h0, w0)``), ``image_ids``, ``cat_ids``, ``names`` and, with ``root``, ``im_files``: each image then
    gets a ``file_name`` relative to ``root`` (its full path when outside ``root``). Boxes are
    ``[x, y, w, h]`` float pixels, ``area = w * h``, annotation ids ``1..n`` in image order. An ignore region
    (class -1 row) becomes a crowd annotation of every category (COCO matching ignores detections inside it;
    read back by ``CocoDataset`` as one ignore region). Rows sharing a box with several classes stay separate
    ground truths, one per class. A class index outside ``cat_ids`` raises ``ValueError``.
    """
    cat_ids = list(dataset.cat_ids)
    images: list[dict] = []
    anns: list[dict] = []
    for k, (image_id, (h0, w0), lab) in enumerate(zip(dataset.image_ids, dataset.shapes, dataset.labels)):
        name = {} if root is None else {"file_name": _relative(dataset.im_files[k], Path(root))}
        image = {"id": int(image_id), **name, "width": int(w0), "height": int(h0)}
        images.append(image)
        for cls, cx, cy, w, h in lab.tolist():
            box = [(cx - w / 2) * w0, (cy - h / 2) * h0, w * w0, h * h0]
            crowd = int(cls) < 0
            if not crowd and int(cls) >= len(cat_ids):
                raise ValueError(f"image {image['id']}: class {int(cls)} but the dataset has {len(cat_ids)} cat_ids")
            for cat in cat_ids if crowd else [cat_ids[int(cls)]]:
                anns.append(
                    {
                        "id": len(anns) + 1,
                        "image_id": image["id"],
                        "category_id": cat,
                        "bbox": box,
                        "area": box[2] * box[3],
                        "iscrowd": int(crowd),
                    }
                )
    categories = [{"id": c, "name": str(n)} for c, n in zip(cat_ids, dataset.names)]
    return {"images": images, "annotations": anns, "categories": categories}


def _relative(file: str, root: Path) -> str:
    return os.path.relpath(file, root) if Path(file).is_relative_to(root) else str(file)
