"""Command-line tools (train, eval, detect, benches), each importable with ``main(argv=None)``, and the packages
they share, layered by what each does (imports run one way, ``tests/test_tools_layering.py`` checks it):

* ``evaluation``: COCO dicts and numpy arrays in, numbers and plots out; imports without torch;
* ``inference``: running a model (device, weights, NMS and calibrated scores, evaluation of a model on a split);
* ``detection``: detections on images (sources, drawing, the run folder's pictures, ONNX export);
* ``training``: the trainer and its parts; ``study``: the label-smoothing study;
* ``cli``: what the scripts share as programs (the error convention, run folders ``runs/<task>/exp<n>``).

Running a model (``eval.py``, ``detect.py``) never imports ``training``. Files are written through the
checkout's ``fileio`` (atomic writes, link-or-copy; standard library only).

A script imports packages, never another script.
"""
