"""Sliced prediction of a peer detector (ultralytics YOLO11n or yolov5n) on the trees val scene, with ``sahi``.

Writes COCO results whose ``image_id`` and ``category_id`` are those of our ground truth JSON (one image, one
class), so ``python tools/eval.py --gt GT --dt OUT --coco-max-dets 300`` scores the peer as it scores us. Runs in
the peers' scratch venv (``sahi``, ``ultralytics``, ``yolov5``; never a dependency of this project)::

    python experiments/trees_peers/sahi_peer.py ultralytics runs/yolo11n/weights/last.pt gt_val_full.json dt.json

Slicing as ``tools/eval.py --slice 320``: 320 px tiles overlapping by 20 % (64 px), NMS at IoU 0.6 across tiles,
the 1000 highest scores kept.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("kind", choices=["ultralytics", "yolov5"], help="sahi model type")
    ap.add_argument("weights")
    ap.add_argument("gt", help="our COCO ground truth of the scene (data.convert.yolo_to_coco, split val_full)")
    ap.add_argument("out", help="COCO results JSON to write")
    ap.add_argument("--images", default="datasets/trees/images/val_full", help="folder of the scene image")
    args = ap.parse_args(argv)

    from sahi import AutoDetectionModel  # the peers' venv only
    from sahi.predict import get_sliced_prediction

    gt = json.loads(Path(args.gt).read_text())
    image, category = gt["images"][0], gt["categories"][0]["id"]
    model = AutoDetectionModel.from_pretrained(model_type=args.kind, model_path=args.weights,
                                               confidence_threshold=0.001, device="cpu", image_size=320)  # fmt: skip
    result = get_sliced_prediction(str(Path(args.images) / Path(image["file_name"]).name), model,
                                   slice_height=320, slice_width=320, overlap_height_ratio=0.2,
                                   overlap_width_ratio=0.2, postprocess_type="NMS", postprocess_match_metric="IOU",
                                   postprocess_match_threshold=0.6, verbose=0)  # fmt: skip
    dets = []
    for p in result.object_prediction_list:
        x1, y1, x2, y2 = (float(v) for v in p.bbox.to_xyxy())
        dets.append({"image_id": image["id"], "category_id": category, "bbox": [x1, y1, x2 - x1, y2 - y1],
                     "score": float(p.score.value)})  # fmt: skip
    dets = sorted(dets, key=lambda d: -d["score"])[:1000]
    Path(args.out).write_text(json.dumps(dets))
    print(f"{len(dets)} detections -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
