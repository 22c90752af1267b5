"""Running a detector: everything that needs torch and a model, and nothing the metrics need.

Modules: ``device`` (``--device`` -> ``torch.device``, the one parser), ``weights`` (a ``.pt`` or ``.onnx`` ->
a model and its image size), ``onnx_runtime`` (an export run by onnxruntime, called like the model),
``datasets`` (``--data`` or the demo, a split's ground truth from its labels, a held-out part),
``postprocess`` (NMS, boxes back to the original image, a post-hoc calibrator on the scores), ``loop``
(a loader -> COCO results), ``evaluate`` (a model on a dataset -> ``EvalResult``, DDP-aware), ``ranks``
(torchrun rank discovery and the process group, shared with training) and ``predict`` (images -> detections
for ``tools/detect.py``).

The metrics themselves are ``tools.evaluation`` (no torch); this package imports it, never the reverse.
"""

from .device import select_device
from .evaluate import evaluate_model
from .loop import InferenceOutput, infer
from .weights import checkpoint_imgsz, load_weights

__all__ = ["InferenceOutput", "checkpoint_imgsz", "evaluate_model", "infer", "load_weights", "select_device"]
