"""experiments/label_smoothing/jobs.py: at most N children at once, their thread share, failures named."""

from __future__ import annotations

import json
import sys

import pytest

from experiments.label_smoothing.jobs import default_threads, run_parallel

CHILD = """
import json, os, sys, time
t0 = time.time(); time.sleep(0.6)
json.dump({"t0": t0, "t1": time.time(), "omp": os.environ.get("OMP_NUM_THREADS")}, open(sys.argv[1], "w"))
print("child done")
"""


def test_at_most_n_at_once_with_their_thread_share(tmp_path):
    outs = [tmp_path / f"{i}.json" for i in range(4)]
    run_parallel([([sys.executable, "-c", CHILD, str(o)], tmp_path / f"{i}.log") for i, o in enumerate(outs)], 2, 3)
    spans = [json.loads(o.read_text()) for o in outs]
    assert all(s["omp"] == "3" for s in spans)
    for s in spans:  # at any child's start, fewer than 2 others were running
        assert sum(o["t0"] <= s["t0"] < o["t1"] for o in spans if o is not s) <= 1
    assert sum(o["t0"] < spans[0]["t1"] for o in spans[1:]) >= 1  # and they did overlap
    assert (tmp_path / "0.log").read_text().strip() == "child done"


def test_a_failure_is_named_after_the_others_finish(tmp_path):
    ok = tmp_path / "ok.json"
    jobs = [([sys.executable, "-c", "import sys; print('broken input'); sys.exit(3)"], tmp_path / "bad.log"),
            ([sys.executable, "-c", CHILD, str(ok)], tmp_path / "ok.log")]  # fmt: skip
    with pytest.raises(RuntimeError, match=r"1 of 2 job\(s\) failed:\nexit 3:(.|\n)*bad.log(.|\n)*broken input"):
        run_parallel(jobs, 1)
    assert ok.is_file()
    with pytest.raises(ValueError, match=">= 1"):
        run_parallel(jobs, 0)
    assert default_threads(10**6) == 1
