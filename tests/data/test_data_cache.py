"""--cache ram: cached samples equal the uncached reader's, augmented or not; bad cache values are refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from data.cache import check_cache, fit_size, shape_array
from data.datasets import build_dataset
from data.demo import ensure_demo


@pytest.fixture(scope="module")
def demo_yaml(tmp_path_factory):
    return ensure_demo(tmp_path_factory.mktemp("demo"), n_train=12, n_val=6)


@pytest.mark.parametrize("imgsz", [256, 160])  # 256: the images' own size; 160: every image resized
@pytest.mark.parametrize("augment", [False, True])
def test_cached_samples_equal_uncached(demo_yaml, imgsz, augment):
    plain = build_dataset(demo_yaml, "train", imgsz, augment=augment, seed=3)
    cached = build_dataset(demo_yaml, "train", imgsz, augment=augment, seed=3)
    cached.cache_images("ram")
    for ds in (plain, cached):
        ds.set_epoch(2)
    for i in range(len(plain)):
        a, b = plain[i], cached[i]
        assert torch.equal(a[0], b[0]), i
        assert torch.equal(a[1], b[1]), i
        assert a[3] == b[3]


def test_cache_of_a_non_square_image_keeps_the_letterbox(tmp_path):
    import cv2

    img = (np.arange(90 * 200 * 3) % 251).astype(np.uint8).reshape(90, 200, 3)
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    cv2.imwrite(str(tmp_path / "images" / "a.png"), img)
    (tmp_path / "labels" / "a.txt").write_text("0 0.5 0.5 0.2 0.4\n")
    data = {"path": str(tmp_path), "train": "images", "val": "images", "names": ["x"]}
    plain = build_dataset(data, "val", 128)
    cached = build_dataset(data, "val", 128)
    cached.cache_images(True)
    (im0, lb0, _, m0), (im1, lb1, _, m1) = plain[0], cached[0]
    assert torch.equal(im0, im1) and torch.equal(lb0, lb1)
    assert m0["ratio"] == m1["ratio"] == (fit_size(90, 200, 128)[0] / 200, fit_size(90, 200, 128)[1] / 90)
    assert m0["pad"] == m1["pad"]


def test_check_cache():
    assert check_cache(None) is None and check_cache(False) is None and check_cache("") is None
    assert check_cache(True) == "ram" and check_cache("ram") == "ram" and check_cache("disk") == "disk"
    with pytest.raises(ValueError, match="cache must be one of"):
        check_cache("gpu")


def test_shape_array_reads_a_column_or_a_list_alike():
    from data.store import Column

    want = np.array([[480, 640], [10, 20]], np.int64)
    for shapes in (Column(want), [(480, 640), (10, 20)], want.astype(np.int32)):
        got = shape_array(shapes)
        assert got.dtype == np.int64 and np.array_equal(got, want)
    assert shape_array([]).shape == (0, 2) and shape_array(Column(np.zeros((0, 2)))).shape == (0, 2)


def test_train_picks_ram_when_it_fits_and_says_so(demo_yaml, monkeypatch, capsys):
    from data import cache as cache_mod
    from data.yaml_io import load_data_yaml
    from tools.training.config import TrainConfig
    from tools.training.hyp import Hyp
    from tools.training.setup import build_datasets

    d = load_data_yaml(demo_yaml)
    opt = TrainConfig(imgsz=64, seed=0, cache=None)
    train, val, _ = build_datasets(d, opt, Hyp())
    assert "--cache ram:" in capsys.readouterr().out and train._ram is not None and val._ram is not None
    monkeypatch.setattr(cache_mod, "available_bytes", lambda: 1000)  # a machine without the memory
    train, _, _ = build_datasets(d, opt, Hyp())
    assert "--cache off:" in capsys.readouterr().out and train._ram is None
    train, _, _ = build_datasets(d, TrainConfig(imgsz=64, seed=0, cache=False), Hyp())  # --no-cache
    assert "--cache" not in capsys.readouterr().out and train._ram is None
