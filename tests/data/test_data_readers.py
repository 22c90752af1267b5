"""yolov5-layout reader: bad label rows, bad label files and bad images are skipped and summarised in ONE
warning by default, raised with file and line under strict=True; duplicates dropped with a warning."""

import warnings

import cv2
import numpy as np
import pytest
import torch

from data.datasets import YoloDataset
from data.letterbox import unletterbox_boxes
from data.report import DatasetError, DatasetNotFoundError, DatasetWarning
from data.sources import label_path, list_images

GOOD1 = "0 0.5 0.5 0.25 0.5"
GOOD2 = "1 0.25 0.75 0.1 0.2"
NAMES = ["a", "b"]


def make(root, labels: dict, size=(24, 40)):
    """images/<name>.png (h x w = size) and labels/<name>.txt; a label value of None means no label file."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "labels").mkdir(parents=True, exist_ok=True)
    for name, text in labels.items():
        img = np.full((*size, 3), 90, np.uint8)
        cv2.imwrite(str(root / "images" / f"{name}.png"), img)
        if text is not None:
            data = text if isinstance(text, bytes) else text.encode()
            (root / "labels" / f"{name}.txt").write_bytes(data)
    return root / "images"


def quiet(*args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning expected
        return YoloDataset(*args, **kw)


BAD_ROWS = {
    "columns": ("0 0.5 0.5 0.2", "5 columns"),
    "6-columns": ("0 0.5 0.5 0.2 0.2 0.9", "got 6"),
    "polygon-out": ("0 0.1 0.1 1.2 0.1 0.5 0.5", "polygon coordinates outside"),
    "polygon-flat": ("0 0.1 0.1 0.2 0.1 0.5 0.1", "no area"),
    "non-numeric": ("0 0.5 abc 0.2 0.2", "non-numeric"),
    "nan": ("0 nan 0.5 0.2 0.2", "NaN"),
    "negative": ("0 -0.1 0.5 0.2 0.2", "outside 0..1"),
    "out-of-range": ("0 1.2 0.5 0.2 0.2", "outside 0..1"),
    "class>=nc": ("2 0.5 0.5 0.2 0.2", "number of names"),
    "negative-class": ("-2 0.5 0.5 0.2 0.2", "non-negative integer"),  # -1 is an ignore region
    "fractional-class": ("1.5 0.5 0.5 0.2 0.2", "non-negative integer"),
    "zero-size": ("0 0.5 0.5 0 0.2", "must be > 0"),
    "past-edge": ("0 0.05 0.5 0.3 0.2", "past the image edge"),
}


@pytest.mark.parametrize("kind", list(BAD_ROWS))
def test_bad_row_skipped_with_one_warning_or_raised_under_strict(tmp_path, kind):
    row, reason = BAD_ROWS[kind]
    src = make(tmp_path, {"x": f"{GOOD1}\n{row}\n{GOOD2}\n", "y": GOOD1})
    lab = label_path(src / "x.png")
    with pytest.warns(DatasetWarning) as rec:
        ds = YoloDataset(src, imgsz=64, names=NAMES)
    assert len([w for w in rec if issubclass(w.category, DatasetWarning)]) == 1
    assert f"{lab}:2" in str(rec[0].message) and reason in str(rec[0].message)
    assert ds.report.counts["bad_row"] == 1 and ds.report.skipped == 1
    assert ds.report.first("bad_row")[0].line == 2 and ds.report.first("bad_row")[0].path == str(lab)
    np.testing.assert_allclose(ds.labels[0], [[0, 0.5, 0.5, 0.25, 0.5], [1, 0.25, 0.75, 0.1, 0.2]], atol=1e-7)
    assert len(ds) == 2 and ds.report.boxes == 3
    with pytest.raises(DatasetError, match=f"{lab}:2: .*{reason}"):
        YoloDataset(src, imgsz=64, names=NAMES, strict=True)


def test_polygon_rows_become_their_extent(tmp_path):
    src = make(tmp_path, {"x": "1 0.2 0.3 0.6 0.3 0.4 0.9\n" + GOOD1})
    ds = quiet(src, imgsz=32, names=NAMES)
    np.testing.assert_allclose(ds.labels[0], [[1, 0.4, 0.6, 0.4, 0.6], [0, 0.5, 0.5, 0.25, 0.5]], atol=1e-6)


def write_bad_images(root):
    good = cv2.imencode(".jpg", np.full((30, 30, 3), 50, np.uint8))[1].tobytes()
    (root / "images" / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (root / "images" / "garbage.jpg").write_bytes(b"not an image at all" * 10)
    (root / "images" / "empty.png").write_bytes(b"")
    for stem in ("truncated", "garbage", "empty"):
        (root / "labels" / f"{stem}.txt").write_text(GOOD1)
    return {"truncated.jpg": "truncated JPEG", "garbage.jpg": "cannot decode", "empty.png": "empty image file"}


def test_bad_images_skipped_and_summarised_once(tmp_path):
    src = make(tmp_path, {"ok": GOOD1})
    bad = write_bad_images(tmp_path)
    with pytest.warns(DatasetWarning) as rec:
        ds = YoloDataset(src, imgsz=64, names=NAMES)
    assert len(rec) == 1
    assert len(ds) == 1 and ds.im_files[0].endswith("ok.png")
    assert ds.report.counts["bad_image"] == 3 and ds.report.images_found == 4
    reasons = {i.path.rsplit("/", 1)[-1]: i.reason for i in ds.report.first("bad_image")}
    for name, why in bad.items():
        assert why in reasons[name]
        assert name in str(rec[0].message)
    with pytest.raises(DatasetError, match=r"(truncated|garbage|empty)\.(jpg|png)"):
        YoloDataset(src, imgsz=64, names=NAMES, strict=True)


def test_unreadable_label_file_skips_its_image(tmp_path):
    src = make(tmp_path, {"ok": GOOD1, "bin": b"\xff\xfe\x00\x81 binary"})
    with pytest.warns(DatasetWarning, match="bin.txt"):
        ds = YoloDataset(src, imgsz=64, names=NAMES)
    assert len(ds) == 1 and ds.report.counts["bad_label_file"] == 1
    with pytest.raises(DatasetError, match="bin.txt"):
        YoloDataset(src, imgsz=64, names=NAMES, strict=True)


def test_duplicates_dropped_with_warning_even_under_strict(tmp_path):
    src = make(tmp_path, {"x": f"{GOOD1}\n{GOOD2}\n{GOOD1}\n"})
    for strict in (False, True):
        with pytest.warns(DatasetWarning, match="duplicate of line 1"):
            ds = YoloDataset(src, imgsz=64, names=NAMES, strict=strict)
        assert len(ds.labels[0]) == 2 and ds.report.counts["duplicate"] == 1


def test_missing_label_is_background_and_edges_within_tolerance_are_clipped(tmp_path):
    src = make(tmp_path, {"bg": None, "edge": "0 0.1 0.5 0.21 0.2", "blank": "\n\n"})
    with pytest.warns(DatasetWarning, match="clipped"):
        ds = YoloDataset(src, imgsz=64, names=NAMES)
    by_name = {f.rsplit("/", 1)[-1]: lb for f, lb in zip(ds.im_files, ds.labels)}
    assert by_name["bg.png"].shape == (0, 5) and by_name["blank.png"].shape == (0, 5)
    np.testing.assert_allclose(by_name["edge.png"], [[0, 0.1025, 0.5, 0.205, 0.2]], atol=1e-6)
    assert ds.report.counts["missing_label"] == 1 and ds.report.backgrounds == 2
    src2 = make(tmp_path / "clean", {"bg": None, "x": GOOD1})
    quiet(src2, imgsz=64, names=NAMES)  # a missing label file alone is normal: no warning


def test_missing_or_empty_sources(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="nowhere"):
        YoloDataset(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError):  # also an OSError for callers who catch that
        YoloDataset(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no images found"):
        YoloDataset(tmp_path / "empty")
    src = make(tmp_path / "allbad", {})
    (src / "a.jpg").write_bytes(b"junk")
    with pytest.raises(DatasetError, match=r"no usable images(.|\n)*a\.jpg: corrupt"):  # the summary is in the error
        YoloDataset(src)


def test_sample_targets_follow_the_letterbox_by_hand(tmp_path):
    src = make(tmp_path, {"x": "1 0.5 0.5 0.25 0.5"}, size=(20, 40))  # h=20, w=40 -> 64x32 + 16 px top pad
    ds = quiet(src, imgsz=64, names=NAMES)
    img, lab, path, meta = ds[0]
    assert img.shape == (3, 64, 64) and img.dtype == torch.uint8 and path.endswith("x.png")
    assert meta == {"orig_shape": (20, 40), "image_id": 0, "augmented": False, "ratio": (1.6, 1.6), "pad": (0.0, 16.0)}
    # box 15..25 x 5..15 px -> 24..40 x (8+16)..(24+16) -> cx 32/64, cy 32/64, w 16/64, h 16/64
    torch.testing.assert_close(lab, torch.tensor([[0, 1, 0.5, 0.5, 0.25, 0.25]]))
    xyxy = torch.tensor([[24.0, 24.0, 40.0, 40.0]])
    torch.testing.assert_close(
        unletterbox_boxes(xyxy, meta["ratio"], meta["pad"], meta["orig_shape"]), torch.tensor([[15.0, 5, 25, 15]])
    )
    assert ds.cat_ids == [0, 1] and ds.nc == 2 and ds.names == NAMES
    with pytest.raises(IndexError, match="out of range"):
        ds[1]


def test_sources_txt_list_nested_folders_and_names_inferred(tmp_path):
    a = make(tmp_path / "a", {"p": GOOD1})
    b = make(tmp_path / "b" / "x", {"q": "3 0.5 0.5 0.1 0.1"})
    nested = b / "sub"
    nested.mkdir()
    cv2.imwrite(str(nested / "r.png"), np.zeros((8, 8, 3), np.uint8))
    assert label_path(nested / "r.png") == tmp_path / "b" / "x" / "labels" / "sub" / "r.txt"
    assert label_path(tmp_path / "images" / "c" / "images" / "z.jpg") == tmp_path / "images" / "c" / "labels" / "z.txt"
    assert label_path(tmp_path / "flat" / "z.jpg") == tmp_path / "flat" / "z.txt"
    lst = tmp_path / "list.txt"
    lst.write_text(f"a/images/p.png\n\n{b / 'q.png'}\n")
    assert list_images(lst) == [str(a / "p.png"), str(b / "q.png")]
    ds = quiet([lst, nested], imgsz=32)  # a list of sources; names inferred from the largest class id
    assert len(ds) == 3 and ds.names == ["0", "1", "2", "3"] and ds.report.counts["missing_label"] == 1
