"""Research experiments run with the project (not part of the product: nothing in ``detloss``, ``data``,
``models`` or ``tools`` imports this package; an experiment may import the product).

``label_smoothing``: the label-smoothing study (``python experiments/label_smoothing/study.py``).
"""
