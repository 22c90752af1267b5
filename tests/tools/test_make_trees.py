"""tools/make_trees.py on a tiny fake deepforest wheel (no registry): split by scene, tiles, the whole val scene."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from data.datasets import build_dataset
from tools import make_trees
from tools.cli.errors import InputError
from tools.training.hyp import Hyp, load_hyp

ROOT = Path(__file__).resolve().parents[2]
XML = """<annotation><filename>{stem}.tif</filename>
<size><width>{w}</width><height>{h}</height><depth>3</depth></size>{objects}</annotation>"""
OBJ = "<object><name>{n}</name><difficult>0</difficult><bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin>" \
      "<xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>"  # fmt: skip


def _wheel(tmp_path: Path) -> Path:
    """Scene A (100x90, boxes across the tile seam at x 48..64) and scene B (50x40, Alive and Dead)."""
    scenes = {"A": ((90, 100), [("Tree", 5, 5, 20, 20), ("Tree", 41, 11, 60, 30), ("Tree", 71, 61, 90, 80)]),
              "B": ((40, 50), [("Alive", 1, 1, 10, 10), ("Dead", 21, 11, 40, 30)])}  # fmt: skip
    path = tmp_path / "deepforest-2.1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as z:
        for stem, ((h, w), objs) in scenes.items():
            img = np.full((h, w, 3), 60 + 40 * len(stem), np.uint8)
            z.writestr(f"deepforest/data/{stem}.png", cv2.imencode(".png", img)[1].tobytes())
            body = "".join(OBJ.format(n=n, x1=a, y1=b, x2=c, y2=d) for n, a, b, c, d in objs)
            z.writestr(f"deepforest/data/{stem}.xml", XML.format(stem=stem, w=w, h=h, objects=body))
        z.writestr("deepforest/data/other.csv", "not taken")
    return path


def _run(tmp_path: Path, *extra: str) -> Path:
    args = ["--wheel", str(_wheel(tmp_path)), "--out", str(tmp_path / "trees"), "--scenes", "A", "B",
            "--val-scene", "B", "--tile", "64", "--overlap", "16", *extra]  # fmt: skip
    return make_trees.main(args)


def test_split_by_scene_tiles_and_whole_val_scene(tmp_path, capsys):
    y = _run(tmp_path)
    out = y.parent
    train = sorted(p.name for p in (out / "images" / "train").iterdir())
    assert train == ["A_x0000_y0000.png", "A_x0000_y0026.png", "A_x0036_y0000.png", "A_x0036_y0026.png"]
    assert sorted(p.name for p in (out / "images" / "val").iterdir()) == ["B_x0000_y0000.png"]  # 50x40 < 64: one tile
    assert [p.name for p in (out / "images" / "val_full").iterdir()] == ["B.png"]
    assert cv2.imread(str(out / "images" / "val_full" / "B.png")).shape == (40, 50, 3)
    assert not list((out / "images").rglob("other*"))
    # A's boxes in pixels: (4, 4, 20, 20), (40, 10, 60, 30), (70, 60, 90, 80); tiles of 64 at x 0/36, y 0/26.
    # Tile (0, 0): the first two whole. Tile (36, 0): the second whole, the third 4 of 20 rows inside: ignore.
    # Tile (0, 26): the second 4 of 20 rows inside: ignore. Tile (36, 26): that ignore again, the third whole.
    rows = np.loadtxt(out / "labels" / "train" / "A_x0000_y0000.txt", ndmin=2)
    np.testing.assert_allclose(rows, [[0, 12 / 64, 12 / 64, 16 / 64, 16 / 64], [0, 50 / 64, 20 / 64, 20 / 64, 20 / 64]],
                               atol=1e-6)  # fmt: skip
    rows = np.loadtxt(out / "labels" / "train" / "A_x0036_y0000.txt", ndmin=2)
    np.testing.assert_allclose(rows, [[0, 14 / 64, 20 / 64, 20 / 64, 20 / 64], [-1, 44 / 64, 62 / 64, 20 / 64, 4 / 64]],
                               atol=1e-6)  # fmt: skip
    d = yaml.safe_load(y.read_text())
    assert d == {
        "train": "images/train",
        "val": "images/val",
        "val_full": "images/val_full",
        "names": ["tree"],
        "imgsz": 64,
    }  # --tile 64: the trainer trains at the tiles' native size
    full = build_dataset(y, "val_full", 64)
    assert full.report.boxes == 2 and full.shapes[0] == (40, 50)
    assert "Split by scene" in (out / "SOURCE.md").read_text() and "val is `B`" in (out / "SOURCE.md").read_text()
    hyp = load_hyp(out / "hyp.yaml")  # the trainer's defaults but the box gain (tools/make_trees.py TREES_HYP)
    assert hyp.box == 0.1 and hyp.replace(box=Hyp().box) == Hyp()
    assert "train     1 scene(s)     4 images      4 boxes     3 ignore regions" in capsys.readouterr().out


def test_two_class_and_a_second_run_replaces_its_own_output(tmp_path):
    _run(tmp_path)
    y = _run(tmp_path, "--two-class", "--tile", "32", "--overlap", "0")
    assert yaml.safe_load(y.read_text())["names"] == ["tree", "dead"]
    assert not (y.parent / "images" / "train" / "A_x0036_y0000.png").exists()  # the 64 px tiles are gone
    rows = np.loadtxt(y.parent / "labels" / "val_full" / "B.txt", ndmin=2)
    assert rows[:, 0].tolist() == [0, 1]  # Alive -> tree, Dead -> dead


def test_bad_inputs_are_one_line_errors(tmp_path):
    with pytest.raises(InputError, match="has no deepforest/data/C.png"):
        make_trees.main(["--wheel", str(_wheel(tmp_path)), "--scenes", "A", "C", "--val-scene", "A",
                         "--out", str(tmp_path / "t")])  # fmt: skip
    with pytest.raises(InputError, match="--val-scene 'Z' is not one of"):
        _run(tmp_path, "--val-scene", "Z")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "keep.txt").write_text("user data")
    with pytest.raises(InputError, match="no trees.yaml"):
        make_trees.main(["--wheel", str(_wheel(tmp_path)), "--scenes", "A", "B", "--val-scene", "B",
                         "--out", str(tmp_path / "mine")])  # fmt: skip
    res = subprocess.run([sys.executable, str(ROOT / "tools" / "make_trees.py"), "--wheel", str(tmp_path / "no.whl")],
                         capture_output=True, text=True, cwd=tmp_path, timeout=120)  # fmt: skip
    assert res.returncode == 2 and res.stderr.strip() == f"make_trees.py: error: wheel not found: {tmp_path / 'no.whl'}"


def test_download_runs_pip_download_no_deps_and_reports_its_failure(tmp_path, monkeypatch):
    calls = []

    def fake_pip(cmd, **kw):
        calls.append(cmd)
        dest = Path(cmd[cmd.index("-d") + 1])
        if "fail" in str(dest):
            return subprocess.CompletedProcess(cmd, 1, "", "ERROR: No matching distribution found for deepforest\n")
        (dest / "deepforest-2.1.0-py3-none-any.whl").write_bytes(b"x")
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(make_trees.subprocess, "run", fake_pip)
    assert make_trees.download_wheel(tmp_path).name == "deepforest-2.1.0-py3-none-any.whl"
    assert calls[0][1:5] == ["-m", "pip", "download", "--no-deps"] and "deepforest==2.1.0" in calls[0]
    (tmp_path / "fail").mkdir()
    with pytest.raises(InputError, match="pip download deepforest==2.1.0 failed: ERROR: No matching distribution"):
        make_trees.download_wheel(tmp_path / "fail")
