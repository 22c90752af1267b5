"""The label-smoothing study's parts: per-run summary files (``summaries``), one run as a process (``job``),
its measurements through the project's scripts (``measure``, ``detections``) and the tables built from the
summaries alone (``aggregate``). The command is ``tools/smoothing_study.py``."""
