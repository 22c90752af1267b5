"""Post-hoc calibrators: each lowers D-ECE of over-confident detections on held-out data; PAV by hand; state and
checkpoint round trips; tools/eval.py applies a checkpoint's calibrator; tools/calibrate.py end to end."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models import build_model, load_checkpoint, save_checkpoint
from tools import calibrate
from tools import eval as eval_cli
from tools.evaluation.calibration import binned_gaps
from tools.evaluation.calibrators import (
    METHODS,
    Calibrator,
    _pav,
    apply_calibrator,
    calibrate_results,
    fit_calibrator,
)
from tools.inference.postprocess import calibrate_detections


def _overconfident(n: int, seed: int, sharpen: float = 3.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True correctness probability q ~ U(0.02, 0.98), label ~ Bernoulli(q), reported p = sigmoid(sharpen * logit q)."""
    rng = np.random.default_rng(seed)
    q = rng.uniform(0.02, 0.98, n)
    y = (rng.random(n) < q).astype(np.int64)
    p = 1 / (1 + np.exp(-sharpen * np.log(q / (1 - q))))
    return p, y, rng.integers(0, 2, n)


@pytest.mark.parametrize("method", METHODS)
def test_each_calibrator_lowers_dece_on_held_out_detections(method):
    p, y, c = _overconfident(3000, seed=0)
    p2, y2, c2 = _overconfident(3000, seed=1)
    cal = fit_calibrator(p, y, method)
    before = binned_gaps(p2, y2.astype(float), 10)[0]
    after = binned_gaps(cal(p2), y2.astype(float), 10)[0]
    assert before > 0.1 and after < 0.35 * before, (before, after)
    if method == "temperature":
        assert cal.params["T"] == pytest.approx(3.0, rel=0.15)  # undoes the sharpening
    if method == "platt":
        assert cal.params["a"] == pytest.approx(1 / 3, rel=0.15) and abs(cal.params["b"]) < 0.15


def test_per_class_fits_classes_with_different_miscalibration():
    p0, y0, _ = _overconfident(2000, 0, sharpen=3.0)
    p1, y1, _ = _overconfident(2000, 1, sharpen=0.5)  # under-confident class
    p, y, c = np.r_[p0, p1], np.r_[y0, y1], np.r_[np.zeros(2000), np.ones(2000)]
    h0, hy0, _ = _overconfident(2000, 2, sharpen=3.0)
    h1, hy1, _ = _overconfident(2000, 3, sharpen=0.5)
    hp, hy, hc = np.r_[h0, h1], np.r_[hy0, hy1].astype(float), np.r_[np.zeros(2000), np.ones(2000)]
    glob = fit_calibrator(p, y, "platt")
    per = fit_calibrator(p, y, "platt", c, per_class=True)
    assert set(per.classes) == {0, 1}
    err = [binned_gaps(m(hp, hc)[hc == k], hy[hc == k], 10)[0] for m in (glob, per) for k in (0, 1)]
    assert max(err[2:]) < 0.05 and max(err[:2]) > 2 * max(err[2:])  # per class calibrates both; global cannot
    with pytest.raises(ValueError, match="class index"):
        per(hp)


def test_pav_by_hand_and_monotone():
    knots, values = _pav(np.array([0.1, 0.2, 0.3, 0.4, 0.5]), np.array([1.0, 0.0, 1.0, 0.0, 1.0]))
    # 1,0 pool to 0.5; 1,0 pool to 0.5 and then with the first block: 0.5 over four points; then 1
    np.testing.assert_allclose(knots, [0.25, 0.5])
    np.testing.assert_allclose(values, [0.5, 1.0])
    p, y, _ = _overconfident(500, 5)
    cal = fit_calibrator(p, y, "isotonic")
    grid = np.linspace(0, 1, 101)
    assert np.all(np.diff(cal(grid)) >= 0)


def test_state_round_trip_tensor_and_results():
    p, y, c = _overconfident(500, 7)
    cal = fit_calibrator(p, y, "isotonic", c, per_class=True, min_count=10)
    again = Calibrator.from_state(cal.state())
    np.testing.assert_allclose(again(p, c), cal(p, c))
    det = torch.zeros(5, 6)
    det[:, 4], det[:, 5] = torch.tensor(p[:5], dtype=torch.float32), torch.tensor(c[:5], dtype=torch.float32)
    out = calibrate_detections(det.clone(), cal.state())[:, 4]  # a model's NMS output, calibrated in place
    assert out.dtype == torch.float32 and torch.allclose(out, torch.tensor(cal(p[:5], c[:5]), dtype=torch.float32))
    assert torch.equal(calibrate_detections(det.clone(), None), det)
    a = p[:5].astype(np.float32)
    assert apply_calibrator(None, a) is a and apply_calibrator(cal, a, c[:5]).dtype == np.float32
    res = [{"image_id": 1, "category_id": 7 + int(k), "bbox": [0, 0, 1, 1], "score": float(s)} for s, k in zip(p, c)]
    new = calibrate_results(res, cal, cat_ids=[7, 8])
    np.testing.assert_allclose([r["score"] for r in new], cal(p, c))
    with pytest.raises(ValueError, match="not a calibrator state"):
        Calibrator.from_state({"method": "magic", "params": {}})
    with pytest.raises(ValueError, match="method must be one of"):
        fit_calibrator(p, y, "histogram")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from data.demo import ensure_demo

    root = tmp_path_factory.mktemp("calib")
    data = ensure_demo(root / "demo", n_train=10, n_val=6)
    import yaml

    names = yaml.safe_load(data.read_text())["names"]
    torch.manual_seed(0)
    model = build_model("yolov4-tiny-n", nc=len(names), names=names)
    weights = save_checkpoint(root / "w.pt", model, opt={"imgsz": 64})
    return data, weights


def test_checkpoint_round_trip_keeps_the_calibrator(tiny, tmp_path):
    _, weights = tiny
    cal = fit_calibrator(*_overconfident(300, 3)[:2], "platt")
    from models.checkpoint import checkpoint_calibrator, write_checkpoint

    path = write_checkpoint(tmp_path / "w-cal.pt", {**load_checkpoint(weights), "calibrator": cal.state()})
    back = checkpoint_calibrator(load_checkpoint(path))
    assert back == cal.state()
    assert checkpoint_calibrator(load_checkpoint(weights)) is None


def test_calibrate_tool_then_eval_reports_before_and_after(tiny, tmp_path):
    data, weights = tiny
    out = calibrate.main(["--weights", str(weights), "--data", str(data), "--method", "temperature", "--device", "cpu",
                          "--out", str(tmp_path / "cal.pt"), "--holdout", "0.5"])  # fmt: skip
    state = load_checkpoint(out)["calibrator"]
    assert state["method"] == "temperature" and state["info"]["images"] == 5
    state["params"]["T"] = 2.0  # a map that visibly moves every score
    from models.checkpoint import write_checkpoint

    write_checkpoint(out, {**load_checkpoint(out), "calibrator": state})
    res = eval_cli.main(["--weights", str(out), "--data", str(data), "--device", "cpu", "--workers", "0",
                         "--project", str(tmp_path), "--name", "ev", "--backend", "faster"])  # fmt: skip
    assert res.before is not None and res.n_detections == res.before.n_detections > 0
    raw = np.array([d["score"] for d in res.before.detections])
    got = np.array([d["score"] for d in res.detections])
    np.testing.assert_allclose(got, Calibrator.from_state(state)(raw), rtol=1e-6)
    assert "before the post-hoc calibrator" in res.report()
    plain = eval_cli.main(["--weights", str(out), "--data", str(data), "--device", "cpu", "--workers", "0",
                           "--project", str(tmp_path), "--name", "ev", "--backend", "faster",
                           "--no-calibrator"])  # fmt: skip
    assert plain.before is None and plain.map == pytest.approx(res.before.map)
