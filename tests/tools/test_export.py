"""tools/export.py: ONNX outputs equal torch's (fp32, dynamic batch 1 and 3), metadata round trip, eval on the ONNX
file equals eval on the checkpoint, and the --half / --simplify / foreign-file paths."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch

from data.letterbox import letterbox
from data.sources import read_image
from models.checkpoint import load_model
from tests.detect_helpers import IMGSZ, demo_and_weights, val_images
from tools import eval as eval_cli
from tools import export

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from tools.inference.onnx_runtime import OnnxDetector  # noqa: E402


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("export")
    data, weights = demo_and_weights(root, n_val=4)
    image = val_images(data)[0]
    dyn = export.main(["--weights", str(weights), "--dynamic", "--output", str(root / "dyn.onnx"),
                       "--verify-image", str(image)])  # fmt: skip
    return {"data": data, "weights": weights, "root": root, "dyn": dyn, "image": image}


def _batch(data: dict, n: int) -> torch.Tensor:
    """The first ``n`` demo val images letterboxed to IMGSZ, RGB, 0..1."""
    out = []
    for p in val_images(data)[:n]:
        img = letterbox(read_image(p)[0], IMGSZ, auto=False)[0]
        out.append(torch.from_numpy(img[:, :, ::-1].transpose(2, 0, 1).copy()).float() / 255)
    return torch.stack(out)


@pytest.mark.parametrize("bs", [1, 3])
def test_dynamic_onnx_equals_torch(setup, bs):
    model = load_model(setup["weights"])
    onnx_model = OnnxDetector(setup["dyn"].path)
    x = _batch(setup["data"], bs)
    with torch.no_grad():
        ref = model(x)
    got = onnx_model(x)
    assert got.shape == ref.shape == (bs, 3 * (4 * 4 + 2 * 2), 5 + len(setup["data"]["names"]))
    assert (got - ref).abs().max().item() < 1e-4
    assert setup["dyn"].max_abs_diff < 1e-4  # the export's own check (batch 3 of one image)
    if bs == 3:  # --dynamic frees height and width too (multiples of 32): the grid is computed in the graph
        x = torch.nn.functional.interpolate(x, size=(96, 128))
        with torch.no_grad():
            ref = model(x)
        assert (onnx_model(x) - ref).abs().max().item() < 1e-4 and ref.shape[1] == 3 * (6 * 8 + 3 * 4)


def test_metadata_round_trip(setup):
    m = OnnxDetector(setup["dyn"].path)
    model = load_model(setup["weights"])
    assert m.names == setup["data"]["names"] and m.nc == len(m.names)
    assert m.strides == [16.0, 32.0] and m.imgsz == [IMGSZ, IMGSZ] and m.cfg_name == "yolov4-tiny-n"
    np.testing.assert_allclose(m.meta["anchors"], model.anchors_px.tolist())
    assert m.meta["decode"] == "yolov5" and m.meta["dynamic"] is True and m.meta["half"] is False
    assert m.fixed_batch is None and m.fixed_hw is None


def test_fixed_shape_export_runs_any_batch_in_chunks(setup, tmp_path, capsys):
    res = export.main(["--weights", str(setup["weights"]), "--output", str(tmp_path / "s.onnx"), "--simplify",
                       "--verify-image", str(setup["image"])])  # fmt: skip
    if importlib.util.find_spec("onnxslim") is None and importlib.util.find_spec("onnxsim") is None:
        assert "pip install onnxslim" in capsys.readouterr().out and res.simplified_with is None
    else:
        assert res.simplified_with in ("onnxslim", "onnxsim")
    m = OnnxDetector(res.path)
    assert m.fixed_batch == 1 and m.fixed_hw == (IMGSZ, IMGSZ)
    x = _batch(setup["data"], 3)
    with torch.no_grad():
        ref = load_model(setup["weights"])(x)
    assert (m(x) - ref).abs().max().item() < 1e-4
    with pytest.raises(ValueError, match="exported for 64x64 input"):
        m(torch.zeros(1, 3, 96, 96))


def test_eval_on_onnx_equals_eval_on_checkpoint(setup, tmp_path):
    common = ["--data", str(setup["data"]["yaml_file"]), "--imgsz", str(IMGSZ), "--device", "cpu", "--workers", "0",
              "--project", str(tmp_path), "--backend", "faster", "--noplots"]  # fmt: skip
    pt = eval_cli.main(["--weights", str(setup["weights"]), "--name", "pt", *common])
    ox = eval_cli.main(["--weights", str(setup["dyn"].path), "--name", "onnx", *common])
    assert pt.n_detections == ox.n_detections > 0
    np.testing.assert_allclose(ox.stats, pt.stats, atol=1e-4)
    assert abs(ox.map - pt.map) < 1e-4 and abs(ox.map50 - pt.map50) < 1e-4
    a = json.loads((tmp_path / "pt" / "predictions.json").read_text())
    b = json.loads((tmp_path / "onnx" / "predictions.json").read_text())
    assert len(a) == len(b)


def test_half_on_cpu_says_so_and_runs(setup, tmp_path, capsys):
    res = export.main(["--weights", str(setup["weights"]), "--half", "--output", str(tmp_path / "h.onnx"),
                       "--verify-image", str(setup["image"])])  # fmt: skip
    out = capsys.readouterr().out
    assert "FP16 is meant for CUDA" in out and "max |onnx - torch|" in out
    m = OnnxDetector(res.path)
    assert m.input_dtype == np.float16 and m.meta["half"] is True
    assert m(_batch(setup["data"], 1)).dtype == torch.float32
    assert res.max_abs_diff < 1.0  # fp16 boxes in pixels of a 64 px input


def test_foreign_onnx_file_is_refused(tmp_path):
    torch.onnx.export(torch.nn.Conv2d(3, 4, 1), (torch.zeros(1, 3, 8, 8),), str(tmp_path / "f.onnx"), dynamo=False)
    with pytest.raises(ValueError, match="not a detloss ONNX export"):
        OnnxDetector(tmp_path / "f.onnx")
    with pytest.raises(ValueError, match="already ONNX"):
        export.main(["--weights", str(tmp_path / "f.onnx")])


def test_export_carries_the_calibrator_and_detect_uses_it(setup, tmp_path):
    from models.checkpoint import load_checkpoint, write_checkpoint
    from tools import detect

    state = {"method": "platt", "params": {"a": 0.5, "b": 0.2}, "per_class": False, "classes": {}, "info": {"n": 9}}
    cal_w = write_checkpoint(tmp_path / "cal.pt", {**load_checkpoint(setup["weights"]), "calibrator": state})
    onnx_path = export.main(["--weights", str(cal_w), "--output", str(tmp_path / "cal.onnx"),
                             "--verify-image", str(setup["image"])]).path  # fmt: skip
    assert OnnxDetector(onnx_path).calibrator == state
    src = str(setup["image"])
    common = ["--source", src, "--imgsz", str(IMGSZ), "--device", "cpu", "--project", str(tmp_path), "--nosave"]
    a = detect.main(["--weights", str(cal_w), *common])
    b = detect.main(["--weights", str(onnx_path), *common])
    (_, _, da), (_, _, db) = a.detections[0], b.detections[0]
    assert len(da) > 0 and da.shape == db.shape

    def rows(d):  # equal scores may come in either order from the two runtimes: compare as sorted rows
        r = d.numpy().round(2)
        return r[np.lexsort(r.T[::-1])]

    np.testing.assert_allclose(rows(da), rows(db), atol=0.011)
    assert OnnxDetector(setup["dyn"].path).calibrator is None  # no calibrator: no key
    ev = eval_cli.main(["--weights", str(onnx_path), "--data", str(setup["data"]["yaml_file"]), "--imgsz", str(IMGSZ),
                        "--device", "cpu", "--workers", "0", "--project", str(tmp_path), "--backend", "faster",
                        "--noplots"])  # fmt: skip
    assert ev.before is not None and ev.n_detections == ev.before.n_detections > 0  # eval applied it too
