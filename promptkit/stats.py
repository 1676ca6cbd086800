"""Paired statistics for comparing two runs on the same cases.

* :func:`mcnemar_exact` — the exact (binomial) McNemar test on pass/fail flips;
* :func:`paired_bootstrap` — a seeded percentile bootstrap interval on a mean difference
  (:func:`paired_bootstraps` for several metrics of the same cases at once);
* :func:`holm` — Holm's step-down adjustment when several rows are tested at once.

They are plain functions over numbers, checked against scipy in ``tests/test_stats.py``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# Resamples are drawn this many at a time, so memory stays flat for 100,000 cases.
_CHUNK_VALUES = 4_000_000


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
    n = regressed + fixed
    if n == 0:
        return 1.0
    k = min(regressed, fixed)
    # Sum in log space: math.comb(n, i) / 2**n underflows a float beyond n ~ 1,000.
    log_half = n * math.log(0.5)
    tail = sum(math.exp(_log_comb(n, i) + log_half) for i in range(k + 1))
    return min(1.0, 2.0 * tail)


def _log_comb(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


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
    rng = np.random.default_rng(seed)
    n = diffs.shape[1]
    rows = max(1, _CHUNK_VALUES // n)
    resampled = np.empty((int(varies.sum()), resamples))
    for start in range(0, resamples, rows):
        count = min(rows, resamples - start)
        picks = rng.integers(0, n, size=(count, n))
        for column, values in enumerate(diffs[varies]):
            resampled[column, start:start + count] = values[picks].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    for column, index in enumerate(np.flatnonzero(varies)):
        low, high = np.percentile(resampled[column], [tail, 100 - tail])
        intervals[index] = Interval(float(means[index]), float(low), float(high))
    return intervals


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
