"""Paired statistics for comparing two runs on the same cases, and intervals of one run.

* :func:`mcnemar_one_sided` — the exact one-sided McNemar test for "worse", which the
  regression gate uses; :func:`mcnemar_exact` is the two-sided test;
* :func:`min_detectable_drop` — the smallest drop that test catches with a given power
  (:func:`detectable_drop_table` for several row sizes);
* :func:`sign_flip_p` — a one-sided sign-flip permutation test on per-case differences,
  for cases with repeats (per-case pass fractions);
* :func:`paired_bootstrap` — a seeded percentile bootstrap interval on a mean difference
  (:func:`paired_bootstraps` for several metrics of the same cases at once), and
  :func:`case_bootstrap_interval` on the mean of per-case pass fractions of one run;
* :func:`wilson_interval` — the Wilson score interval of a rate of independent results;
* :func:`holm` — Holm's step-down adjustment when several rows are tested at once.

They are plain functions over numbers, checked against scipy and statsmodels in
``tests/test_stats.py``; ``tests/test_gate_simulation.py`` measures the gate's false-alarm
rate, power and coverage on simulated runs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Literal

import numpy as np

# Resamples are drawn this many at a time, so memory stays flat for 100,000 cases.
_CHUNK_VALUES = 4_000_000
# Up to this many flips, binomial tails are summed exactly in integers.
_EXACT_TAIL_FLIPS = 200
# Up to this many nonzero differences, sign_flip_p enumerates all 2**n sign patterns.
_EXACT_SIGN_FLIPS = 20


def mcnemar_exact(regressed: int, fixed: int) -> float:
    """Two-sided exact McNemar p-value for the discordant pairs of a paired pass/fail test.

    Under "no change" each discordant case is equally likely to have flipped either way,
    so the smaller count follows Binomial(regressed + fixed, 1/2). The p-value doubles
    its lower tail (capped at 1), which is scipy's ``binomtest(..., p=0.5).pvalue``.

    Args:
        regressed: Cases that passed before and fail now.
        fixed: Cases that failed before and pass now.

    Returns:
        The p-value; 1.0 when nothing flipped.
    """
    if regressed < 0 or fixed < 0:
        raise ValueError("flip counts cannot be negative")
    # By symmetry the lower tail at the smaller count is the upper tail at the larger.
    return min(1.0, 2.0 * _half_binomial_tail(max(regressed, fixed), regressed + fixed))


def mcnemar_one_sided(regressed: int, fixed: int) -> float:
    """One-sided exact McNemar p-value for "worse": more pass → fail flips than chance.

    Under "no change" each of the ``n = regressed + fixed`` discordant cases is equally
    likely to have flipped either way, so the p-value is ``P(X >= regressed)`` for
    ``X ~ Binomial(n, 1/2)``: scipy's ``binomtest(regressed, n, 0.5,
    alternative="greater").pvalue``. Up to 200 flips the tail is summed exactly in
    integers and divided once (5 regressions and no fixes give exactly 1/32); beyond, in
    log space with lgamma (about 1e-9 relative error at a million flips). The two-sided
    :func:`mcnemar_exact` is twice this when regressions outnumber fixes, so gating
    "worse" on it would spend only half of ``alpha``.

    Args:
        regressed: Cases that passed before and fail now.
        fixed: Cases that failed before and pass now.

    Returns:
        The p-value; 1.0 when nothing flipped.
    """
    if regressed < 0 or fixed < 0:
        raise ValueError("flip counts cannot be negative")
    return _half_binomial_tail(regressed, regressed + fixed)


def _half_binomial_tail(k: int, n: int) -> float:
    """``P(X >= k)`` for ``X ~ Binomial(n, 1/2)``."""
    if k <= 0:
        return 1.0
    if 2 * k <= n:
        # At or below the middle the tail is at least 1/2, so 1 − the other tail loses
        # nothing; by symmetry P(X <= k − 1) = P(X >= n − k + 1).
        return 1.0 - _half_binomial_tail(n - k + 1, n)
    if n <= _EXACT_TAIL_FLIPS:
        return sum(math.comb(n, i) for i in range(k, n + 1)) / 2**n
    # Above the middle the terms shrink as i grows: add them (in log space, since
    # comb(n, i) / 2**n underflows a float) until the rest cannot change the sum.
    log_half = n * math.log(0.5)
    total = 0.0
    for i in range(k, n + 1):
        term = math.exp(_log_comb(n, i) + log_half)
        total += term
        if term <= total * 1e-20:
            break
    return total


def _log_comb(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def min_detectable_drop(n: int, alpha: float, power: float = 0.8) -> float | None:
    """The smallest drop of a row's pass rate that :func:`mcnemar_one_sided` catches.

    The model: each of the row's ``n`` cases independently flips pass → fail with
    probability ``d`` and none flips back. With ``K`` regressions and no fixes the
    p-value is ``0.5**K``, so the test rejects iff ``K >= k_min``, the smallest ``k``
    with ``0.5**k <= alpha``; the power is ``P(Binomial(n, d) >= k_min)``, which grows
    with ``d`` and is solved for ``d`` by bisection to 1e-9. Real runs also fix some
    cases and flake, which needs a larger drop: read the result as a floor.

    Args:
        n: Paired cases in the row.
        alpha: The level each row is tested at: for Holm across ``m`` gated rows pass
            ``alpha / m`` (what the row with the smallest p-value must reach).
        power: The chance of catching the drop, e.g. 0.8.

    Returns:
        The drop as a fraction of cases in (0, 1]; ``None`` when even ``d = 1`` does not
        reach the power, i.e. when ``n < k_min``.
    """
    if n < 0:
        raise ValueError(f"n cannot be negative, got {n}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
    if not 0 < power < 1:
        raise ValueError(f"power must be between 0 and 1, got {power}")
    needed = _flips_needed(alpha)
    if n < needed:
        return None
    low, high = 0.0, 1.0  # power(low) < power <= power(high)
    while high - low > 1e-9:
        middle = (low + high) / 2
        if _binomial_at_least(needed, n, middle) >= power:
            high = middle
        else:
            low = middle
    return high


def _flips_needed(alpha: float) -> int:
    """The smallest ``k`` with ``0.5**k <= alpha`` (powers of two are exact in floats)."""
    k = max(1, math.ceil(-math.log2(alpha)))
    # log2 may round across an integer when alpha is (nearly) a power of two.
    while 0.5**k > alpha:
        k += 1
    while k > 1 and 0.5 ** (k - 1) <= alpha:
        k -= 1
    return k


def _binomial_at_least(k: int, n: int, p: float) -> float:
    """``P(Binomial(n, p) >= k)`` for ``0 < p < 1``, as 1 − the ``k`` terms below ``k``."""
    log_p, log_q = math.log(p), math.log1p(-p)
    below = sum(math.exp(_log_comb(n, i) + i * log_p + (n - i) * log_q)
                for i in range(min(k, n + 1)))
    return max(0.0, 1.0 - below)


def detectable_drop_table(ns: Sequence[int], alpha: float = 0.05, power: float = 0.8
                          ) -> list[tuple[int, float | None]]:
    """:func:`min_detectable_drop` for each row size, in percentage points.

    Returns:
        ``(n, drop)`` pairs in the order of ``ns``; ``drop`` is ``100 * d`` or ``None``.
    """
    drops = [(n, min_detectable_drop(n, alpha, power)) for n in ns]
    return [(n, None if drop is None else 100 * drop) for n, drop in drops]


def sign_flip_p(differences: Sequence[float], *,
                alternative: Literal["less", "greater"] = "less", seed: int = 0,
                resamples: int = 10_000) -> float:
    """One-sided paired sign-flip permutation test on per-case differences.

    The statistic is the sum of the differences (after − before; of per-case pass
    fractions when cases have repeats, so a case's repeats count once). Under "no
    change" a case's two sides are exchangeable, so each nonzero difference is as
    likely to have either sign; zeros are dropped. Up to 20 nonzero differences, all
    ``2**m`` sign patterns are enumerated and p is the share whose sum is at most the
    observed one (``"less"``: the candidate got worse; ``"greater"``: at least). Beyond,
    ``p = (1 + #{sum* <= observed}) / (1 + resamples)`` over seeded patterns, as in
    scipy's ``permutation_test``; the flips of cases sharing one ``|difference|`` are
    drawn as one Binomial count (same distribution, one draw per distinct value). Sums
    within 1e-9 × the total ``|difference|`` of the observed one are ties (rounding).
    With differences in {−1, 0, +1} the enumerated p is :func:`mcnemar_one_sided`.

    Args:
        differences: One difference per case.
        alternative: ``"less"`` tests for a lower mean, ``"greater"`` for a higher one.
        seed: Seeds numpy's PCG64 generator when patterns are sampled.
        resamples: Sign patterns drawn when they are not enumerated.

    Returns:
        The p-value; 1.0 when every difference is 0.
    """
    if alternative not in ("less", "greater"):
        raise ValueError(f"alternative must be 'less' or 'greater', got {alternative!r}")
    values = np.asarray(differences, dtype=float)
    if alternative == "greater":
        values = -values  # "greater" of the differences is "less" of their negation
    if not np.all(np.isfinite(values)):
        raise ValueError("differences must be finite numbers")
    values = values[values != 0]
    if values.size == 0:
        return 1.0
    observed = float(values.sum())
    limit = observed + 1e-9 * float(np.abs(values).sum())
    if values.size <= _EXACT_SIGN_FLIPS:
        sums = np.zeros(1)
        for value in values:  # doubling: the sums of every sign pattern so far
            sums = np.concatenate((sums + value, sums - value))
        return int(np.count_nonzero(sums <= limit)) / sums.size
    magnitudes, counts = np.unique(np.abs(values), return_counts=True)
    rng = np.random.default_rng(seed)
    rows = max(1, _CHUNK_VALUES // magnitudes.size)
    as_low = 0
    for start in range(0, resamples, rows):
        size = min(rows, resamples - start)
        negative = rng.binomial(counts, 0.5, size=(size, magnitudes.size))
        as_low += int(np.count_nonzero((counts - 2 * negative) @ magnitudes <= limit))
    return (1 + as_low) / (1 + resamples)


@dataclass(frozen=True)
class Interval:
    """A mean difference (after − before) and its bootstrap confidence interval."""

    mean: float
    low: float
    high: float

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0


def paired_bootstrap(before: Sequence[float], after: Sequence[float], *, seed: int = 0,
                     resamples: int = 2000, confidence: float = 0.95) -> Interval:
    """Percentile bootstrap interval of ``mean(after - before)`` over paired values.

    Cases are resampled with replacement, keeping each case's two values together, so
    the interval reflects case-to-case variation and not the difference between
    datasets. The same seed gives the same interval.

    Args:
        before: One value per case (the baseline).
        after: The same cases' values now, in the same order.
        seed: Seeds numpy's PCG64 generator.
        resamples: Bootstrap samples drawn.
        confidence: Coverage of the interval, e.g. 0.95.

    Returns:
        The observed mean difference and the interval; a zero-width interval at the
        difference when there is one case or every difference is equal.
    """
    return paired_bootstraps([(before, after)], seed=seed, resamples=resamples,
                             confidence=confidence)[0]


def paired_bootstraps(pairs: Sequence[tuple[Sequence[float], Sequence[float]]], *,
                      seed: int = 0, resamples: int = 2000, confidence: float = 0.95
                      ) -> list[Interval]:
    """:func:`paired_bootstrap` for several metrics of the same cases, resampled together.

    Each resample picks cases once for every metric, which costs one draw instead of
    one per metric; each interval equals what :func:`paired_bootstrap` gives for that
    metric alone with the same seed.

    Raises:
        ValueError: the pairs differ in length, are empty, or ``confidence`` is not in
            (0, 1).
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    lengths = {len(values) for pair in pairs for values in pair}
    if len(lengths) > 1:
        raise ValueError(f"paired values differ in length: {sorted(lengths)}")
    if not pairs or lengths == {0}:
        raise ValueError("no paired values")
    diffs = np.array([np.asarray(after, dtype=float) - np.asarray(before, dtype=float)
                      for before, after in pairs])
    means = diffs.mean(axis=1)
    varies = ~np.all(np.isclose(diffs, diffs[:, :1], rtol=0, atol=1e-12), axis=1)
    intervals = [Interval(float(m), float(m), float(m)) for m in means]
    if not varies.any():
        return intervals
    resampled = _resampled_means(diffs[varies], seed, resamples)
    tail = (1 - confidence) / 2 * 100
    for column, index in enumerate(np.flatnonzero(varies)):
        low, high = np.percentile(resampled[column], [tail, 100 - tail])
        intervals[index] = Interval(float(means[index]), float(low), float(high))
    return intervals


def _resampled_means(columns: np.ndarray, seed: int, resamples: int) -> np.ndarray:
    """Each row's mean over ``resamples`` draws of its cases (axis 1) with replacement.

    One draw of case indices serves every row; draws are made a chunk at a time.
    Returns an array of shape ``(rows, resamples)``.
    """
    rng = np.random.default_rng(seed)
    n = columns.shape[1]
    rows = max(1, _CHUNK_VALUES // n)
    resampled = np.empty((columns.shape[0], resamples))
    for start in range(0, resamples, rows):
        count = min(rows, resamples - start)
        picks = rng.integers(0, n, size=(count, n))
        for column, values in enumerate(columns):
            resampled[column, start:start + count] = values[picks].mean(axis=1)
    return resampled


def case_bootstrap_interval(fractions: Sequence[float], *, seed: int = 0,
                            resamples: int = 2000, confidence: float = 0.95
                            ) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of per-case pass fractions.

    Cases, not results, are resampled with replacement: a case's repeats share its
    difficulty, so counting them as independent results makes intervals too narrow.
    The interval is the ``(1 − confidence) / 2`` and ``(1 + confidence) / 2``
    percentiles (numpy's linear interpolation) of the resampled means; the draws are
    those of :func:`paired_bootstrap` with the same seed.

    Args:
        fractions: Each case's share of passing repeats (any per-case values work).
        seed: Seeds numpy's PCG64 generator.
        resamples: Bootstrap samples drawn.
        confidence: Coverage of the interval, e.g. 0.95.

    Returns:
        ``(low, high)``; ``(x, x)`` when there is one case or every fraction is ``x``.

    Raises:
        ValueError: no fractions, or ``confidence`` is not in (0, 1).
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    values = np.asarray(fractions, dtype=float)
    if values.size == 0:
        raise ValueError("no fractions")
    if np.all(np.isclose(values, values[0], rtol=0, atol=1e-12)):
        mean = float(values.mean())
        return mean, mean
    means = _resampled_means(values[np.newaxis, :], seed, resamples)[0]
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def wilson_interval(passed: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of a pass rate of ``n`` independent results.

    With ``p = passed / n`` and ``z`` the standard normal quantile at
    ``1 − (1 − confidence) / 2`` (1.959963984540054 at 95%), the interval is
    ``(p + z²/2n ± z·sqrt(p(1 − p)/n + z²/4n²)) / (1 + z²/n)``, clipped to [0, 1]
    (statsmodels' ``proportion_confint(method="wilson")``). Repeats of one case are
    not independent: for those use :func:`case_bootstrap_interval`.

    Args:
        passed: Results that passed.
        n: Results counted.
        confidence: Coverage of the interval, e.g. 0.95.

    Returns:
        ``(low, high)``; ``(0.0, 1.0)`` when ``n == 0``, since nothing is known.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    if not 0 <= passed <= n:
        raise ValueError(f"passed must be between 0 and n, got {passed} of {n}")
    if n == 0:
        return 0.0, 1.0
    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    p = passed / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    margin = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    # The bounds are exactly 0 at 0/n and 1 at n/n; rounding would leave ~1e-17.
    low = 0.0 if passed == 0 else max(0.0, centre - margin)
    high = 1.0 if passed == n else min(1.0, centre + margin)
    return low, high


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input order.

    Testing every prompt × provider row at ``alpha`` would raise a false alarm somewhere
    more often than ``alpha``; comparing Holm-adjusted p-values with ``alpha`` keeps the
    chance of any false alarm at ``alpha`` (statsmodels' ``multipletests(method="holm")``).
    """
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


def paired_pass_test(before: Sequence[float], after: Sequence[float], *, seed: int = 0
                     ) -> tuple[float, float, str]:
    """One-sided paired tests of per-case pass fractions: ``(p_worse, p_better, name)``.

    When every fraction is 0 or 1 (one sample per case) this is the exact McNemar test
    on the discordant cases (:func:`mcnemar_one_sided`); with repeats, the sign-flip test
    on the per-case differences (:func:`sign_flip_p`), so a case counts once however many
    samples it has. ``name`` says which (``"mcnemar"`` or ``"sign-flip"``).
    """
    if len(before) != len(after):
        raise ValueError(f"paired values differ in length: {len(before)} and {len(after)}")
    old, new = np.asarray(before, dtype=float), np.asarray(after, dtype=float)
    if np.isin(old, (0.0, 1.0)).all() and np.isin(new, (0.0, 1.0)).all():
        regressed = int(np.count_nonzero(old > new))
        fixed = int(np.count_nonzero(new > old))
        return mcnemar_one_sided(regressed, fixed), mcnemar_one_sided(fixed, regressed), \
            "mcnemar"
    differences = new - old
    return (sign_flip_p(differences, alternative="less", seed=seed),
            sign_flip_p(differences, alternative="greater", seed=seed), "sign-flip")
