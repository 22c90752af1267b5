"""models.checkpoint: round trip, EMA preference, atomic writes, errors that name the file."""

import numpy as np
import pytest
import torch

from models import build_model, load_checkpoint, load_model, save_checkpoint


def trained(cfg="yolov4-tiny-n", **kw):
    """A model whose weights and BN statistics differ from a fresh build."""
    m = build_model(cfg, 3, names=["cat", "dog", "emu"], **kw)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.01)
        m(torch.rand(2, 3, 64, 64))  # train-mode pass moves the BN running stats
    return m.eval()


def test_round_trip_identical_outputs(tmp_path):
    m = trained(decode="darknet", scale_x_y=1.05, anchors=[[12, 16, 20, 30, 40, 50], [80, 90, 130, 170, 300, 300]])
    path = save_checkpoint(tmp_path / "w" / "last.pt", m, epoch=3, best_fitness=0.25, ema=None)
    assert path.is_file() and [p.name for p in path.parent.iterdir()] == ["last.pt"]  # no temp file left
    ckpt = load_checkpoint(path)
    assert ckpt["epoch"] == 3 and ckpt["cfg"] == "yolov4-tiny-n" and ckpt["names"] == ["cat", "dog", "emu"]
    m2 = load_model(path)
    assert not m2.training
    assert (m2.cfg_name, m2.nc, m2.names, m2.decode, m2.scale_x_y) == ("yolov4-tiny-n", 3, m.names, "darknet", 1.05)
    assert torch.equal(m2.anchors_px, m.anchors_px)
    x = torch.rand(2, 3, 64, 96)
    with torch.no_grad():
        assert torch.equal(m2(x), m(x))
    m3 = load_model(ckpt)  # from an already loaded dict too
    with torch.no_grad():
        assert torch.equal(m3(x), m(x))


def test_ema_weights_preferred(tmp_path):
    m, ema = trained(), trained()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        y_model, y_ema = m(x), ema(x)
    assert not torch.equal(y_model, y_ema)
    for i, value in enumerate((ema.state_dict(), ema)):  # a state dict, or a module stored as its state dict
        path = save_checkpoint(tmp_path / f"ema{i}.pt", m, ema=value, optimizer={"lr": 0.01, "betas": (0.9, 0.99)})
        with torch.no_grad():
            assert torch.equal(load_model(path)(x), y_ema)


def test_overwrite_and_failed_save_keeps_old_file(tmp_path):
    path = tmp_path / "best.pt"
    save_checkpoint(path, trained(), epoch=1)
    save_checkpoint(path, trained(), epoch=2)
    assert load_checkpoint(path)["epoch"] == 2
    with pytest.raises(ValueError, match=r"extra\['hyp'\]\['lr0'\].*ndarray"):
        save_checkpoint(path, trained(), epoch=3, hyp={"lr0": np.float64(0.01) * np.ones(1)})
    with pytest.raises(ValueError, match="reserved"):
        save_checkpoint(path, trained(), model={})  # extra keys may not shadow the checkpoint's own
    assert load_checkpoint(path)["epoch"] == 2
    assert [p.name for p in tmp_path.iterdir()] == ["best.pt"]


def test_save_rejects_non_detector(tmp_path):
    with pytest.raises(ValueError, match="models.Detector"):
        save_checkpoint(tmp_path / "x.pt", torch.nn.Linear(2, 2))


def test_load_errors_name_the_file(tmp_path):
    missing = tmp_path / "nope.pt"
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        load_model(missing)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="garbage.pt"):
        load_checkpoint(garbage)
    foreign = tmp_path / "foreign.pt"
    torch.save({"model": {}}, foreign)
    with pytest.raises(ValueError, match="foreign.pt.*not a detloss checkpoint"):
        load_model(foreign)
    good = save_checkpoint(tmp_path / "good.pt", trained())
    ckpt = load_checkpoint(good)
    bad_nc = dict(ckpt, nc=5, names=[str(i) for i in range(5)])
    torch.save(bad_nc, tmp_path / "bad_nc.pt")
    with pytest.raises(ValueError, match="bad_nc.pt.*do not fit"):
        load_model(tmp_path / "bad_nc.pt")
    torch.save(dict(ckpt, cfg="yolov9"), tmp_path / "bad_cfg.pt")
    with pytest.raises(ValueError, match="bad_cfg.pt.*unknown model cfg"):
        load_model(tmp_path / "bad_cfg.pt")
    del ckpt["decode"]
    with pytest.raises(ValueError, match=r"missing checkpoint key\(s\) \['decode'\]"):
        load_model(ckpt)


def test_wrapped_model_saved_unwrapped(tmp_path):
    m = trained()
    path = save_checkpoint(tmp_path / "dp.pt", torch.nn.DataParallel(m))
    assert not any(k.startswith("module.") for k in load_checkpoint(path)["model"])
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(load_model(path)(x), m(x))
