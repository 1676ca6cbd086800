"""The statistics against scipy and statsmodels (test-only oracles) and hand-computed values."""

from __future__ import annotations

import random

import numpy as np
import pytest
from scipy import stats as scipy_stats
from statsmodels.stats.proportion import proportion_confint

from promptkit.comparing.stats import (
    Interval,
    case_bootstrap_interval,
    detectable_drop_table,
    holm,
    mcnemar_exact,
    mcnemar_one_sided,
    min_detectable_drop,
    paired_bootstrap,
    paired_bootstraps,
    sign_flip_p,
    wilson_interval,
)


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


# -- one-sided McNemar -----------------------------------------------------------------


@pytest.mark.parametrize("regressed,fixed", [
    (0, 1), (1, 0), (3, 0), (5, 1), (1, 5), (6, 0), (7, 2), (9, 2), (10, 10), (12, 3),
    (40, 21), (0, 30), (100, 100), (110, 90), (111, 90),  # the exact/log-space boundary
    (520, 480), (600, 540), (540, 600), (1200, 1000), (3, 2000), (2000, 3),
])
def test_mcnemar_one_sided_matches_scipy_binomtest(regressed, fixed):
    n = regressed + fixed
    expected = scipy_stats.binomtest(regressed, n, 0.5, alternative="greater").pvalue
    assert mcnemar_one_sided(regressed, fixed) == pytest.approx(expected, rel=1e-9, abs=1e-300)


@pytest.mark.parametrize("regressed,fixed", [
    (500_000, 500_000), (501_000, 499_000), (499_000, 501_000), (502_500, 497_500),
    (510_000, 490_000), (600_000, 400_000),
])
def test_mcnemar_one_sided_at_a_million_flips(regressed, fixed):
    # lgamma near 10^7 carries ~1e-9 relative error into each term; no under/overflow.
    expected = scipy_stats.binomtest(regressed, regressed + fixed, 0.5,
                                     alternative="greater").pvalue
    assert mcnemar_one_sided(regressed, fixed) == pytest.approx(expected, rel=1e-7, abs=1e-300)


def test_mcnemar_one_sided_hand_computed():
    assert mcnemar_one_sided(5, 0) == 1 / 32  # exactly: the gate compares it with alpha
    assert mcnemar_one_sided(9, 2) == 67 / 2048  # (C(11,9) + C(11,10) + C(11,11)) / 2^11
    assert mcnemar_one_sided(0, 5) == 1.0
    assert mcnemar_one_sided(0, 0) == 1.0
    assert mcnemar_one_sided(2, 2) == pytest.approx(11 / 16)
    with pytest.raises(ValueError):
        mcnemar_one_sided(3, -1)


@pytest.mark.parametrize("regressed,fixed", [(4, 1), (9, 2), (40, 21), (600, 540), (1500, 1400)])
def test_two_sided_is_twice_the_one_sided_when_more_regressed(regressed, fixed):
    assert mcnemar_exact(regressed, fixed) == pytest.approx(
        2 * mcnemar_one_sided(regressed, fixed), rel=1e-12)
    assert mcnemar_exact(fixed, regressed) == mcnemar_exact(regressed, fixed)


# -- detectable drop -------------------------------------------------------------------


@pytest.mark.parametrize("n,alpha,power", [
    (5, 0.05, 0.8), (20, 0.05, 0.8), (200, 0.05, 0.8), (200, 0.05 / 8, 0.8),
    (1000, 0.01, 0.9), (5000, 0.05, 0.5), (100_000, 0.001, 0.95),
])
def test_min_detectable_drop_matches_scipy(n, alpha, power):
    drop = min_detectable_drop(n, alpha, power)
    assert drop is not None
    k_min = next(k for k in range(1, 100) if 0.5**k <= alpha)
    assert mcnemar_one_sided(k_min, 0) <= alpha < mcnemar_one_sided(k_min - 1, 0)
    # power(d) = P(Binomial(n, d) >= k_min): reached at the drop, not 1e-6 below it
    assert scipy_stats.binom.sf(k_min - 1, n, drop) >= power
    assert scipy_stats.binom.sf(k_min - 1, n, drop - 1e-6) < power
    # and the same number as a beta quantile: P(Bin(n, d) >= k) = I_d(k, n - k + 1)
    assert drop == pytest.approx(scipy_stats.beta.ppf(power, k_min, n - k_min + 1), abs=1e-8)


def test_min_detectable_drop_by_simulation():
    """Flip each of 200 cases pass → fail with the returned probability, run the
    one-sided test on the flips: about 80% of seeded trials reject."""
    n, alpha, trials = 200, 0.05 / 4, 20_000
    drop = min_detectable_drop(n, alpha)
    assert drop is not None
    rng = np.random.default_rng(42)
    for d, expected in ((drop, 0.8), (drop / 2, scipy_stats.binom.sf(6, n, drop / 2))):
        regressed = rng.binomial(n, d, size=trials)
        rejects = {k: mcnemar_one_sided(int(k), 0) <= alpha for k in np.unique(regressed)}
        rate = np.mean([rejects[k] for k in regressed])
        assert rate == pytest.approx(expected, abs=4 * np.sqrt(expected * (1 - expected) / trials))
    assert scipy_stats.binom.sf(6, n, drop / 2) < 0.5  # half the drop is caught far less


def test_min_detectable_drop_at_powers_of_two_and_too_few_cases():
    # alpha = 1/32: five regressions and no fixes give p = 1/32 <= alpha, so 5 cases do
    assert min_detectable_drop(5, 1 / 32) == pytest.approx(0.8 ** (1 / 5), abs=1e-8)
    assert min_detectable_drop(4, 1 / 32) is None
    # just below 1/32 a sixth regression is needed
    assert min_detectable_drop(5, 1 / 32 - 1e-15) is None
    assert min_detectable_drop(6, 1 / 32 - 1e-15) == pytest.approx(0.8 ** (1 / 6), abs=1e-8)
    assert min_detectable_drop(0, 0.05) is None
    with pytest.raises(ValueError, match="alpha"):
        min_detectable_drop(100, 0.0)
    with pytest.raises(ValueError, match="power"):
        min_detectable_drop(100, 0.05, power=1.0)
    with pytest.raises(ValueError, match="negative"):
        min_detectable_drop(-1, 0.05)


def test_detectable_drop_table():
    ns = (4, 20, 30, 50, 100, 200, 500, 1000, 5000)
    table = detectable_drop_table(ns)
    assert [n for n, _ in table] == list(ns)
    assert table[0] == (4, None)
    for n, points in table[1:]:
        drop = min_detectable_drop(n, 0.05)
        assert drop is not None and points == pytest.approx(100 * drop)
    drops = [points for _, points in table[1:]]
    assert drops == sorted(drops, reverse=True)
    assert dict(table)[200] == pytest.approx(3.34, abs=0.01)


# -- sign-flip test --------------------------------------------------------------------


def _scipy_sign_flip(differences, alternative, resamples=np.inf, seed=0):
    return scipy_stats.permutation_test(
        (np.asarray(differences, dtype=float),), np.sum, permutation_type="samples",
        alternative=alternative, n_resamples=resamples, rng=np.random.default_rng(seed)).pvalue


def _repeat_differences(rng, cases, repeats=10, shift=0):
    before = rng.integers(0, repeats + 1, cases)
    after = np.clip(before + rng.integers(-3, 4, cases) + shift, 0, repeats)
    return (after - before) / repeats


@pytest.mark.parametrize("seed,cases", [(1, 8), (2, 12), (3, 16), (4, 16)])
@pytest.mark.parametrize("alternative", ["less", "greater"])
def test_sign_flip_exact_matches_scipy(seed, cases, alternative):
    # scipy flips the sign of each observation of a single sample; zeros included, which
    # leaves every share unchanged.
    differences = _repeat_differences(np.random.default_rng(seed), cases)
    assert np.count_nonzero(differences) <= 20
    assert sign_flip_p(differences, alternative=alternative) == pytest.approx(
        _scipy_sign_flip(differences, alternative), rel=1e-12)


@pytest.mark.parametrize("alternative", ["less", "greater"])
def test_sign_flip_sampled_matches_scipy_within_monte_carlo_error(alternative):
    differences = _repeat_differences(np.random.default_rng(7), 80)
    assert np.count_nonzero(differences) > 20
    ours = sign_flip_p(differences, alternative=alternative, seed=3, resamples=20_000)
    reference = _scipy_sign_flip(differences, alternative, resamples=50_000)
    assert ours == pytest.approx(reference, abs=4 * np.sqrt(0.25 / 20_000))
    assert 0.01 < ours < 0.99  # a p-value in the middle: not a comparison of extremes


@pytest.mark.parametrize("regressed,fixed,unchanged", [
    (0, 3, 5), (3, 0, 0), (9, 2, 19), (5, 5, 2), (12, 4, 30), (2, 18, 0), (20, 0, 0),
])
def test_exact_sign_flip_on_pass_fail_is_one_sided_mcnemar(regressed, fixed, unchanged):
    differences = [-1.0] * regressed + [1.0] * fixed + [0.0] * unchanged
    random.Random(regressed).shuffle(differences)
    assert sign_flip_p(differences) == mcnemar_one_sided(regressed, fixed)
    assert sign_flip_p(differences, alternative="greater") == mcnemar_one_sided(fixed, regressed)


def test_sampled_sign_flip_on_pass_fail_is_close_to_one_sided_mcnemar():
    for regressed, fixed in ((40, 20), (300, 260), (30, 31)):
        p = sign_flip_p([-1] * regressed + [1] * fixed, seed=1, resamples=40_000)
        expected = mcnemar_one_sided(regressed, fixed)
        assert p == pytest.approx(expected, abs=4 * np.sqrt(expected * (1 - expected) / 40_000)
                                  + 1 / 40_000)


def test_sign_flip_edge_cases_and_seeding():
    assert sign_flip_p([0.0, 0.0, 0.0]) == 1.0
    assert sign_flip_p([]) == 1.0
    assert sign_flip_p([-0.5]) == 0.5
    assert sign_flip_p([0.3, 0.3, 0.3], alternative="greater") == 1 / 8
    differences = _repeat_differences(np.random.default_rng(9), 60)
    assert sign_flip_p(differences, seed=4) == sign_flip_p(differences, seed=4)
    assert sign_flip_p(differences, seed=4) != sign_flip_p(differences, seed=5)
    with pytest.raises(ValueError, match="alternative"):
        sign_flip_p([1.0], alternative="two-sided")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="finite"):
        sign_flip_p([0.5, float("nan")])  # a NaN must not read as a significant drop


def test_sign_flip_on_many_cases_draws_per_distinct_difference():
    # 100,000 cases with 10 repeats: 10 distinct |differences|, so 10 draws per resample
    differences = _repeat_differences(np.random.default_rng(5), 100_000)
    p = sign_flip_p(differences, resamples=2000)
    normal = scipy_stats.norm.cdf(differences.sum() / np.sqrt(np.sum(differences**2)))
    assert 0.05 < normal < 0.95
    assert p == pytest.approx(normal, abs=0.04)


def test_sign_flip_sampled_in_chunks():
    # 30,000 distinct differences: 133 resamples per chunk, so 400 take four chunks
    differences = np.random.default_rng(6).normal(-0.005, 1.0, 30_000)
    p = sign_flip_p(differences, resamples=400)
    normal = scipy_stats.norm.cdf(differences.sum() / np.sqrt(np.sum(differences**2)))
    assert 0.05 < normal < 0.95
    assert p == pytest.approx(normal, abs=0.1)


# -- intervals of one run --------------------------------------------------------------


def test_case_bootstrap_matches_scipy_percentile_interval():
    rng = np.random.default_rng(13)
    fractions = rng.binomial(10, rng.beta(0.7, 0.3, 200)) / 10
    low, high = case_bootstrap_interval(fractions, seed=0, resamples=20_000)
    reference = scipy_stats.bootstrap(
        (fractions,), np.mean, method="percentile", n_resamples=20_000,
        confidence_level=0.95, rng=np.random.default_rng(5)).confidence_interval
    # Different draws, so equal up to Monte Carlo error (~0.001 here).
    assert low == pytest.approx(reference.low, abs=0.004)
    assert high == pytest.approx(reference.high, abs=0.004)
    assert low < fractions.mean() < high


def test_case_bootstrap_draws_like_paired_bootstrap():
    fractions = [0.0, 0.3, 1.0, 0.9, 1.0, 0.5, 0.2]
    interval = paired_bootstrap([0.0] * 7, fractions, seed=8, resamples=700, confidence=0.9)
    assert case_bootstrap_interval(fractions, seed=8, resamples=700, confidence=0.9) == (
        interval.low, interval.high)
    assert case_bootstrap_interval(fractions, seed=8) != case_bootstrap_interval(fractions, seed=9)


def test_case_bootstrap_points_and_errors():
    assert case_bootstrap_interval([0.7]) == (0.7, 0.7)
    assert case_bootstrap_interval([0.4, 0.4, 0.4]) == (pytest.approx(0.4), pytest.approx(0.4))
    # two cases by enumeration: resampled means 0, 0.5, 1 with chances 1/4, 1/2, 1/4
    assert case_bootstrap_interval([0.0, 1.0], seed=3, resamples=4000) == (0.0, 1.0)
    with pytest.raises(ValueError, match="no fractions"):
        case_bootstrap_interval([])
    with pytest.raises(ValueError, match="confidence"):
        case_bootstrap_interval([0.1, 0.2], confidence=0.0)


def test_case_bootstrap_large_input_is_chunked():
    fractions = [float(i % 2) for i in range(30_000)]
    low, high = case_bootstrap_interval(fractions, resamples=300)
    assert 0.49 < low < 0.5 < high < 0.51


@pytest.mark.parametrize("n", [1, 2, 7, 10, 40, 250, 10_000])
@pytest.mark.parametrize("confidence", [0.8, 0.95, 0.99])
def test_wilson_matches_statsmodels(n, confidence):
    for passed in sorted({0, 1, n // 3, n // 2, n - 1, n} & set(range(n + 1))):
        low, high = proportion_confint(passed, n, alpha=1 - confidence, method="wilson")
        assert wilson_interval(passed, n, confidence) == (
            pytest.approx(low, abs=1e-12), pytest.approx(high, abs=1e-12))


def test_wilson_uses_the_exact_normal_quantile():
    z = 1.959963984540054
    low, high = wilson_interval(8, 10)
    centre = (0.8 + z * z / 20) / (1 + z * z / 10)
    assert (low + high) / 2 == pytest.approx(centre, rel=1e-15)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    assert wilson_interval(0, 5)[0] == 0.0 and wilson_interval(5, 5)[1] == 1.0
    with pytest.raises(ValueError, match="passed"):
        wilson_interval(6, 5)
    with pytest.raises(ValueError, match="confidence"):
        wilson_interval(1, 5, confidence=95)
