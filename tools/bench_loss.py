"""Benchmark: forward + backward of ``detloss.YoloLoss``, per preset, vs yolov5's ComputeLoss formulation and the floor.

    python -m tools.bench_loss                  # batch 16 and 64 at 640, 80 classes, 8, 100 and 300 targets an image
    python -m tools.bench_loss --quick          # small sizes (seconds)
    python -m tools.bench_loss --inputs leaf,head,native --no-mem --presets yolov5,yolov4,yolov3,online
    python -m tools.bench_loss --device cuda

The default grid (``FULL``) is the one the speed goals are stated on: every preset at batch 16 and 64, 640 px,
8, 100 and 300 targets an image, the predictions as leaves (``--inputs leaf``); the first line names the CPU (or
GPU), torch, the threads and the load.

Candidates: ``ref``, the yolov5 preset with ``impl="reference"`` (yolov5 ``ComputeLoss``'s formulation: positives
indexed, the objectness channel sliced, plain autograd); ``fused``, the yolov5 preset as built by default; and
each other preset of ``--presets`` as built by default (``yolov4``, ``yolov3``, and ``online``: the yolov5 preset
with ``label_smoothing_kind="online"``, eps 0.1, in training mode). The table gives each one's time over the
yolov5 preset's (``/v5``) and the speed-up of each over ``ref`` (``ref/x``).

Every case runs in one process, the candidates interleaved (round-robin, the order rotated each round) so
that a load change on a shared machine hits them alike; the table gives medians and ratios of the same
run. Inputs:

* ``leaf``: the predictions are leaf tensors (``.grad`` set to ``None`` between steps, as
  ``zero_grad(set_to_none=True)``);
* ``head``: each level is the output of a 1x1 conv over a feature map (no grad), put in the yolov5
  ``Detect`` layout (``view``, ``permute``, ``contiguous``): the step includes the conv's forward and backward;
* ``native``: the same conv output viewed with :func:`detloss.fused.head_view` (no permute copy).

``floor``: one read of the predictions and one write of a gradient of their size (``buf.copy_(p)`` into
a warm buffer), per level: what any loss must at least move. Memory: peak bytes allocated during one
loss forward + backward (head backward included) above what was allocated before it (the predictions,
made by the head beforehand, included), plus the gradient memory the loss keeps between
steps (fused path on CPU), over the predictions' bytes. On CPU it is replayed from the allocator events
of ``torch.profiler(profile_memory=True)`` (every tensor allocation and free, in order); on CUDA
``torch.cuda.max_memory_allocated``.
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from detloss import LossConfig, YoloLoss  # noqa: E402  (after the sys.path line)
from detloss.fused import head_view  # noqa: E402
from tools.benchmarks.peak import parse_cpuinfo  # noqa: E402
from tools.benchmarks.step import random_targets  # noqa: E402
from tools.cli.heap import add_malloc_flag, apply_malloc_flag  # noqa: E402

ANCHORS = [[10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119], [116, 90, 156, 198, 373, 326]]
STRIDES = (8, 16, 32)
FULL = [(bs, 640, t) for bs in (16, 64) for t in (8, 100, 300)]  # (batch, image size, targets an image)
QUICK = [(2, 256, 8), (2, 256, 100)]


def preset_config(name: str) -> LossConfig:
    """The config of a bench candidate: a preset, or ``"online"`` (yolov5 preset, online label smoothing)."""
    if name == "online":
        return LossConfig(check_finite=False, label_smoothing=0.1, label_smoothing_kind="online")
    return LossConfig.preset(name, check_finite=False)


class Inputs:
    """Predictions for one step, as leaves or as the output of a 1x1 conv head."""

    def __init__(self, kind: str, bs: int, img: int, nc: int, na: int, cin: int, dev: torch.device, seed: int):
        gen = torch.Generator().manual_seed(seed)
        self.kind, self.na, self.no = kind, na, 5 + nc
        self.shapes = [(bs, na, img // s, img // s, 5 + nc) for s in STRIDES]
        if kind == "leaf":
            self.leaves = [torch.randn(s, generator=gen).to(dev).requires_grad_() for s in self.shapes]
        else:
            self.feats = [torch.randn(bs, cin, s[2], s[3], generator=gen).to(dev) for s in self.shapes]
            self.convs = nn.ModuleList(nn.Conv2d(cin, na * (5 + nc), 1) for _ in self.shapes).to(dev)

    def preds(self) -> list[Tensor]:
        if self.kind == "leaf":
            for p in self.leaves:
                p.grad = None
            return self.leaves
        self.convs.zero_grad(set_to_none=True)
        outs = [conv(f) for conv, f in zip(self.convs, self.feats)]
        if self.kind == "native":
            return [head_view(o, self.na) for o in outs]
        return [o.view(o.shape[0], self.na, self.no, o.shape[2], o.shape[3]).permute(0, 1, 3, 4, 2).contiguous()
                for o in outs]  # fmt: skip

    def nbytes(self) -> int:
        return sum(torch.Size(s).numel() * 4 for s in self.shapes)


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def peak_extra_bytes(step: Callable[[], object], dev: torch.device) -> int:
    """Peak bytes allocated by ``step`` above those allocated when it starts."""
    if dev.type == "cuda":
        _sync(dev)
        before = torch.cuda.memory_allocated(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        step()
        _sync(dev)
        return torch.cuda.max_memory_allocated(dev) - before
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    run = peak = 0
    for e in sorted(events, key=lambda e: e.start_ns()):
        if e.device_type() == torch.autograd.DeviceType.CPU:
            run += e.nbytes()
            peak = max(peak, run)
    return peak


Step = tuple[Callable[[], object], Callable[[object], object]]  # (untimed preparation, timed run)


def time_interleaved(steps: dict[str, Step], reps: int, dev: torch.device) -> dict[str, float]:
    """Median seconds per run, the candidates run round-robin with the order rotated every round."""
    names = list(steps)
    for name in names:  # warm-up: first-touch of caches and buffers
        for _ in range(2):
            prepare, run = steps[name]
            run(prepare())
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(reps):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            prepare, run = steps[name]
            state = prepare()
            _sync(dev)
            t0 = time.perf_counter()
            run(state)
            _sync(dev)
            times[name].append(time.perf_counter() - t0)
            del state
    return {n: statistics.median(v) for n, v in times.items()}


def run_case(bs: int, img: int, per_image: int, kind: str, args: argparse.Namespace) -> dict[str, float]:
    """Timed: loss forward + backward (the head's backward included; its forward, made before, excluded)."""
    dev = torch.device(args.device)
    nc, na = args.classes, 3
    inp = Inputs(kind, bs, img, nc, na, args.head_channels, dev, seed=bs + per_image)
    targets = random_targets(bs, per_image, nc, torch.Generator().manual_seed(1)).to(dev)
    cfg = LossConfig(check_finite=False)
    losses = {"ref": YoloLoss(ANCHORS, STRIDES, nc, cfg.replace(impl="reference")).to(dev),
              "fused": YoloLoss(ANCHORS, STRIDES, nc, cfg).to(dev)}  # fmt: skip
    for name in args.presets.split(","):
        if name not in ("yolov5", ""):
            losses[name] = YoloLoss(ANCHORS, STRIDES, nc, preset_config(name)).to(dev)
    floor_src = [torch.randn(s, device=dev) for s in inp.shapes]
    floor_dst = [torch.empty_like(p) for p in floor_src]
    grads = [torch.empty_like(p) for p in inp.preds()]  # warm gradients in the layout the fused path writes

    def loss_run(loss: YoloLoss) -> Callable[[object], object]:
        return lambda preds: loss(preds, targets)[0].backward()

    def floor_run(_: object) -> None:
        for dst, src in zip(floor_dst, floor_src):
            dst.copy_(src)

    def head_run(preds: object) -> None:
        torch.autograd.backward(preds, grads)  # type: ignore[arg-type]

    steps: dict[str, Step] = {name: (inp.preds, loss_run(loss)) for name, loss in losses.items()}
    steps["floor"] = (lambda: None, floor_run)
    if kind != "leaf":
        steps["head"] = (inp.preds, head_run)
    out = time_interleaved(steps, args.reps, dev)
    out.setdefault("head", 0.0)
    preds_bytes = inp.nbytes()
    for name, loss in losses.items():
        if args.no_mem:
            out["mem_" + name] = float("nan")
            continue
        run = loss_run(loss)
        run(inp.preds())  # steady state
        preds = inp.preds()
        kept = loss._grad_buffers.nbytes()
        out["mem_" + name] = (peak_extra_bytes(functools.partial(run, preds), dev) + kept) / preds_bytes
        del preds
    preds = inp.preds()
    out["mem_head"] = 0.0
    if kind != "leaf" and not args.no_mem:
        out["mem_head"] = peak_extra_bytes(lambda: head_run(preds), dev) / preds_bytes
    return out


def device_name(device: str) -> str:
    """``"cpu: <model name>"`` from ``/proc/cpuinfo`` (or the platform's processor), ``"cuda: <GPU name>"``."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return f"{dev}: {torch.cuda.get_device_name(dev)}"
    try:
        name = parse_cpuinfo(Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace"))[0]
    except OSError:
        name = platform.processor() or "unknown CPU"
    return f"{dev}: {name}"


def main(argv: Sequence[str] | None = None) -> dict[tuple[int, int, int, str], dict[str, float]]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    ap.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--reps", type=int, default=9, help="timed steps per candidate (median)")
    ap.add_argument("--classes", type=int, default=80)
    ap.add_argument("--head-channels", type=int, default=16, help="input channels of the 1x1 conv head")
    ap.add_argument("--inputs", default="leaf", help="comma-separated: leaf, head, native")
    ap.add_argument("--sizes", default=None, help="override: 'bs:img:targets,...' e.g. 16:640:8")
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: leave torch's default)")
    ap.add_argument("--presets", default="yolov5,yolov4,yolov3,online", help="comma-separated candidates besides ref")
    ap.add_argument("--no-mem", action="store_true", help="skip the memory measurement (timing only)")
    add_malloc_flag(ap, default="default")  # a plain process, as a library user's
    args = ap.parse_args(argv)
    apply_malloc_flag(args.malloc)
    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = QUICK if args.quick else FULL
    if args.sizes:
        sizes = [tuple(int(v) for v in s.split(":")) for s in args.sizes.split(",")]  # type: ignore[misc]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{device_name(args.device)}, torch {torch.__version__}, {torch.get_num_threads()} threads, load {load:.2f}")
    head = (f"{'batch':>5} {'img':>4} {'t/img':>5} {'input':>6} | {'ref ms':>8} {'fused ms':>8} {'floor ms':>8} "
            f"{'head ms':>8} | {'ref/fused':>9} {'w/o head':>8} {'fused/floor':>11} | "
            f"{'mem ref':>7} {'mem fused':>9} {'mem head':>8}")  # fmt: skip
    print(head)
    print("-" * len(head))
    results = {}
    for bs, img, per_image in sizes:
        for kind in args.inputs.split(","):
            r = run_case(bs, img, per_image, kind, args)
            results[(bs, img, per_image, kind)] = r
            hd = r["head"]
            print(f"{bs:>5} {img:>4} {per_image:>5} {kind:>6} | {r['ref'] * 1e3:8.1f} {r['fused'] * 1e3:8.1f} "
                  f"{r['floor'] * 1e3:8.1f} {hd * 1e3:8.1f} | {r['ref'] / r['fused']:9.2f} "
                  f"{(r['ref'] - hd) / max(r['fused'] - hd, 1e-9):8.2f} {r['fused'] / r['floor']:11.2f} | "
                  f"{r['mem_ref']:6.2f}x {r['mem_fused']:8.2f}x {r['mem_head']:7.2f}x", flush=True)  # fmt: skip
    others = [n for n in args.presets.split(",") if n not in ("yolov5", "")]
    if others:
        print_presets(results, others)
    print("ms: loss forward + backward (head backward included, head forward not); head: the head's backward alone;")
    print("w/o head: (ref - head) / (fused - head); floor: read the predictions + write a gradient of their size")
    print("mem: peak extra bytes of one forward + backward (plus gradient memory kept by the loss) / predictions;")
    print("mem head: the same for the head's backward alone, given a gradient")
    return results


def print_presets(results: dict[tuple[int, int, int, str], dict[str, float]], others: list[str]) -> None:
    """Per preset: ms, the ratio to the yolov5 preset (``/v5``) and the speed-up over ``ref`` (``ref/x``)."""
    names = ["fused", *others]
    head = f"{'batch':>5} {'img':>4} {'t/img':>5} {'input':>6} | {'ref ms':>8} " + " ".join(
        f"{(n if n != 'fused' else 'yolov5') + ' ms':>10} {'/v5':>5} {'ref/x':>5}" for n in names
    )
    print()
    print(head)
    print("-" * len(head))
    for (bs, img, per_image, kind), r in results.items():
        cells = " ".join(f"{r[n] * 1e3:10.1f} {r[n] / r['fused']:5.2f} {r['ref'] / r[n]:5.2f}" for n in names)
        print(f"{bs:>5} {img:>4} {per_image:>5} {kind:>6} | {r['ref'] * 1e3:8.1f} {cells}", flush=True)
    worst = max(r[n] / r["fused"] for r in results.values() for n in others)
    slowest = min(r["ref"] / r[n] for r in results.values() for n in names)
    print(f"worst preset / yolov5 preset: {worst:.2f}; lowest speed-up over ref (ComputeLoss's form): {slowest:.2f}")


if __name__ == "__main__":
    main()
