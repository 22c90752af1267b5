"""The CPU's fp32 peak, from ``/proc/cpuinfo``: vector width x FMA units x 2 flops x cores x clock.

``peak = cores * ghz * 1e9 * fma_units * lanes * 2`` (an FMA is two flops), with ``lanes`` the fp32 lanes of the
widest vector unit the CPU reports (``avx512f``: 16; ``avx2`` with ``fma``: 8; else SSE, 4) and ``fma_units = 2``
(two FMA pipes per core: Intel Skylake-SP and later server cores, AMD Zen 4/5; Intel's optimisation manual,
"Intel 64 and IA-32 Architectures Optimization Reference Manual", the Skylake server microarchitecture chapter).
Some parts have one 512-bit FMA unit (e.g. Xeon Bronze/Silver 4xxx): the peak is then an upper bound. AMD Zen 4
(``cpu family`` 25 with ``avx512f``) runs a 512-bit instruction on its two 256-bit FMA pipes in two halves
(AMD's "Software Optimization Guide for the AMD Zen4 Microarchitecture", publication 57647): 8 fp32 lanes per
pipe, the AVX2 peak; Zen 5 (family 26) has full 512-bit pipes.

The clock: the nominal frequency in the model name (``"... @ 2.80GHz"``, what the vendor rates the part at and
what a VM's vCPU reports); failing that the ``cpu MHz`` line (the current clock, which moves with turbo and
power saving). :func:`cpu_peak` says which one it used.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

FMA_UNITS = 2  # FMA pipes per core (see the module docstring)
FLOPS_PER_FMA = 2


@dataclass(frozen=True)
class CpuPeak:
    """``flops``: fp32 peak (flop/s) of ``cores`` cores at ``ghz``; ``lanes``: fp32 lanes per vector; ``isa``: the
    vector extension counted; ``clock_source``: where ``ghz`` came from; ``model``: the CPU's model name."""

    model: str
    isa: str
    lanes: int
    ghz: float
    clock_source: str
    cores: int
    flops: float


def _first_processor(text: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break  # the first processor's block only
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


def parse_cpuinfo(text: str) -> tuple[str, set[str], float | None, float | None]:
    """``(model name, flags, nominal GHz or None, current GHz or None)`` of the first processor in ``text``."""
    return _parse(_first_processor(text))


def _parse(fields: dict[str, str]) -> tuple[str, set[str], float | None, float | None]:
    model = fields.get("model name", "unknown CPU")
    flags = set(fields.get("flags", "").split())
    m = re.search(r"@\s*([0-9.]+)\s*GHz", model)
    nominal = float(m.group(1)) if m else None
    mhz = fields.get("cpu MHz")
    current = float(mhz) / 1000.0 if mhz else None
    return model, flags, nominal, current


def vector_lanes(flags: set[str], vendor: str = "", family: int = 0) -> tuple[str, int]:
    """``(isa, fp32 lanes an FMA pipe)`` of the widest FMA-capable vector unit in the CPU flags (``vendor_id`` and
    ``cpu family`` tell AMD Zen 4's 256-bit pipes apart)."""
    if "avx512f" in flags:
        if vendor == "AuthenticAMD" and family < 26:
            return "AVX-512 on 256-bit pipes (Zen 4)", 8
        return "AVX-512", 16
    if "avx2" in flags and "fma" in flags:
        return "AVX2", 8
    return "SSE", 4


def cpu_peak(cores: int, cpuinfo: str | None = None) -> CpuPeak:
    """The fp32 peak of ``cores`` cores (e.g. ``torch.get_num_threads()``); ``cpuinfo``: the text of
    ``/proc/cpuinfo`` (read when None). Raises ``ValueError`` when no clock can be found or ``cores < 1``."""
    if cores < 1:
        raise ValueError(f"cores must be >= 1, got {cores}")
    if cpuinfo is None:
        path = Path("/proc/cpuinfo")
        if not path.is_file():
            raise ValueError("no /proc/cpuinfo here (not Linux): cannot read the CPU's flags and clock")
        cpuinfo = path.read_text(encoding="utf-8", errors="replace")
    fields = _first_processor(cpuinfo)
    model, flags, nominal, current = _parse(fields)
    if nominal is not None:
        ghz, source = nominal, "nominal clock in the model name"
    elif current is not None:
        ghz, source = current, "current clock ('cpu MHz')"
    else:
        raise ValueError("/proc/cpuinfo gives no clock (neither '@ x.xxGHz' in the model name nor 'cpu MHz')")
    family = fields.get("cpu family", "0")
    isa, lanes = vector_lanes(flags, fields.get("vendor_id", ""), int(family) if family.isdigit() else 0)
    flops = cores * ghz * 1e9 * FMA_UNITS * lanes * FLOPS_PER_FMA
    return CpuPeak(model, isa, lanes, ghz, source, cores, flops)


def describe(peak: CpuPeak) -> str:
    """One line: model, ISA, clock and where it came from, cores, peak in GFLOP/s and the formula."""
    return (
        f"{peak.model}: {peak.isa}, {peak.ghz:.2f} GHz ({peak.clock_source}), {peak.cores} core(s): fp32 peak "
        f"{peak.flops / 1e9:.0f} GFLOP/s = {peak.cores} x {peak.ghz:.2f} GHz x {FMA_UNITS} FMA x {peak.lanes} lanes "
        f"x {FLOPS_PER_FMA}"
    )
