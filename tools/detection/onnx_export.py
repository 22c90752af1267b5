"""Export a :class:`models.Detector` with its box decode to ONNX, with the model's metadata in the file.

The graph is the eval-mode forward: input ``images`` ``float[bs, 3, H, W]`` in 0..1 (RGB, letterboxed), output
``output0`` ``float32[bs, N, 5 + nc]`` rows ``[x1, y1, x2, y2, obj, cls_0 .. cls_{nc-1}]``: boxes in pixels of
the letterboxed input, objectness and class scores after the sigmoid. NMS is not in the graph (run
``models.postprocess.non_max_suppression`` on the output, as ``tools/detect.py`` does). ``dynamic``: batch,
height and width are free (H and W must stay multiples of 32); else the shape is fixed at export.

Metadata (``metadata_props``, every value a JSON string): ``format`` (``"detloss-onnx"``), ``cfg``, ``nc``,
``names``, ``stride`` (list), ``imgsz`` (``[h, w]``), ``anchors`` (pixels, ``[nl][na][2]``), ``decode``,
``scale_x_y``, ``dynamic``, ``half`` and ``output`` (the layout above, in words); ``calibrator`` (a post-hoc
calibrator's state, ``tools/calibrate.py``) when the checkpoint carries one, so detect/eval on the ``.onnx``
report the same calibrated scores as on the ``.pt``.

The exporter is PyTorch's TorchScript-based ``torch.onnx.export(dynamo=False)``: it needs only ``onnx``, and
the graph of this model (convs, LeakyReLU/SiLU, maxpool, concat, sigmoid, a grid) exports without dynamo.
"""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fileio import atomic_write
from tools.inference.onnx_runtime import META_FORMAT

__all__ = ["OUTPUT_LAYOUT", "export_onnx", "metadata", "simplify"]

OUTPUT_LAYOUT = "[bs, N, 5 + nc]: x1 y1 x2 y2 (letterboxed input pixels), obj, class scores (sigmoid); no NMS"


class DecodedOutput(nn.Module):
    """``model`` whose forward returns only the decoded tensor (element 0 when the model returns a tuple)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        return out[0] if isinstance(out, (tuple, list)) else out


def metadata(
    model: Any, imgsz: tuple[int, int], dynamic: bool, half: bool, calibrator: dict | None = None
) -> dict[str, str]:
    """The ``metadata_props`` of an export of ``model`` (a ``Detector``) at ``imgsz`` ``(h, w)``."""
    meta: dict[str, Any] = {
        "format": META_FORMAT,
        "cfg": model.cfg_name,
        "nc": int(model.nc),
        "names": list(model.names),
        "stride": [float(s) for s in model.strides],
        "imgsz": [int(imgsz[0]), int(imgsz[1])],
        "anchors": model.anchors_px.detach().float().cpu().tolist(),
        "decode": model.decode,
        "scale_x_y": float(model.scale_x_y),
        "dynamic": bool(dynamic),
        "half": bool(half),
        "output": OUTPUT_LAYOUT,
    }
    if calibrator is not None:
        meta["calibrator"] = calibrator
    return {k: json.dumps(v) for k, v in meta.items()}


def export_onnx(
    model: Any,
    path: str | Path,
    imgsz: tuple[int, int],
    batch_size: int = 1,
    dynamic: bool = False,
    half: bool = False,
    opset: int = 17,
    calibrator: dict | None = None,
) -> Path:
    """Trace ``model`` (a ``Detector``, on its device; put it in fp16 yourself for ``half``) to ONNX at ``path``.

    Returns the path. The file is written atomically, metadata included (see the module docstring);
    ``calibrator``: a calibrator state to carry in the metadata.
    """
    import onnx

    wrapped = DecodedOutput(model).eval()  # a fresh module is in training mode: export restores that mode after
    param = next(model.parameters())
    x = torch.zeros(batch_size, 3, imgsz[0], imgsz[1], device=param.device, dtype=param.dtype)
    axes = {"images": {0: "batch", 2: "height", 3: "width"}, "output0": {0: "batch", 1: "anchors"}}
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # TracerWarnings of the input checks: the shapes are checked here instead
        torch.onnx.export(
            wrapped,
            (x,),
            buf,  # type: ignore[arg-type]  # the stub says a path only; the TorchScript exporter takes a file object
            dynamo=False,
            opset_version=opset,
            input_names=["images"],
            output_names=["output0"],
            dynamic_axes=axes if dynamic else None,
            do_constant_folding=True,
        )
    proto = onnx.load_from_string(buf.getvalue())
    for k, v in metadata(model, imgsz, dynamic, half, calibrator).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.checker.check_model(proto)
    return atomic_write(path, proto.SerializeToString())


def simplify(path: str | Path) -> str:
    """Simplify the ONNX file in place with ``onnxslim`` or ``onnxsim`` (whichever is installed, in that order).

    Returns the tool's name. ``ValueError`` when neither is installed (``pip install onnxslim``). The
    metadata is carried over.
    """
    import onnx

    path = Path(path)
    proto = onnx.load(str(path))
    props = [(p.key, p.value) for p in proto.metadata_props]
    import importlib.util

    if importlib.util.find_spec("onnxslim") is not None:
        import onnxslim

        out, tool = onnxslim.slim(proto), "onnxslim"
    elif importlib.util.find_spec("onnxsim") is not None:
        import onnxsim

        out, ok = onnxsim.simplify(proto)
        if not ok:
            raise ValueError(f"{path}: onnxsim could not validate the simplified model; export without --simplify")
        tool = "onnxsim"
    else:
        raise ValueError("--simplify needs onnxslim or onnxsim installed: pip install onnxslim")
    del out.metadata_props[:]
    for k, v in props:
        entry = out.metadata_props.add()
        entry.key, entry.value = k, v
    atomic_write(path, out.SerializeToString())
    return tool
