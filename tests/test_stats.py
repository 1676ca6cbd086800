"""The paired statistics against scipy and hand-computed values."""

from __future__ import annotations

import random

import numpy as np
import pytest
from scipy import stats as scipy_stats

from promptkit.stats import Interval, holm, mcnemar_exact, paired_bootstrap, paired_bootstraps


@pytest.mark.parametrize("regressed,fixed", [
    (0, 1), (1, 0), (3, 0), (5, 1), (1, 5), (6, 0), (7, 2), (10, 10), (12, 3), (40, 21),
    (0, 30), (600, 540),
])
def test_mcnemar_matches_scipy_binomtest(regressed, fixed):
    expected = scipy_stats.binomtest(min(regressed, fixed), regressed + fixed, 0.5).pvalue
    assert mcnemar_exact(regressed, fixed) == pytest.approx(expected, rel=1e-9, abs=1e-300)


def test_mcnemar_hand_computed():
    # 5 regressed, 0 fixed: 2 * (1/2)^5
    assert mcnemar_exact(5, 0) == pytest.approx(0.0625)
    # 6 vs 0: 2/64, the smallest count of one-way flips significant at 0.05
    assert mcnemar_exact(0, 6) == pytest.approx(0.03125)
    # 4 vs 1: 2 * (1 + 5) / 32
    assert mcnemar_exact(4, 1) == pytest.approx(0.375)
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(3, 3) == 1.0  # capped
    with pytest.raises(ValueError):
        mcnemar_exact(-1, 2)


def test_mcnemar_large_counts_do_not_underflow():
    assert 0 < mcnemar_exact(1200, 1000) < 1e-4
    assert mcnemar_exact(5000, 5000) == 1.0


def test_bootstrap_two_cases_by_enumeration():
    # Differences (0, 1): a resample's mean is 0, 0.5 or 1 with chances 1/4, 1/2, 1/4,
    # so the 2.5th and 97.5th percentiles are 0 and 1.
    interval = paired_bootstrap([1, 0], [1, 1], seed=3, resamples=4000)
    assert interval == Interval(0.5, 0.0, 1.0)


def test_bootstrap_constant_difference_is_a_point():
    interval = paired_bootstrap([0.2, 0.4, 0.6], [0.3, 0.5, 0.7])
    assert interval.low == interval.mean == interval.high == pytest.approx(0.1)


def test_bootstrap_is_seeded():
    rng = random.Random(7)
    before = [rng.random() for _ in range(50)]
    after = [x + rng.gauss(0.05, 0.1) for x in before]
    assert paired_bootstrap(before, after, seed=1) == paired_bootstrap(before, after, seed=1)
    assert paired_bootstrap(before, after, seed=1) != paired_bootstrap(before, after, seed=2)


def test_bootstrap_matches_scipy_percentile_interval():
    rng = np.random.default_rng(11)
    before = rng.uniform(0.2, 0.8, 300)
    after = before + rng.normal(-0.03, 0.12, 300)
    ours = paired_bootstrap(before, after, seed=0, resamples=20000)
    reference = scipy_stats.bootstrap(
        (after - before,), np.mean, method="percentile", n_resamples=20000,
        confidence_level=0.95, random_state=np.random.default_rng(5)).confidence_interval
    # Different draws, so equal up to Monte Carlo error (~0.001 here).
    assert ours.low == pytest.approx(reference.low, abs=0.003)
    assert ours.high == pytest.approx(reference.high, abs=0.003)
    assert ours.mean == pytest.approx(float(np.mean(after - before)))
    # and close to the normal approximation mean ± 1.96·sd/√n
    se = float(np.std(after - before, ddof=1)) / np.sqrt(300)
    assert ours.low == pytest.approx(ours.mean - 1.96 * se, abs=0.004)
    assert ours.excludes_zero is (ours.high < 0 or ours.low > 0)


def test_bootstrap_large_input_is_chunked():
    before = [0.0] * 30_000
    after = [float(i % 2) for i in range(30_000)]
    interval = paired_bootstrap(before, after, resamples=300)
    assert interval.mean == 0.5
    assert 0.49 < interval.low < 0.5 < interval.high < 0.51


def test_bootstrap_rejects_bad_input():
    with pytest.raises(ValueError, match="length"):
        paired_bootstrap([1, 2], [1])
    with pytest.raises(ValueError, match="no paired"):
        paired_bootstrap([], [])
    with pytest.raises(ValueError, match="confidence"):
        paired_bootstrap([1, 2], [2, 1], confidence=1.5)


def test_holm_matches_statsmodels_reference_values():
    # statsmodels.stats.multitest.multipletests([...], method="holm")[1]
    p = [0.01, 0.04, 0.03, 0.005]
    assert holm(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([]) == []
    assert holm([0.2]) == [0.2]
    assert holm([0.5, 0.6]) == [1.0, 1.0]


def test_mcnemar_false_alarm_rate_stays_below_alpha():
    """Two runs of one prompt whose cases pass at random (no real change): at most 5% of
    seeded trials are significant at 0.05 (the exact test is conservative)."""
    rng = random.Random(2026)
    alarms = 0
    trials = 400
    for _ in range(trials):
        rates = [rng.random() for _ in range(40)]  # each case has its own difficulty
        before = [rng.random() < r for r in rates]
        after = [rng.random() < r for r in rates]
        regressed = sum(b and not a for b, a in zip(before, after, strict=True))
        fixed = sum(a and not b for b, a in zip(before, after, strict=True))
        alarms += mcnemar_exact(regressed, fixed) < 0.05
    assert alarms / trials <= 0.05
    assert alarms > 0 or trials < 100  # the trials do produce flips; not a vacuous check


def test_joint_bootstrap_equals_separate_ones_and_checks_lengths():
    rng = random.Random(5)
    pairs = []
    for shift in (0.0, -0.1, 0.2):
        before = [rng.random() for _ in range(60)]
        pairs.append((before, [x + shift + rng.gauss(0, 0.05) for x in before]))
    pairs.append(([0.5] * 60, [0.7] * 60))  # constant: a point interval
    joint = paired_bootstraps(pairs, seed=9, resamples=500)
    assert joint == [paired_bootstrap(b, a, seed=9, resamples=500) for b, a in pairs]
    assert joint[3].low == joint[3].high == pytest.approx(0.2)
    with pytest.raises(ValueError, match="length"):
        paired_bootstraps([([1, 2], [1, 2]), ([1], [2])])
    with pytest.raises(ValueError, match="no paired"):
        paired_bootstraps([])
