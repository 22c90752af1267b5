"""tools/bench_train.py's step mode and its helpers: the CPU peak worked by hand, a tiny run."""

from __future__ import annotations

import pytest
import torch

from tools.benchmarks.peak import cpu_peak, describe, parse_cpuinfo

pytestmark = pytest.mark.usefixtures("one_thread")

CPUINFO = """processor	: 0
model name	: Intel(R) Xeon(R) Processor @ 2.80GHz
cpu MHz		: 2799.998
flags		: fpu sse avx2 fma avx512f avx512bw

processor	: 1
model name	: Other CPU @ 9.99GHz
flags		: fpu
"""


def test_cpu_peak_avx512_by_hand():
    """2 cores x 2.8 GHz x 2 FMA units x 16 fp32 lanes x 2 flops = 358.4 GFLOP/s, the nominal clock preferred."""
    p = cpu_peak(2, CPUINFO)
    assert (p.isa, p.lanes, p.ghz, p.cores) == ("AVX-512", 16, 2.8, 2)
    assert p.flops == pytest.approx(358.4e9)
    assert "nominal" in p.clock_source and "358 GFLOP/s" in describe(p)


def test_cpu_peak_avx2_current_clock_and_errors():
    """No '@ GHz' in the name: the 'cpu MHz' line; AVX2 + FMA: 8 lanes (1 x 3.0 x 2 x 8 x 2 = 96 GFLOP/s)."""
    text = "model name\t: AMD EPYC\ncpu MHz\t\t: 3000.0\nflags\t\t: sse avx2 fma\n"
    p = cpu_peak(1, text)
    assert (p.isa, p.lanes, p.ghz) == ("AVX2", 8, 3.0) and p.flops == pytest.approx(96e9)
    assert "cpu MHz" in p.clock_source
    assert parse_cpuinfo(CPUINFO)[0] == "Intel(R) Xeon(R) Processor @ 2.80GHz"  # the first processor only
    with pytest.raises(ValueError, match="no clock"):
        cpu_peak(1, "model name\t: X\nflags\t\t: avx2\n")
    with pytest.raises(ValueError, match="cores"):
        cpu_peak(0, CPUINFO)


def test_cpu_peak_zen4_counts_256_bit_pipes():
    """AMD family 25 (Zen 4) with AVX-512: 8 lanes a pipe (2 x 2.6 x 2 x 8 x 2 = 166.4 GFLOP/s); Zen 5 (26): 16."""
    zen = "vendor_id\t: AuthenticAMD\ncpu family\t: {}\nmodel name\t: AMD EPYC\ncpu MHz\t\t: 2600.0\n"
    zen += "flags\t: avx2 fma avx512f\n"
    p4 = cpu_peak(2, zen.format(25))
    assert p4.lanes == 8 and "Zen 4" in p4.isa and p4.flops == pytest.approx(166.4e9)
    assert cpu_peak(2, zen.format(26)).lanes == 16


def test_bench_train_step_mode_runs_small():
    """A tiny step run: stages, img/s, FLOPs and the peak fraction are finite and positive; training moved the
    weights of the model only through train_step (step_flops restores them)."""
    from tools import bench_train
    from tools.benchmarks.step import build_case, step_flops

    case = build_case("yolov4-tiny-s", 3, 2, 64, 2, channels_last=True)
    w = next(case.model.parameters()).detach().clone()
    assert step_flops(case) > 0
    assert torch.equal(next(case.model.parameters()), w)
    out = bench_train.main(["--imgsz", "64", "--batch-size", "2", "--reps", "1", "--threads", "1"])
    assert out["gflop"] > 0 and 0 < out["peak_frac"] < 1 and out["img_per_s"] > 0
    assert out["step_ms"] == pytest.approx(sum(out[f"{s}_ms"] for s in ("forward", "loss", "backward", "optimizer")))
    assert all(v > 0 for k, v in out.items() if k.endswith("_ratio"))
    with pytest.raises(ValueError, match="multiple of 32"):
        bench_train.main(["--imgsz", "70"])
