"""Every augmentation keeps boxes on the pixels they label: filled boxes of unique colours are drawn, the
image is augmented, and each output box must match the bounding box of its colour's pixels (IoU > 0.8)."""

import warnings

import numpy as np
import pytest
import torch
from builders import COLOURS, check_boxes, colour_mask, pixel_box, scene, write_scenes

from data.augment import AugConfig, augment_hsv, box_keep, flip_lr, flip_ud, random_affine
from data.datasets import YoloDataset, collate_fn
from data.mosaic import mosaic4

AFFINE = {
    "scale+translate": dict(scale=0.5, translate=0.2),
    "rotate": dict(degrees=30, scale=0.0, translate=0.0),
    "shear": dict(shear=10, scale=0.2, translate=0.1),
    "all": dict(degrees=20, shear=5, scale=0.5, translate=0.2),
}


@pytest.mark.parametrize("name", list(AFFINE))
@pytest.mark.parametrize("seed", range(4))
def test_random_affine_boxes_follow_pixels(name, seed):
    rng = np.random.default_rng(seed)
    img, labels = scene(rng)
    cfg = AugConfig(**AFFINE[name])
    out, lab = random_affine(img, labels, rng, cfg)
    assert out.shape == img.shape and lab.shape[1] == 5
    check_boxes(out, lab, labels)
    assert len(lab) >= 1


def test_random_affine_identity_when_all_zero():
    img, labels = scene(np.random.default_rng(1))
    out, lab = random_affine(img, labels, np.random.default_rng(0), AugConfig(scale=0, translate=0))
    np.testing.assert_array_equal(out, img)
    np.testing.assert_allclose(lab, labels, atol=1e-4)


@pytest.mark.parametrize("flip", [flip_lr, flip_ud])
def test_flips_exact(flip):
    img, labels = scene(np.random.default_rng(2))
    out, lab = flip(img, labels)
    for c, *box in lab:
        assert pixel_box(colour_mask(out, COLOURS[int(c)])) == tuple(int(v) for v in box)
    out2, lab2 = flip(out, lab)
    np.testing.assert_array_equal(out2, img)
    np.testing.assert_allclose(lab2, labels)


@pytest.mark.parametrize("seed", range(4))
def test_mosaic_then_crop_boxes_follow_pixels(seed):
    rng = np.random.default_rng(seed)
    s = 160
    parts = [scene(rng, h=int(rng.integers(90, 161)), w=int(rng.integers(90, 161)), k=3, first=3 * j) for j in range(4)]
    canvas, lab = mosaic4([p[0] for p in parts], [p[1] for p in parts], s, rng)
    assert canvas.shape == (2 * s, 2 * s, 3)
    originals = np.concatenate([p[1] for p in parts])
    check_boxes(canvas, lab)
    out, lab2 = random_affine(canvas, lab, rng, AugConfig(degrees=10, scale=0.3, translate=0.1), border=-s // 2)
    assert out.shape == (s, s, 3)
    check_boxes(out, lab2, originals)


def test_mosaic_input_checks():
    with pytest.raises(ValueError, match="4 images"):
        mosaic4([np.zeros((8, 8, 3), np.uint8)] * 3, [np.zeros((0, 5))] * 3, 8, np.random.default_rng(0))
    with pytest.raises(ValueError, match="larger than s"):
        mosaic4([np.zeros((9, 8, 3), np.uint8)] * 4, [np.zeros((0, 5))] * 4, 8, np.random.default_rng(0))


def test_hsv_changes_colours_not_geometry_and_is_seeded():
    img, _ = scene(np.random.default_rng(3))
    img[img.sum(-1) == 0] = (40, 90, 160)
    a = augment_hsv(img, np.random.default_rng(7), 0.5, 0.7, 0.4)
    b = augment_hsv(img, np.random.default_rng(7), 0.5, 0.7, 0.4)
    c = augment_hsv(img, np.random.default_rng(8), 0.5, 0.7, 0.4)
    assert a.shape == img.shape and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c) and not np.array_equal(a, img)
    # regions stay regions: pixels equal before stay equal after (a per-value lookup table)
    m = colour_mask(img, COLOURS[0], 1).astype(bool)
    assert len(np.unique(a[m].reshape(-1, 3), axis=0)) == 1
    assert augment_hsv(img, np.random.default_rng(0), 0, 0, 0) is img


def test_box_keep_rule():
    before = np.array([[0, 0, 100, 100]] * 4, np.float32)
    after = np.array([[0, 0, 100, 100], [0, 0, 1.5, 50], [0, 0, 30, 30], [0, 0, 100, 4]], np.float32)
    # full box kept; 1.5 px wide dropped; 9% of the area dropped; aspect 25 dropped
    assert box_keep(before, after).tolist() == [True, False, False, False]
    assert box_keep(before, after, gain=0.3).tolist() == [True, False, True, False]


def test_aug_config_validation_and_hyp_conversion():
    cfg = AugConfig.from_hyp({"lr0": 0.01, "fliplr": 0.0, "mosaic": 0.5, "degrees": 3})
    assert (cfg.fliplr, cfg.mosaic, cfg.degrees, cfg.hsv_h) == (0.0, 0.5, 3, 0.015)
    for bad in ({"fliplr": 1.5}, {"scale": 1.0}, {"hsv_v": -0.1}, {"degrees": float("nan")}, {"mosaic": "1"}):
        with pytest.raises(ValueError, match=list(bad)[0]):
            AugConfig.from_hyp(bad)
    with pytest.warns(UserWarning, match="mixup"):
        AugConfig.from_hyp({"mixup": 0.1})
    with pytest.raises(ValueError, match="dict"):
        AugConfig.from_hyp([1, 2])


def write_scene_dataset(root, n=6, seed=0):
    def draw(rng, i):
        return scene(rng, h=int(rng.integers(120, 200)), w=int(rng.integers(120, 200)), k=2, first=(2 * i) % 12)

    return write_scenes(root, n, draw, seed)


def test_dataset_augmented_samples_label_their_pixels(tmp_path):
    src = write_scene_dataset(tmp_path / "ds")
    hyp = dict(hsv_h=0, hsv_s=0, hsv_v=0, degrees=10, shear=3, scale=0.3, translate=0.1, fliplr=0.5, flipud=0.2)
    names = [str(k) for k in range(12)]
    for mosaic in (0.0, 1.0):
        ds = YoloDataset(src, imgsz=128, augment=True, hyp={**hyp, "mosaic": mosaic}, names=names, seed=3)
        for i in range(len(ds)):
            img, lab, path, meta = ds[i]
            assert img.shape == (3, 128, 128) and img.dtype == torch.uint8 and meta["ratio"] is None
            assert (lab[:, 0] == 0).all() and ((lab[:, 2:] >= 0) & (lab[:, 2:] <= 1)).all()
            bgr = img.permute(1, 2, 0).numpy()[:, :, ::-1]
            xyxy = torch.cat(
                [lab[:, 1:2], (lab[:, 2:4] - lab[:, 4:6] / 2) * 128, (lab[:, 2:4] + lab[:, 4:6] / 2) * 128], 1
            )
            check_boxes(np.ascontiguousarray(bgr), xyxy.numpy(), margin=3)


def test_augmentation_is_reproducible_per_seed_epoch_index(tmp_path):
    src = write_scene_dataset(tmp_path / "ds", n=4)
    names = [str(k) for k in range(12)]
    a = YoloDataset(src, imgsz=96, augment=True, names=names, seed=1)
    b = YoloDataset(src, imgsz=96, augment=True, names=names, seed=1)
    c = YoloDataset(src, imgsz=96, augment=True, names=names, seed=2)
    for i in (0, 3):
        assert torch.equal(a[i][0], b[i][0]) and torch.equal(a[i][1], b[i][1])
    assert not torch.equal(a[0][0], c[0][0])
    first = a[1][0]
    a.set_epoch(1)
    assert not torch.equal(first, a[1][0])
    imgs, targets, paths, metas = collate_fn([a[0], a[1], a[2]])
    assert imgs.shape == (3, 3, 96, 96) and targets.shape[1] == 6
    assert set(targets[:, 0].tolist()) <= {0.0, 1.0, 2.0} and len(paths) == len(metas) == 3


def test_collate_rejects_mixed_shapes_and_empty():
    with pytest.raises(ValueError, match="one shape"):
        collate_fn(
            [(torch.zeros(3, 8, 8), torch.zeros(0, 6), "a", {}), (torch.zeros(3, 8, 9), torch.zeros(0, 6), "b", {})]
        )
    with pytest.raises(ValueError, match="empty"):
        collate_fn([])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        imgs, t, _, _ = collate_fn([(torch.zeros(3, 8, 8), torch.ones(2, 6), "a", {})] * 2)
    assert t[:, 0].tolist() == [0, 0, 1, 1]


def test_unsupported_hyp_warns_only_when_augmenting(tmp_path):
    src = write_scene_dataset(tmp_path / "ds", n=1)
    names = [str(k) for k in range(12)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        YoloDataset(src, imgsz=64, hyp={"mixup": 0.1, "lr0": 0.01}, names=names)
    with pytest.warns(UserWarning, match="mixup"):
        YoloDataset(src, imgsz=64, augment=True, hyp={"mixup": 0.1}, names=names)
