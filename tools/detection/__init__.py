"""Detections on images: ``tools/detect.py``'s sources and drawing, ``tools/export.py``'s ONNX export, and the
run folder's pictures.

Modules: ``sources`` (images, folders, globs, videos -> frames), ``annotate`` (class colours, boxes and
labels drawn with OpenCV, image writes), ``batchimages`` (a batch as one grid picture), ``labelplot``
(``labels.jpg``), ``runplots`` (every picture of a run folder, one call per moment of a run) and
``onnx_export`` (model + decode -> ONNX with metadata). Running the model is ``tools.inference``.
"""
