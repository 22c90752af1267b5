"""Using a trained detector: ``tools/detect.py`` and ``tools/export.py``.

Modules: ``sources`` (images, folders, globs, videos -> frames), ``annotate`` (class colours, boxes and
labels drawn with OpenCV, image writes), ``predict`` (letterbox + the evaluation's NMS/unletterbox path),
``onnx_runtime`` (an exported ``.onnx`` run through onnxruntime, called like the model), ``weights`` (a
``.pt`` or ``.onnx`` file -> a model) and ``onnx_export`` (model + decode -> ONNX with metadata).
"""
