"""An exported ``.onnx`` detector run through onnxruntime, called like the PyTorch model.

:class:`OnnxDetector` takes a float ``Tensor[bs, 3, H, W]`` in 0..1 and returns the decoded
``float32 Tensor[bs, N, 5 + nc]`` on the input's device, exactly what ``Detector.eval()`` returns, so
``tools.inference.loop`` (eval) and ``tools.inference.predict`` (detect) run it unchanged. It carries
``names``, ``nc``, ``strides``, ``imgsz``, ``cfg_name`` from the file's metadata (see
``tools.detection.onnx_export``), and ``eval()`` / ``train()`` / ``training`` so callers that toggle the
mode work (an ONNX graph has one mode). A file exported with a fixed batch size ``b`` is run in chunks of
``b`` (the last one padded); a fixed input size must match the batch's H and W. On a CUDA device it uses
onnxruntime's CUDA provider (``onnxruntime-gpu``), else it warns and runs on the CPU; outputs return to the
input's device either way.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["META_FORMAT", "OnnxDetector", "read_metadata"]

META_FORMAT = "detloss-onnx"  # the "format" metadata entry of an export of tools.detection.onnx_export


def read_metadata(session: Any, source: str) -> dict[str, Any]:
    """The detloss metadata of an onnxruntime session; ``ValueError`` naming ``source`` when it is not ours."""
    props = session.get_modelmeta().custom_metadata_map
    try:
        meta = {k: json.loads(v) for k, v in props.items()}
    except json.JSONDecodeError as e:
        raise ValueError(f"{source}: metadata is not JSON ({e}); export it with tools/export.py") from e
    if meta.get("format") != META_FORMAT:
        raise ValueError(f"{source}: not a detloss ONNX export (metadata format is not {META_FORMAT!r})")
    missing = [k for k in ("names", "nc", "stride", "imgsz") if k not in meta]
    if missing:
        raise ValueError(f"{source}: metadata lacks {missing}")
    return meta


def _providers(device: torch.device) -> list[Any]:
    import onnxruntime as ort

    available = ort.get_available_providers()
    if device.type == "cuda":
        if "CUDAExecutionProvider" in available:
            return [("CUDAExecutionProvider", {"device_id": device.index or 0}), "CPUExecutionProvider"]
        warnings.warn(
            f"device {device}: this onnxruntime has no CUDA provider (available: {available}); the ONNX model runs "
            "on the CPU (pip install onnxruntime-gpu for CUDA)",
            stacklevel=3,
        )
    return ["CPUExecutionProvider"]


class OnnxDetector:
    """A detloss ONNX export as a callable model (see the module docstring)."""

    def __init__(self, path: str | os.PathLike[str], device: torch.device | str = "cpu") -> None:
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise ValueError(f"{path}: running an .onnx model needs onnxruntime (pip install onnxruntime)") from e
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"ONNX model {str(self.path)!r} does not exist or is not a file")
        self.device = torch.device(device)
        try:
            opts = ort.SessionOptions()
            # torch's thread count (OMP_NUM_THREADS), and no spin-waiting: a spinning pool starves busy machines
            opts.intra_op_num_threads = torch.get_num_threads()
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
            self.session = ort.InferenceSession(str(self.path), opts, providers=_providers(self.device))
        except Exception as e:  # onnxruntime raises its own exception types for corrupt files
            raise ValueError(f"cannot load ONNX model {str(self.path)!r}: {type(e).__name__}: {e}") from e
        meta = read_metadata(self.session, str(self.path))
        self.meta = meta
        self.names: list[str] = list(meta["names"])
        self.nc = int(meta["nc"])
        self.strides = [float(s) for s in meta["stride"]]
        self.imgsz = [int(v) for v in meta["imgsz"]]
        self.cfg_name = str(meta.get("cfg", "onnx"))
        cal = meta.get("calibrator")
        if cal is not None and not isinstance(cal, dict):
            raise ValueError(f"{self.path}: metadata 'calibrator' must be a calibrator state (a JSON object)")
        self.calibrator: dict | None = cal
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.input_dtype = np.float16 if "float16" in inp.type else np.float32
        self.fixed_batch = inp.shape[0] if isinstance(inp.shape[0], int) else None
        self.fixed_hw = tuple(inp.shape[2:]) if all(isinstance(s, int) for s in inp.shape[2:]) else None
        self.training = False

    # the nn.Module surface that inference code touches
    def eval(self) -> OnnxDetector:
        return self

    def train(self, mode: bool = True) -> OnnxDetector:
        if mode:
            raise ValueError(f"{self.path}: an ONNX model has no training mode")
        return self

    def to(self, device: torch.device | str) -> OnnxDetector:
        if torch.device(device) != self.device:
            return OnnxDetector(self.path, device)
        return self

    def _run(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: x})[0]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"ONNX model input must be a Tensor[bs, 3, H, W], got {getattr(x, 'shape', type(x))}")
        if self.fixed_hw is not None and tuple(x.shape[2:]) != self.fixed_hw:
            raise ValueError(
                f"{self.path} was exported for {self.fixed_hw[0]}x{self.fixed_hw[1]} input, got "
                f"{x.shape[2]}x{x.shape[3]}: use --imgsz {self.fixed_hw[0]} or export with --dynamic"
            )
        arr = x.detach().float().cpu().numpy().astype(self.input_dtype, copy=False)
        b = self.fixed_batch
        if b is None:
            out = self._run(arr)
        else:
            parts = []
            for i in range(0, len(arr), b):
                chunk = arr[i : i + b]
                n = len(chunk)
                if n < b:
                    chunk = np.concatenate([chunk, np.zeros((b - n, *chunk.shape[1:]), chunk.dtype)])
                parts.append(self._run(chunk)[:n])
            out = np.concatenate(parts)
        return torch.from_numpy(np.ascontiguousarray(out, dtype=np.float32)).to(x.device)
