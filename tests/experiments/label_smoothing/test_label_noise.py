"""Seeded label flips: exact fraction, look-alike map, ignore rows untouched, boxes unchanged; the yolo copy."""

from __future__ import annotations

import numpy as np
import pytest

from data.datasets import build_dataset
from experiments.label_smoothing.label_noise import (
    DEMO_LOOKALIKE,
    flip_labels,
    lookalike_map,
    parse_flip_map,
    write_yolo_copy,
)


def _labels(seed: int = 0, n_img: int = 30, nc: int = 6) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_img):
        k = int(rng.integers(0, 6))
        lb = np.c_[rng.integers(-1, nc, k), rng.random((k, 4)) * 0.5 + 0.1].astype(np.float32)  # some -1 rows
        out.append(lb)
    return out


@pytest.mark.parametrize("flip_map", [None, DEMO_LOOKALIKE])
def test_flip_is_seeded_hits_the_fraction_and_spares_ignore_rows(flip_map):
    labels = _labels()
    new, rep = flip_labels(labels, 0.2, 6, seed=3, flip_map=flip_map)
    old_c, new_c = np.concatenate([lb[:, 0] for lb in labels]), np.concatenate([lb[:, 0] for lb in new])
    assert rep.eligible == int((old_c >= 0).sum()) and rep.total == len(old_c)
    assert rep.flipped == round(0.2 * rep.eligible) == int((old_c != new_c).sum())
    assert np.all(new_c[old_c == -1] == -1)  # ignore regions never flip
    changed = old_c != new_c
    if flip_map is not None:
        assert all(flip_map[int(a)] == int(b) for a, b in zip(old_c[changed], new_c[changed]))
    assert np.all((new_c[changed] >= 0) & (new_c[changed] < 6))
    np.testing.assert_array_equal(np.concatenate(new)[:, 1:], np.concatenate(labels)[:, 1:])  # boxes kept
    again, _ = flip_labels(labels, 0.2, 6, seed=3, flip_map=flip_map)
    other, _ = flip_labels(labels, 0.2, 6, seed=4, flip_map=flip_map)
    assert all(np.array_equal(a, b) for a, b in zip(new, again))
    assert not all(np.array_equal(a, b) for a, b in zip(new, other))
    assert all(lb.base is None or lb.base is not o for lb, o in zip(new, labels))  # copies: input untouched
    assert flip_labels(labels, 0.0, 6)[1].flipped == 0


def test_flip_map_parsing_and_demo_pairs():
    assert parse_flip_map("0:1, 1:0", 3) == {0: 1, 1: 0}
    for bad in ("0:0", "0:5", "a:b", "0:1,0:2", ""):
        with pytest.raises(ValueError):
            parse_flip_map(bad, 3)
    assert lookalike_map(["circle", "ellipse", "square", "rectangle", "triangle", "trapezoid"]) == DEMO_LOOKALIKE
    assert lookalike_map(["cat", "dog"]) is None
    with pytest.raises(ValueError, match="outside"):
        flip_labels([np.array([[7, 0.5, 0.5, 0.1, 0.1]])], 0.5, 3)


def test_yolo_copy_reads_back(tmp_path):
    from data.demo import ensure_demo

    data = ensure_demo(tmp_path / "demo", n_train=6, n_val=2)
    ds = build_dataset(data, "train", 64)
    new, rep = flip_labels(ds.labels, 0.5, ds.nc, seed=0)
    folder = write_yolo_copy(ds.im_files, new, tmp_path / "copy", "train")
    back = build_dataset({"path": str(tmp_path / "copy"), "train": str(folder), "val": str(folder),
                          "names": ds.names}, "train", 64)  # fmt: skip
    assert len(back) == len(ds) and rep.flipped > 0
    for a, b in zip(back.labels, new):
        np.testing.assert_allclose(a, b, atol=1e-6)
