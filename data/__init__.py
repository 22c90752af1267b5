"""detloss data: yolov5-layout and COCO JSON readers, letterbox, box-aware augmentations, demo dataset.

Used from the checkout (like yolov5's ``utils/``); imports ``torch``, ``numpy``, ``opencv`` and ``pyyaml``.
Main entry points::

    from data.datasets import build_dataset, collate_fn, YoloDataset, CocoDataset, coco_gt_for
    from data.demo import ensure_demo      # path of the built-in demo data YAML
    from data.yaml_io import load_data_yaml
    from data.letterbox import letterbox, unletterbox_boxes
"""
