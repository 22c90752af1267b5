"""Large-dataset behaviour: the verification cache (hit, miss after a touched file, corrupt or foreign file
rebuilt, read-only folder), labels of a linked images folder, images that fail only at load time, the disk
image cache and the compact tables."""

import os
import warnings

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from data import index_cache
from data.base import UnreadableImageError
from data.cache import fit_size, fitted_shapes, npy_path
from data.datasets import YoloDataset, build_dataset, collate_fn
from data.report import DatasetError, DatasetWarning
from data.store import Column, RaggedRows, Strings

NAMES = ["a", "b"]


def make_split(root, n=6, size=(30, 40), labels=True):
    """``root/images/train/{k}.png`` (h x w = size) and, when ``labels``, one box each in ``root/labels/train``."""
    (root / "images" / "train").mkdir(parents=True, exist_ok=True)
    (root / "labels" / "train").mkdir(parents=True, exist_ok=True)
    for k in range(n):
        cv2.imwrite(str(root / "images" / "train" / f"{k}.png"), np.full((*size, 3), 20 * k, np.uint8))
        if labels:
            (root / "labels" / "train" / f"{k}.txt").write_text(f"{k % 2} 0.5 0.5 0.{k + 1} 0.2\n")
    return root / "images" / "train"


def read_only(monkeypatch, folder):
    """Cache writes under ``folder`` fail as on a read-only mount (the fallback folder is not affected)."""
    real = index_cache.atomic_write

    def refuse(path, data):
        if str(path).startswith(str(folder)):
            raise PermissionError(13, "read-only", str(path))
        return real(path, data)

    monkeypatch.setattr(index_cache, "atomic_write", refuse)


def build(src, capsys, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DatasetWarning)
        ds = YoloDataset(src, imgsz=64, names=NAMES, **kw)
    return ds, capsys.readouterr().out


def test_cache_hit_then_miss_after_a_touched_file(tmp_path, capsys):
    src = make_split(tmp_path)
    (tmp_path / "labels" / "train" / "5.txt").unlink()  # a background
    first, out = build(src, capsys)
    cache = tmp_path / "labels" / "train.cache"  # yolov5's place: beside the labels folder
    assert cache.is_file() and "new cache" in out and "cache found" not in out
    again, out = build(src, capsys)
    assert "cache found: 6 images, 1 backgrounds, 0 corrupt" in out
    assert again.labels == first.labels and again.shapes == first.shapes and again.im_files == first.im_files
    assert again.report.counts == first.report.counts
    label = tmp_path / "labels" / "train" / "0.txt"
    label.write_text("1 0.5 0.5 0.3 0.3\n")
    st = label.stat()
    os.utime(label, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    changed, out = build(src, capsys)
    assert "out of date" in out and "cache found" not in out
    np.testing.assert_allclose(changed.labels[0], [[1, 0.5, 0.5, 0.3, 0.3]])


def test_cache_replays_the_report_and_strict(tmp_path, capsys):
    src = make_split(tmp_path)
    (tmp_path / "labels" / "train" / "2.txt").write_text("0 0.5 0.5 0.2\n")  # a bad row
    (tmp_path / "images" / "train" / "3.png").write_bytes(b"junk")  # a corrupt image
    with pytest.warns(DatasetWarning, match="bad_row: 1"):
        YoloDataset(src, imgsz=64, names=NAMES)
    with pytest.warns(DatasetWarning, match="bad_row: 1") as rec:
        ds = YoloDataset(src, imgsz=64, names=NAMES)
    assert "cache found: 5 images, 1 backgrounds, 1 corrupt" in capsys.readouterr().out
    assert len(rec) == 1 and ds.report.counts["bad_image"] == 1 and len(ds) == 5
    with pytest.raises(DatasetError, match="2.txt:1"):
        YoloDataset(src, imgsz=64, names=NAMES, strict=True)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "foreign", "wrong lengths"])
def test_corrupt_or_foreign_cache_is_reported_and_rebuilt(tmp_path, capsys, damage):
    src = make_split(tmp_path)
    ref, _ = build(src, capsys)
    cache = tmp_path / "labels" / "train.cache"
    if damage == "garbage":
        cache.write_bytes(b"\x00not a cache" * 10)
    elif damage == "truncated":
        cache.write_bytes(cache.read_bytes()[:200])
    elif damage == "foreign":
        np.savez(open(cache, "wb"), magic=np.array("something else"), version=np.array(1))
    else:
        with np.load(cache) as z:
            parts = dict(z)
        parts["keep"] = parts["keep"][:-1]
        np.savez(open(cache, "wb"), **parts)
    ds, out = build(src, capsys)
    assert "cache found" not in out and "verifying again" in out and str(cache) in out
    assert ds.labels == ref.labels and ds.shapes == ref.shapes
    _, out = build(src, capsys)
    assert "cache found: 6 images" in out  # rebuilt and written again


def test_read_only_labels_folder_caches_under_the_detloss_cache(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DETLOSS_CACHE", str(tmp_path / "dc"))
    src = make_split(tmp_path / "ds")
    read_only(monkeypatch, tmp_path / "ds")
    build(src, capsys)
    assert not (tmp_path / "ds" / "labels" / "train.cache").exists()
    assert len(list((tmp_path / "dc" / "index").glob("train-*.cache"))) == 1
    _, out = build(src, capsys)
    assert "cache found: 6 images" in out and str(tmp_path / "dc") in out


def test_fallback_cache_folder_keeps_the_most_recent_files(tmp_path, capsys, monkeypatch):
    """Temporary datasets (one fallback file per path) do not fill the detloss cache without end."""
    monkeypatch.setenv("DETLOSS_CACHE", str(tmp_path / "dc"))
    index = tmp_path / "dc" / "index"
    index.mkdir(parents=True)
    for k in range(5):
        (index / f"old{k}.cache").write_bytes(b"x")
        os.utime(index / f"old{k}.cache", ns=(10**9 * (k + 1),) * 2)
    (index / "notes.txt").write_text("kept: not a cache")
    monkeypatch.setattr(index_cache, "KEEP_FALLBACK", 3)
    src = make_split(tmp_path / "ds")
    read_only(monkeypatch, tmp_path / "ds")
    build(src, capsys)
    left = sorted(p.name for p in index.iterdir())
    assert left == ["notes.txt", "old3.cache", "old4.cache", *[p.name for p in index.glob("train-*.cache")]]
    assert len(left) == 4  # the new cache and the two newest old ones
    _, out = build(src, capsys)
    assert "cache found: 6 images" in out


def test_labels_of_a_linked_images_folder_are_the_datasets_own(tmp_path, capsys):
    other = tmp_path / "other"
    make_split(other)  # its labels: class k % 2, width 0.(k+1)
    mine = tmp_path / "mine"
    (mine / "images").mkdir(parents=True)
    (mine / "images" / "train").symlink_to(other / "images" / "train", target_is_directory=True)
    (mine / "labels" / "train").mkdir(parents=True)
    for k in range(6):
        (mine / "labels" / "train" / f"{k}.txt").write_text("1 0.25 0.25 0.5 0.5\n")
    data = {"path": str(mine), "train": "images/train", "val": "images/train", "names": NAMES}
    ds = build_dataset(data, "train", 64)
    assert all(f.startswith(str(mine / "images" / "train")) for f in ds.im_files)
    for k in range(6):
        np.testing.assert_allclose(ds.labels[k], [[1, 0.25, 0.25, 0.5, 0.5]])
    capsys.readouterr()


def test_a_split_without_label_files_is_a_loud_warning_naming_the_folder(tmp_path):
    src = make_split(tmp_path, labels=False)
    with pytest.warns(DatasetWarning, match=r"6 of 6 images have no label file .*labels/train"):
        YoloDataset(src, imgsz=64, names=NAMES)
    for k in range(2):
        (tmp_path / "labels" / "train" / f"{k}.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    with pytest.warns(DatasetWarning, match="4 of 6 images have no label file"):  # most of them
        YoloDataset(src, imgsz=64, names=NAMES)
    for k in range(2, 4):
        (tmp_path / "labels" / "train" / f"{k}.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 2 of 6 backgrounds is normal
        YoloDataset(src, imgsz=64, names=NAMES)


def cut_png(path):
    """Keep the header (it still says 30x40) but cut the pixel data: verification passes, decoding fails."""
    data = path.read_bytes()
    path.write_bytes(data[:60])


def test_truncated_at_load_is_skipped_and_reported_across_workers(tmp_path, capsys):
    src = make_split(tmp_path, n=8)
    bad = tmp_path / "images" / "train" / "3.png"
    cut_png(bad)
    aug, _ = build(src, capsys, augment=True)
    plain, _ = build(src, capsys)
    assert len(aug) == 8 and aug.skipped_at_load() == []  # the header is fine
    with pytest.raises(UnreadableImageError, match="3.png"):
        plain.load_image(3)
    loader = DataLoader(aug, batch_size=4, num_workers=2, collate_fn=collate_fn)
    seen = [p for _, _, paths, _ in loader for p in paths]
    assert len(seen) == 8 and str(bad) not in seen  # the epoch went on, batches kept their size
    assert aug.skipped_at_load() == [str(bad)]  # flagged in a worker, seen here
    assert plain[3] is None
    imgs, targets, paths, metas = collate_fn([plain[2], plain[3], plain[4]])
    assert imgs.shape[0] == 2 and str(bad) not in paths and plain.skipped_at_load() == [str(bad)]
    plain.cache_images("ram")  # the RAM cache skips it too
    assert plain[3] is None and plain[4] is not None


def test_lying_header_is_skipped_at_load(tmp_path, capsys):
    src = make_split(tmp_path, n=3)
    path = tmp_path / "images" / "train" / "1.png"
    data = bytearray(path.read_bytes())
    data[16:24] = (80).to_bytes(4, "big") + (60).to_bytes(4, "big")  # IHDR says 80x60, the pixels are 40x30
    path.write_bytes(bytes(data))
    ds, _ = build(src, capsys)
    assert ds.shapes[1] == (60, 80)  # what the header said
    assert ds[1] is None and ds.skipped_at_load() == [str(path)]


def test_disk_cache_writes_npy_beside_and_equals_uncached(tmp_path, capsys, monkeypatch):
    src = make_split(tmp_path, n=4, size=(50, 90))
    plain, _ = build(src, capsys, augment=True, seed=1)
    disk, _ = build(src, capsys, augment=True, seed=1)
    disk.cache_images("disk")
    for i in range(4):
        assert torch.equal(plain[i][0], disk[i][0]) and torch.equal(plain[i][1], disk[i][1])
    w, h, _ = fit_size(50, 90, 64)
    npy = tmp_path / "images" / "train" / "0.npy"
    assert npy.is_file() and np.load(npy).shape == (h, w, 3)
    for i in range(4):  # read back from the .npy files
        assert torch.equal(plain[i][0], disk[i][0])
    monkeypatch.setenv("DETLOSS_CACHE", str(tmp_path / "dc"))
    monkeypatch.setattr("data.cache.os.access", lambda *a: False)  # a read-only image folder
    assert npy_path(str(tmp_path / "images" / "train" / "0.png")).startswith(str(tmp_path / "dc" / "npy"))


def test_fitted_shapes_match_fit_size():
    shapes = np.array([[480, 640], [640, 480], [37, 53], [1, 999], [333, 333], [241, 319]])
    for imgsz in (64, 320, 640, 1000):
        got = fitted_shapes(shapes, imgsz)
        want = [fit_size(h, w, imgsz)[1::-1] for h, w in shapes]
        assert got.tolist() == [list(x) for x in want]


def test_compact_tables():
    arrays = [np.zeros((0, 5)), np.arange(10).reshape(2, 5), np.ones((1, 5))]
    rr = RaggedRows.from_arrays(arrays)
    assert len(rr) == 3 and rr == arrays and rr[-1].tolist() == [[1.0] * 5]
    sub = rr.take([2, 1])
    assert sub == [arrays[2], arrays[1]] and sub.rows.dtype == np.float32
    got = rr[1]
    got[:] = -1
    assert rr[1].min() == 0  # items are copies: the shared table cannot be changed through them
    names = ["/a/é.jpg", "/b/x.png", os.fsdecode(b"/c/\xff.jpg")]
    st = Strings.from_list(names)
    assert st == names and st.take([2]) == [names[2]]
    col = Column([[3, 4], [5, 6]])
    assert col == [(3, 4), (5, 6)] and col[1] == (5, 6) and Column([7, 8]) == [7, 8]
    with pytest.raises(IndexError):
        rr[3]
    with pytest.raises(ValueError, match="offsets"):
        RaggedRows(np.zeros((2, 5)), np.array([0, 3]))
