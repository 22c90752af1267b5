"""tools/train.py in-process on a tiny slice of the demo dataset: artefacts, smoothing, clipping, faults, resume."""

from __future__ import annotations

import csv
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from builders import make_trainer
from builders import train_args as args

from models.checkpoint import load_checkpoint
from tools import train
from tools.training.results import COLUMNS
from tools.training.resume import ResumeError
from tools.training.setup import TrainingError
from tools.training.trainer import Trainer

ROOT = Path(__file__).resolve().parents[3]


def rows(run: Path) -> list[dict[str, float]]:
    with open(run / "results.csv") as f:
        r = csv.reader(f)
        head = [h.strip() for h in next(r)]
        return [dict(zip(head, map(float, row))) for row in r]


def test_run_writes_every_artefact(tiny_data, tmp_path):
    run = train.main(args(tiny_data, tmp_path, "--epochs", "2", "--label-smoothing", "0.1"))
    assert run == tmp_path / "exp"
    for f in ("weights/last.pt", "weights/best.pt", "results.csv", "opt.yaml", "hyp.yaml"):
        assert (run / f).is_file(), f
    assert not list(run.rglob("*.tmp")) and not list(run.rglob(".*tmp*"))
    assert not (run / "results.png").exists()  # --noplots (yolov5): test_runplots checks the pictures
    table = rows(run)
    assert [r["epoch"] for r in table] == [0, 1]
    assert list(table[0]) == list(COLUMNS)
    assert all(r["train/grad_norm"] > 0 and 0 <= r["train/clipped_frac"] <= 1 for r in table)
    ckpt = load_checkpoint(run / "weights" / "last.pt")
    assert ckpt["epoch"] == 1 and ckpt["opt"]["label_smoothing"] == 0.1 and ckpt["cfg"] == "yolov4-tiny-s"
    # a second run with the same name increments like yolov5: exp2
    assert train.main(args(tiny_data, tmp_path, "--noval")) == tmp_path / "exp2"


def test_label_smoothing_reaches_class_targets(tiny_data, tmp_path):
    """The trainer's loss uses class targets 0.95 / 0.05: class logits set to exactly logit(0.95) for the true
    class and logit(0.05) elsewhere give a zero class gradient (BCE's gradient is sigmoid(x) - t); with eps = 0
    the same logits do not."""
    tr = make_trainer(tiny_data, tmp_path, "--label-smoothing", "0.1")
    assert tr.loss_fn.cfg.label_smoothing == 0.1
    nc, cls = tr.loss_fn.nc, 2
    logit = lambda p: torch.log(torch.tensor(p / (1 - p)))  # noqa: E731

    def class_grad(loss_fn):
        preds = []
        for s in (4, 2):  # 64 px at strides 16 and 32
            p = torch.zeros(1, 3, s, s, 5 + nc)
            p[..., 5:] = logit(0.05)
            p[..., 5 + cls] = logit(0.95)
            preds.append(p.requires_grad_())
        loss_fn(preds, torch.tensor([[0, cls, 0.5, 0.5, 0.4, 0.4]]))[0].backward()
        return torch.cat([p.grad[..., 5:].flatten() for p in preds]).abs().max().item()

    assert class_grad(tr.loss_fn) < 1e-7
    tr0 = make_trainer(tiny_data, tmp_path / "eps0")
    assert class_grad(tr0.loss_fn) > 1e-4


def test_cls_scaling_sets_the_class_gain_and_is_printed(tiny_data, tmp_path, capsys):
    """The default class gain is cls * sqrt(nc/80) * 3/nl at 6 classes (under the 4x cap), yolov5's rule on
    request; box and obj are the same."""
    sq = make_trainer(tiny_data, tmp_path / "sqrt")
    assert "(--cls-scaling sqrt-cap4, 6 classes)" in capsys.readouterr().out
    y5 = make_trainer(tiny_data, tmp_path / "y5", "--cls-scaling", "yolov5")
    assert sq.loss_fn.cfg.cls == pytest.approx(0.5 * (6 / 80) ** 0.5 * 1.5)
    assert y5.loss_fn.cfg.cls == pytest.approx(0.5 * 6 / 80 * 1.5)
    assert (sq.loss_fn.cfg.box, sq.loss_fn.cfg.obj) == (y5.loss_fn.cfg.box, y5.loss_fn.cfg.obj)


def test_clipping_bounds_the_gradient_norm(tiny_data, tmp_path):
    tr = make_trainer(tiny_data, tmp_path, "--clip-grad", "1.0")
    real_loss = tr.loss_fn.forward
    tr.loss_fn.forward = lambda p, t, *a: (lambda out: (out[0] * 1e6, out[1]))(real_loss(p, t, *a))  # a huge loss
    norms_at_step = []
    real_step = tr.optimizer.step

    def step(*a, **k):
        grads = [p.grad for g in tr.optimizer.param_groups for p in g["params"] if p.grad is not None]
        norms_at_step.append(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])))
        return real_step(*a, **k)

    tr.optimizer.step = step
    row = tr.train_epoch(0)
    assert norms_at_step and all(n <= 1.0 + 1e-4 for n in norms_at_step)
    assert row["train/grad_norm"] > 1e3 and row["train/clipped_frac"] == 1.0


def test_non_finite_loss_is_skipped_and_counted(tiny_data, tmp_path):
    tr = make_trainer(tiny_data, tmp_path)
    real_loss = tr.loss_fn.forward
    calls = {"n": 0}

    def flaky(p, t, *a):
        calls["n"] += 1
        total, items = real_loss(p, t, *a)
        return (total * float("nan"), items) if calls["n"] == 1 else (total, items)

    tr.loss_fn.forward = flaky
    with pytest.warns(UserWarning, match="non-finite loss"):
        row = tr.train_epoch(0)
    assert row["train/nonfinite_steps"] == 1.0
    assert all(torch.isfinite(p).all() for p in tr.model.parameters())


def test_consecutive_non_finite_losses_stop_and_keep_the_checkpoint(tiny_data, tmp_path):
    tr = make_trainer(tiny_data, tmp_path, "--max-nonfinite", "2", "--epochs", "2")
    tr.fit_epoch0 = tr.train_epoch(0)
    tr.save(0, 0.0)
    before = load_checkpoint(tr.wdir / "last.pt")
    tr.loss_fn.forward = lambda p, t, *a: (torch.tensor(float("inf")), torch.zeros(3))
    with pytest.warns(UserWarning), pytest.raises(TrainingError, match="consecutive non-finite") as e:
        tr.train_epoch(1)
    msg = str(e.value)  # names the likely causes and where to start again
    assert "learning rate too high" in msg and "lr0" in msg and "broken data" in msg and str(tr.wdir / "last.pt") in msg
    assert "the last batch had" in msg and ".jpg" in msg
    after = load_checkpoint(tr.wdir / "last.pt")
    assert after["epoch"] == before["epoch"] == 0


def test_interrupted_checkpoint_write_keeps_last_pt(tiny_data, tmp_path, monkeypatch):
    tr = make_trainer(tiny_data, tmp_path)
    tr.save(0, 0.0)
    good = (tr.wdir / "last.pt").read_bytes()

    def torn_save(obj, f, *a, **k):
        f.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt  # killed mid-write

    monkeypatch.setattr(torch, "save", torn_save)
    with pytest.raises(KeyboardInterrupt):
        tr.save(1, 0.0)
    monkeypatch.undo()
    assert (tr.wdir / "last.pt").read_bytes() == good
    assert load_checkpoint(tr.wdir / "last.pt")["epoch"] == 0
    assert sorted(p.name for p in tr.wdir.iterdir()) == ["last.pt", "previous.pt"]  # no temp file left behind
    assert load_checkpoint(tr.wdir / "previous.pt")["epoch"] == 0  # the one before the failed write


def test_resume_is_bit_identical(tiny_data, tmp_path, monkeypatch):
    full = train.main(args(tiny_data, tmp_path / "a", "--epochs", "2", "--seed", "3"))
    real = Trainer.train_epoch

    def stop_at_1(self, epoch):
        if epoch == 1:
            raise KeyboardInterrupt
        return real(self, epoch)

    monkeypatch.setattr(Trainer, "train_epoch", stop_at_1)
    with pytest.raises(KeyboardInterrupt):
        train.main(args(tiny_data, tmp_path / "b", "--epochs", "2", "--seed", "3"))
    monkeypatch.undo()
    part = tmp_path / "b" / "exp"
    assert load_checkpoint(part / "weights" / "last.pt")["epoch"] == 0
    resumed = train.main(["--resume", str(part / "weights" / "last.pt")])
    assert resumed == part
    a = load_checkpoint(full / "weights" / "last.pt")
    b = load_checkpoint(part / "weights" / "last.pt")
    assert a["epoch"] == b["epoch"] == 1
    for key in ("model", "ema"):
        for k, v in a[key].items():
            assert torch.equal(v, b[key][k]), (key, k)
    assert rows(full)[-1]["metrics/mAP_0.5:0.95"] == rows(part)[-1]["metrics/mAP_0.5:0.95"]


def test_bad_options(tiny_data, tmp_path):
    for extra, match in ((["--label-smoothing", "1.0"], "label-smoothing"), (["--imgsz", "65"], "multiple of 32"),
                         (["--batch-size", "0"], "batch-size")):  # fmt: skip
        with pytest.raises(ValueError, match=match):
            train.main(args(tiny_data, tmp_path, *extra))
    with pytest.raises(ResumeError, match="no last.pt"):
        train.main(["--resume", "--project", str(tmp_path / "nothing")])


def test_bad_option_on_the_command_line_is_one_line_exit_2(capsys):
    assert train.cli(["--epochs", "0"]) == 2
    err = capsys.readouterr().err
    assert err == "train.py: error: --epochs must be an int >= 1, got 0\n"  # no traceback, nothing trained


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_torchrun_two_processes_cpu(tiny_data, tmp_path):
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    rdzv = ["--master_addr", "127.0.0.1", "--master_port", str(_free_port())]
    cmd = [*launcher, *rdzv, str(ROOT / "tools" / "train.py"), *args(tiny_data, tmp_path)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    runs = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.pt"))
    assert runs == [Path("exp/weights/best.pt"), Path("exp/weights/last.pt")]
    assert len(rows(tmp_path / "exp")) == 1
