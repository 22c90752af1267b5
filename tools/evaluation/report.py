"""Text reports: the COCO summary block (cocoapi's layout) and a per-class AP table (yolov5's layout)."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["format_per_class", "format_stats"]

# (AP or AR, IoU, area, maxDets) for each of the 12 numbers, as COCOeval.summarize() labels them.
_ROWS = (
    ("Precision", "0.50:0.95", "all", 100),
    ("Precision", "0.50", "all", 100),
    ("Precision", "0.75", "all", 100),
    ("Precision", "0.50:0.95", "small", 100),
    ("Precision", "0.50:0.95", "medium", 100),
    ("Precision", "0.50:0.95", "large", 100),
    ("Recall", "0.50:0.95", "all", 1),
    ("Recall", "0.50:0.95", "all", 10),
    ("Recall", "0.50:0.95", "all", 100),
    ("Recall", "0.50:0.95", "small", 100),
    ("Recall", "0.50:0.95", "medium", 100),
    ("Recall", "0.50:0.95", "large", 100),
)


def format_stats(stats: Sequence[float], max_dets: int = 100) -> str:
    """The 12 numbers in the familiar cocoapi block (3 decimals; -1.000 where the range has no ground truth);
    ``max_dets``: the largest maxDets the numbers were computed with (COCOeval's 100), shown in its place."""
    if len(stats) != 12:
        raise ValueError(f"expected the 12 COCO stats, got {len(stats)}")
    lines = []
    for (kind, iou, area, max_det), value in zip(_ROWS, stats):
        max_det = max_dets if max_det == 100 else max_det
        title = f"Average {kind}"
        tag = "(AP)" if kind == "Precision" else "(AR)"
        lines.append(f" {title:<18} {tag} @[ IoU={iou:<9} | area={area:>6} | maxDets={max_det:>3} ] = {value:0.3f}")
    return "\n".join(lines)


def format_per_class(per_class: Sequence[dict], stats: Sequence[float], n_images: int | None = None) -> str:
    """Per-class table: class, category id, instances, detections, AP50, AP50-95; an 'all' row first.

    Classes without ground truth show '-' for AP (COCO leaves them out of the mean).
    """
    width = max([len("all")] + [len(str(c["name"])) for c in per_class]) + 2
    head = f"{'Class':>{width}} {'id':>5} {'Instances':>10} {'Dets':>8} {'AP50':>8} {'AP50-95':>8}"
    total_inst = sum(c["instances"] for c in per_class)
    total_det = sum(c["detections"] for c in per_class)
    imgs = f" ({n_images} images)" if n_images is not None else ""
    rows = [head, f"{'all':>{width}} {'':>5} {total_inst:>10} {total_det:>8} {stats[1]:>8.3f} {stats[0]:>8.3f}{imgs}"]
    for c in per_class:
        ap50 = f"{c['ap50']:.3f}" if c["ap50"] > -1 else "-"
        ap = f"{c['ap']:.3f}" if c["ap"] > -1 else "-"
        rows.append(
            f"{str(c['name']):>{width}} {str(c['category_id']):>5} {c['instances']:>10} {c['detections']:>8} "
            f"{ap50:>8} {ap:>8}"
        )
    return "\n".join(rows)
