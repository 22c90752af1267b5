"""The study's seed statistics (experiments/label_smoothing/seed_stats.py), known values worked by hand."""

from __future__ import annotations

import math

import pytest

from experiments.label_smoothing.seed_stats import exceeds_noise, mean_cell, mean_std, metric_tables


def test_mean_and_sample_std_of_the_finite_values():
    # [1, 2, 3]: mean 2, squared deviations 1 + 0 + 1 = 2, ddof 1 -> variance 1, std 1
    assert mean_std([1.0, 2.0, 3.0]) == (2.0, 1.0, 3)
    assert mean_std([1.0, float("nan"), None, 3.0]) == (2.0, pytest.approx(math.sqrt(2)), 2)  # type: ignore[list-item]
    m, s, n = mean_std([0.5])
    assert (m, n) == (0.5, 1) and math.isnan(s)  # one seed: no spread
    assert mean_std([])[2] == 0 and mean_std([float("nan")])[2] == 0


def test_the_noise_rule_is_twice_the_combined_standard_error():
    # both sides std 1 over 3 seeds: se = sqrt(1/3 + 1/3) = 0.8165, the bar 2 se = 1.633
    assert exceeds_noise([1.0, 2.0, 3.0], [5.0, 6.0, 7.0])  # |2 - 6| = 4 > 1.633
    assert not exceeds_noise([1.0, 2.0, 3.0], [2.5, 3.5, 4.5])  # 1.5 < 1.633
    assert exceeds_noise([1.0, 2.0, 3.0], [2.7, 3.7, 4.7])  # 1.7 > 1.633
    assert not exceeds_noise([1.0], [9.0, 9.5])  # one seed on a side: never marked
    assert exceeds_noise([1.0, 1.0], [2.0, 2.0]) and not exceeds_noise([1.0, 1.0], [1.0, 1.0])  # no spread


def test_cells_and_tables_mark_what_exceeds_the_noise():
    assert mean_cell([1.0, 2.0, 3.0], [5.0, 6.0, 7.0], "{:.2f}") == "2.00 +- 1.00 *"
    assert mean_cell([1.0, 2.0, 3.0], None, "{:.1f}") == "2.0 +- 1.0"
    assert mean_cell([0.25], [0.1, 0.2], "{:.2f}") == "0.25" and mean_cell([], None, "{:.2f}") == "n/a"
    runs = {"clean": {"eps 0": [{"m": 1.0}, {"m": 2.0}, {"m": 3.0}], "eps 0.1": [{"m": 5.0}, {"m": 6.0}, {"m": 7.0}]}}
    lines = metric_tables(runs, "eps 0", [("m", "metric", "{:.1f}", 1)])
    assert lines == ["**clean**", "", "| setting | seeds | metric |", "|---|---|---|", "| eps 0 | 3 | 2.0 +- 1.0 |",
                     "| eps 0.1 | 3 | 6.0 +- 1.0 * |", ""]  # fmt: skip
