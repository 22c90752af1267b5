"""The label-smoothing study, a research experiment outside the product's packages.

The command is ``python experiments/label_smoothing/study.py`` (:mod:`.study`). Its parts: the run's identity
and the options keyed by value (``keys``), the data of a condition (``conditions``, with ``label_noise`` and the
held-out split), per-run summary files (``summaries``), one run as a process (``job``, started ``--jobs`` at a
time by ``jobs``), its measurements through the project's scripts (``measure``, ``detections``), and the tables,
``summary.json`` and plot built from the summaries alone (``aggregate``, ``seed_stats``).

A package (imported as ``experiments.label_smoothing.*``) rather than loose scripts: the tests import its
modules in-process, the job runs as ``python -m experiments.label_smoothing.job``, and the layering test can
tell by name that no product module imports it.
"""
