"""Forked DataLoader workers do not copy the dataset's index as they read it: their private memory stays flat
over an epoch (the index is a few numpy arrays, :mod:`data.store`), where per-image Python objects grow it."""

import gc
import sys
import warnings

import cv2
import numpy as np
import pytest
from torch.utils.data import DataLoader, Dataset, get_worker_info

from data.datasets import YoloDataset
from data.report import DatasetWarning

N = 4000
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/smaps_rollup")


def private_kb() -> int:
    """Private (copied or own) resident memory of this process in KiB."""
    total = 0
    with open("/proc/self/smaps_rollup") as f:
        for line in f:
            if line.startswith(("Private_Dirty:", "Private_Clean:")):
                total += int(line.split()[1])
    return total


class Probe(Dataset):
    """Each item: ``(worker id, private KiB now)`` after making the real sample (which is then dropped); the
    memory is read every 100 samples (reading it is slower than a sample)."""

    def __init__(self, ds):
        self.ds, self.count = ds, 0

    def __len__(self):
        return len(self.ds)

    def __getitem__(self, i):
        self.ds[i]
        self.count += 1  # per worker process
        return get_worker_info().id, private_kb() if self.count % 100 == 0 else None


def growth_per_worker(ds) -> list[int]:
    loader = DataLoader(Probe(ds), batch_size=50, num_workers=2, collate_fn=lambda b: b)
    seen: dict[int, list[int]] = {}
    gc.freeze()  # a full collection in a worker would touch every object of the test process once: not the index
    try:
        for batch in loader:
            for wid, kb in batch:
                if kb is not None:
                    seen.setdefault(wid, []).append(kb)
    finally:
        gc.unfreeze()
    # from a quarter into the epoch (first-use allocations of the decoders done) to the end
    return [v[-1] - v[len(v) // 4] for v in seen.values()]


@pytest.fixture(scope="module")
def many(tmp_path_factory):
    root = tmp_path_factory.mktemp("many")
    (root / "images").mkdir()
    (root / "labels").mkdir()
    png = cv2.imencode(".png", np.full((8, 8, 3), 99, np.uint8))[1].tobytes()
    for k in range(N):
        (root / "images" / f"{k:05d}.png").write_bytes(png)
        (root / "labels" / f"{k:05d}.txt").write_text(f"{k % 3} 0.5 0.5 0.25 0.25\n0 0.2 0.2 0.1 0.1\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DatasetWarning)
        return YoloDataset(root / "images", imgsz=32, names=["a", "b", "c"])


def test_worker_memory_flat_over_an_epoch(many):
    compact = growth_per_worker(many)
    assert len(compact) == 2 and max(compact) < 256, compact  # KiB over the last 1500 samples of each worker
    # the same index as Python lists (one object per image): the workers copy it as they touch it
    many.labels, many.im_files = list(many.labels), list(many.im_files)
    many.shapes, many.image_ids = list(many.shapes), list(many.image_ids)
    lists = growth_per_worker(many)
    assert min(lists) > max(compact) + 384, (compact, lists)  # measured: about 750 KiB against 40
