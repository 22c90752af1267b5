"""How a large dataset starts: ``python tools/bench_data.py --n 20000 100000``.

Generates (once, reused) a yolov5-layout split of N small JPEGs (320x240, 3 boxes each) under ``--root`` and,
for each N, builds ``data.datasets.YoloDataset`` twice in fresh processes: cold (no verification cache: every
header and label file read) and warm (cache hit). Prints seconds and the process's peak resident memory
(``VmHWM``) of each, and the training data path's images per second (augmented samples through a
DataLoader with ``--workers`` workers, ``--batches`` batches of 16) at ``--small`` images and at N, the
ratio between the two showing whether per-sample cost grows with the dataset. ``--step-rounds R`` also times
the whole training step (data, ``yolov4-tiny-s`` forward, ``YoloLoss``, backward, SGD; one thread) on both
sets, R alternated fresh processes each, and prints the medians and their ratio.

``--baseline DIR`` also builds each set of at most 20k images with the ``data`` package of another checkout
(the reader before the verification cache: ``git archive 306d7b5 | tar -x -C DIR``), for the ratio.

``--coco N_IMAGES N_ANNS`` instead generates a COCO instances file of that size and times
``data.coco.read_coco`` against ``pycocotools.coco.COCO`` on it, each in a fresh process.

Every figure is wall-clock on this machine, measured in this run; both sides of a ratio run back to back.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ROOT = Path(__file__).resolve().parents[1]
W, H, BOXES = 320, 240, 3
BASELINE_MAX = 20000  # the pre-issue-20 reader held every decoded image: 5 GB at 20k


def generate(root: Path, n: int, seed: int = 0) -> Path:
    """``root/images/train/*.jpg`` and ``root/labels/train/*.txt`` for ``n`` images; returns the images folder.

    Reused when ``root/.complete-<n>`` exists. 256 pictures (flat colour, 3 filled rectangles) are encoded
    and written round-robin with their labels: every file is separate, as verification and loading see them."""
    import cv2
    import numpy as np

    from data.sources import label_text

    images, labels = root / "images" / "train", root / "labels" / "train"
    marker = root / f".complete-{n}"
    if marker.exists():
        return images
    images.mkdir(parents=True, exist_ok=True)
    labels.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    variants = []  # encoding is the slow part: 256 distinct pictures, each file its own copy with its own labels
    for _ in range(min(n, 256)):
        img = np.full((H, W, 3), rng.integers(0, 255, 3), np.uint8)
        rows = []
        for _ in range(BOXES):
            w, h = rng.uniform(0.1, 0.4, 2)
            cx, cy = rng.uniform(w / 2, 1 - w / 2), rng.uniform(h / 2, 1 - h / 2)
            x1, y1, x2, y2 = int((cx - w / 2) * W), int((cy - h / 2) * H), int((cx + w / 2) * W), int((cy + h / 2) * H)
            cv2.rectangle(img, (x1, y1), (x2, y2), [int(v) for v in rng.integers(0, 255, 3)], -1)
            rows.append([int(rng.integers(0, 3)), cx, cy, w, h])
        variants.append((cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes(), label_text(rows)))
    for i in range(n):
        jpg, text = variants[i % len(variants)]
        (images / f"{i:06d}.jpg").write_bytes(jpg)
        (labels / f"{i:06d}.txt").write_text(text)
        if (i + 1) % 10000 == 0:
            print(f"  generated {i + 1}/{n} images ({time.perf_counter() - t0:.0f} s)", flush=True)
    marker.write_text("")
    return images


def subset_list(root: Path, images: Path, n: int) -> Path:
    """A ``.txt`` list of the first ``n`` images (its own verification cache ``train-<n>.cache``)."""
    lst = root / f"train-{n}.txt"
    if not lst.exists():
        names = sorted(os.listdir(images))[:n]
        lst.write_text("".join(f"{images / f}\n" for f in names))
    return lst


PEAK = """
def peak_mb():  # VmHWM: this process's own peak (ru_maxrss would carry the forking parent's over exec)
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024
"""


def _child(code: str) -> dict:
    """Run ``code`` in a fresh interpreter (cold imports, own peak RSS); it prints one JSON line last."""
    code = PEAK + code
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"child failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


IMPORTS = """
import json, sys
sys.path.insert(0, {root!r})
import data.datasets
print(json.dumps({{"rss_mb": peak_mb()}}))
"""

BUILD = """
import json, sys, time, warnings
sys.path.insert(0, {root!r})
from data.datasets import YoloDataset
warnings.simplefilter("ignore")
t0 = time.perf_counter()
ds = YoloDataset({src!r}, imgsz=320, names=["a", "b", "c"])
dt = time.perf_counter() - t0
print(json.dumps({{"s": dt, "n": len(ds), "rss_mb": peak_mb()}}))
"""

SPEED = """
import json, sys, time, warnings
sys.path.insert(0, {root!r})
import torch
from torch.utils.data import DataLoader, RandomSampler
from data.datasets import YoloDataset, collate_fn
warnings.simplefilter("ignore")
torch.set_num_threads(1)
ds = YoloDataset({src!r}, imgsz=320, augment=True, names=["a", "b", "c"], seed=0)
g = torch.Generator().manual_seed(0)
sampler = RandomSampler(ds, num_samples=16 * ({batches} + 1), generator=g)  # whole permutations, as many as needed
dl = DataLoader(ds, batch_size=16, sampler=sampler, num_workers={workers}, collate_fn=collate_fn)
it = iter(dl)
next(it)
t0 = time.perf_counter()
for _ in range({batches}):
    next(it)
print(json.dumps({{"img_s": 16 * {batches} / (time.perf_counter() - t0)}}))
"""

STEP = """
import json, statistics, sys, time, warnings
sys.path.insert(0, {root!r})
import torch
from torch.utils.data import DataLoader, RandomSampler
from data.datasets import YoloDataset, collate_fn
from detloss import split_ignore
from models import build_model
from tools.training.config import TrainConfig
from tools.training.hyp import load_hyp
from tools.training.setup import build_loss
warnings.simplefilter("ignore")
torch.set_num_threads(1)
torch.manual_seed(0)
ds = YoloDataset({src!r}, imgsz=320, augment=True, names=["a", "b", "c"], seed=0)
g = torch.Generator().manual_seed(0)
sampler = RandomSampler(ds, num_samples=16 * ({batches} + 2), generator=g)
dl = DataLoader(ds, batch_size=16, sampler=sampler, num_workers={workers}, collate_fn=collate_fn)
model = build_model("yolov4-tiny-s", 3, ["a", "b", "c"]).train()
loss_fn = build_loss(model, TrainConfig(imgsz=320), load_hyp(None), ds)
sgd = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
it = iter(dl)
times = []
for i in range({batches} + 2):  # the trainer's step: data, forward, loss, backward, optimizer
    t0 = time.perf_counter()
    imgs, targets, _, _ = next(it)
    targets, ignore = split_ignore(targets)
    loss, _ = loss_fn(model(imgs.float() / 255), targets, ignore)
    sgd.zero_grad(set_to_none=True)
    loss.backward()
    sgd.step()
    times.append(time.perf_counter() - t0)
print(json.dumps({{"img_s": 16 / statistics.median(times[2:])}}))
"""

COCO_OURS = """
import json, sys, time
sys.path.insert(0, {root!r})
from data.coco import read_coco
from data.report import DatasetReport
t0 = time.perf_counter()
idx = read_coco({path!r}, DatasetReport(source="bench"))
dt = time.perf_counter() - t0
rss = peak_mb()
print(json.dumps({{"s": dt, "n": len(idx.image_ids), "rss_mb": rss}}))
"""

COCO_PYCOCOTOOLS = """
import contextlib, io, json, time
from pycocotools.coco import COCO
t0 = time.perf_counter()
with contextlib.redirect_stdout(io.StringIO()):
    c = COCO({path!r})
dt = time.perf_counter() - t0
print(json.dumps({{"s": dt, "n": len(c.imgs), "rss_mb": peak_mb()}}))
"""


def bench_yolo(
    root: Path, sizes: list[int], small: int, workers: int, batches: int, baseline: str | None, step_rounds: int = 0
) -> None:
    images = generate(root, max(sizes))
    in_folder = len(os.listdir(images))  # an earlier, larger run may have left more: lists pick the first n
    base = _child(IMPORTS.format(root=str(ROOT)))["rss_mb"]
    print(f"peak RSS of the imports alone (torch, cv2, numpy, data): {base:.0f} MB")
    print(f"{'images':>8} {'cold s':>8} {'cold MB':>8} {'warm s':>8} {'warm MB':>8}")
    for n in sizes:
        src = str(subset_list(root, images, n)) if n < in_folder else str(images)
        cache = Path(src).with_suffix(".cache") if src.endswith(".txt") else root / "labels" / "train.cache"
        cache.unlink(missing_ok=True)
        cold = _child(BUILD.format(root=str(ROOT), src=src))
        warm = _child(BUILD.format(root=str(ROOT), src=src))
        print(f"{n:>8} {cold['s']:>8.1f} {cold['rss_mb']:>8.0f} {warm['s']:>8.2f} {warm['rss_mb']:>8.0f}", flush=True)
        if baseline and n <= BASELINE_MAX:
            old = _child(BUILD.format(root=str(Path(baseline).resolve()), src=src))
            ratio = f"{old['s'] / cold['s']:.1f}x the cold time, {old['s'] / warm['s']:.0f}x the warm"
            print(f"{'':>8} baseline {baseline}: {old['s']:.1f} s, {old['rss_mb']:.0f} MB ({ratio})", flush=True)
    if batches:
        big = str(images)
        lst = str(subset_list(root, images, small))
        a = _child(SPEED.format(root=str(ROOT), src=lst, workers=workers, batches=batches))
        b = _child(SPEED.format(root=str(ROOT), src=big, workers=workers, batches=batches))
        print(f"data path img/s ({workers} workers, augmented, 320 px): {small} images {a['img_s']:.0f}, "
              f"{max(sizes)} images {b['img_s']:.0f} (ratio {b['img_s'] / a['img_s']:.2f})")  # fmt: skip
    if step_rounds:
        lst, big = str(subset_list(root, images, small)), str(images)
        runs: dict[str, list[float]] = {lst: [], big: []}
        for r in range(step_rounds):  # alternated, the order swapped each round: a load change hits both alike
            for src in (lst, big) if r % 2 == 0 else (big, lst):
                code = STEP.format(root=str(ROOT), src=src, workers=workers, batches=batches)
                runs[src].append(_child(code)["img_s"])
        small_s, big_s = statistics.median(runs[lst]), statistics.median(runs[big])
        print(f"training step img/s (yolov4-tiny-s, 320 px, batch 16, 1 thread, {workers} workers, median of "
              f"{step_rounds} runs of {batches} steps each): {small} images {small_s:.1f}, {max(sizes)} images "
              f"{big_s:.1f} (ratio {big_s / small_s:.3f})")  # fmt: skip


def generate_coco(path: Path, n_images: int, n_anns: int, seed: int = 0) -> Path:
    """A COCO instances file: ``n_images`` 640x480 images, ``n_anns`` boxes (with small polygons), 80 categories."""
    import numpy as np

    if path.exists():
        return path
    rng = np.random.default_rng(seed)
    img_of = rng.integers(1, n_images + 1, n_anns)
    xy = rng.uniform(0, 400, (n_anns, 2)).round(2)
    wh = rng.uniform(4, 200, (n_anns, 2)).round(2)
    cats = rng.integers(1, 81, n_anns)
    images = [{"id": i, "file_name": f"{i:012d}.jpg", "width": 640, "height": 480} for i in range(1, n_images + 1)]
    anns = []
    for k in range(n_anns):
        x, y = xy[k].tolist()
        w, h = wh[k].tolist()
        seg = [[x, y, x + w, y, x + w, y + h, x, y + h]]
        anns.append({"id": k + 1, "image_id": int(img_of[k]), "category_id": int(cats[k]), "bbox": [x, y, w, h],
                     "area": round(w * h, 2), "iscrowd": 0, "segmentation": seg})  # fmt: skip
    categories = [{"id": c, "name": f"class{c}", "supercategory": "x"} for c in range(1, 81)]
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"images": images, "annotations": anns, "categories": categories}))
    tmp.replace(path)
    return path


def bench_coco(root: Path, n_images: int, n_anns: int) -> None:
    path = generate_coco(root / f"instances-{n_images}-{n_anns}.json", n_images, n_anns)
    print(f"{path} ({path.stat().st_size / 2**20:.0f} MiB)")
    for name, code in (("data.coco.read_coco", COCO_OURS), ("pycocotools.COCO", COCO_PYCOCOTOOLS)):
        try:
            r = _child(code.format(root=str(ROOT), path=str(path)))
        except RuntimeError as e:
            print(f"{name}: failed ({str(e).splitlines()[-1]})")
            continue
        print(f"{name:>22}: {r['s']:6.1f} s, peak RSS {r['rss_mb']:6.0f} MB, {r['n']} images")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default="/tmp/detloss-bench-data", help="where the generated data sets live (reused)")
    p.add_argument("--n", type=int, nargs="+", default=[20000], help="dataset sizes (subsets of the largest)")
    p.add_argument("--small", type=int, default=600, help="the small dataset of the img/s comparison")
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers of the img/s measurement")
    p.add_argument("--batches", type=int, default=40, help="batches timed for img/s (0: skip)")
    p.add_argument("--coco", type=int, nargs=2, metavar=("IMAGES", "ANNS"), help="time the COCO JSON reader instead")
    p.add_argument("--baseline", default=None,
                   help=f"another checkout built the same way (sets of <= {BASELINE_MAX} images)")  # fmt: skip
    p.add_argument("--generate-only", action="store_true", help="only generate the images")
    p.add_argument("--step-rounds", type=int, default=0,
                   help="also time the training step (data + model + loss + optimizer) on the small and the "
                        "largest set, this many alternated runs each (0: skip)")  # fmt: skip
    args = p.parse_args(argv)
    root = Path(args.root)
    root.mkdir(parents=True, exist_ok=True)
    if args.generate_only:
        generate(root, max(args.n))
    elif args.coco:
        bench_coco(root, *args.coco)
    else:
        bench_yolo(root, sorted(args.n), args.small, args.workers, args.batches, args.baseline, args.step_rounds)


if __name__ == "__main__":
    main()
