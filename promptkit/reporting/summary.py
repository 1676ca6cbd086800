"""The leaderboard of a run: one :class:`Row` per prompt × provider, and the ★ winner.

:func:`summarize` reads a stream of :class:`CaseResult` once (memory grows with the
number of prompt × provider groups, each group's latencies for percentiles and one small
list of sample outcomes per case) into a :class:`Summary`. This module computes; what is
shown of it is :mod:`.views`' job, laid out by :mod:`.console`, :mod:`.html` and
:mod:`.markdown`; output files are :mod:`.outputs`'.

The pass rate is the mean over cases of each case's pass fraction (errors count as
failures), so a case counts once however many repeats it has. Its 95% interval is over
cases too: Wilson's score interval when every case has one sample, else a seeded
bootstrap of the per-case fractions. The ★ mark claims a winner: it goes only to the
leader of its provider when it beats every other variant by the one-sided paired test on
the same cases; otherwise the leader and the variants it does not significantly beat are
marked tied (=). Who leads depends only on what identical runs reproduce (quality, then
cost, then prompt id), never on measured latency, so identical answers get identical marks.

When cases have a category, each row gets a :class:`CategoryRow` per category (pass rate
with the same case-level interval, and score). A provider priced by the hour costs its
busy time in the run, shared among its results (:class:`HourlyCost`), computed from the
stored results and the run's stored config, so a stored run shows the same figure.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..comparing.stats import case_bootstrap_interval, holm, paired_pass_test, wilson_interval
from ..results import OUTAGE_KINDS, CaseResult, spec_order

INPUT_KINDS = frozenset({"render", "scoring"})  # the eval's own input, not the endpoint


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0–100), interpolated linearly (numpy's default method).

    Returns ``None`` for no values; raises ``ValueError`` when ``q`` is out of range.
    """
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be between 0 and 100, got {q}")
    if not values:
        return None
    return float(np.percentile(values, q))


@dataclass
class Row:
    """One prompt × provider of a run.

    ``cases`` counts results (case × repeat); errors count as failures in the pass
    rate. Latency, TTFT and tokens/s come from results that are not errors, a cached
    answer counting with the latency recorded when it was first asked for; tokens and
    cost from every result that has them, cached ones included, so rows stay comparable
    whatever the cache held. ``cost`` is ``None`` when no result had one (no price
    configured); priced by the hour, it is the row's share of its provider's busy time.
    """

    prompt_id: str
    provider_id: str
    cases: int
    passed: int
    errors: int
    pass_rate: float
    ci_low: float
    ci_high: float
    score: float
    metrics: dict[str, float]
    latency_p50: float | None
    latency_p95: float | None
    ttft_p50: float | None
    tokens_per_s: float | None
    input_tokens: int
    output_tokens: int
    cost: float | None
    requests: int
    cached: int
    threshold: float | None
    meets_threshold: bool | None
    best: bool = False
    case_count: int = 0  # distinct cases (``cases`` counts results: case × repeat)
    repeats: int = 1  # the most samples any case has
    flaky_cases: int = 0  # cases whose answered repeats disagree
    tied: bool = False  # among the leaders of its provider, none significantly better
    best_p: float | None = None  # one-sided p that the leader beats the runner-up
    # Each case's pass fraction by case index (NaN: no such case in this row); what the
    # paired test behind ★ pairs rows on. Indexes, not ids: compact at 100,000 cases.
    case_fractions: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False,
                                       compare=False)
    input_errors: int = 0  # results whose prompt or assertions could not be rendered
    first_input_error: str | None = None
    priced_by_hour: bool = False  # its cost is a share of its provider's busy time
    # Per category of its cases, when cases have one (None: the cases without).
    categories: dict[str | None, CategoryRow] = field(default_factory=dict, repr=False)

    @property
    def label(self) -> str:
        return f"{self.prompt_id} × {self.provider_id}"


@dataclass
class CategoryRow:
    """One category of one prompt × provider. ``cases`` counts distinct cases; the pass
    rate and its 95% interval are over them, as a row's are; ``score`` is the mean over
    its results. ``category`` is ``None`` for the cases that have none."""

    category: str | None
    prompt_id: str
    provider_id: str
    cases: int
    pass_rate: float
    ci_low: float
    ci_high: float
    score: float


@dataclass
class HourlyCost:
    """What a provider priced by the hour (``price: {per_hour: USD}``) cost in a run.

    The formula: ``busy_s`` is the length of the union of the intervals ``[started_at,
    started_at + latency_s]`` of its results that sent a request (requests in flight
    together count once), and ``cost = busy_s / 3600 × per_hour``. Each such result's
    share is ``latency_s / Σ latency_s × cost`` (the sum is ``latency_s`` here, over the
    same results); a cached answer, or one with no timing, costs nothing.
    """

    provider_id: str
    per_hour: float
    busy_s: float
    latency_s: float
    requests: int  # results that took busy time (not cached, timed)

    @property
    def cost(self) -> float:
        return self.busy_s / 3600 * self.per_hour

    def share(self, result: CaseResult) -> float:
        """``result``'s part of :attr:`cost`: its latency over the sum of the provider's
        (0 for a cached answer or one with no timing)."""
        if not billed(result) or self.latency_s <= 0:
            return 0.0
        return self.cost * (result.latency_s or 0.0) / self.latency_s


def billed(result: CaseResult) -> bool:
    """Whether a result took its provider's time in this run: a request was sent (not
    answered from the cache) and timed."""
    return not result.cached and result.started_at is not None and result.latency_s is not None


def busy_seconds(intervals: Iterable[tuple[float, float]]) -> float:
    """The length of the union of ``(start, end)`` intervals: overlaps counted once."""
    total, reached = 0.0, -math.inf
    for start, end in sorted(intervals):
        if end > reached:
            total += end - max(start, reached)
            reached = end
    return total


@dataclass
class Summary:
    """The leaderboard: rows in prompt then provider order, as first seen.

    ``best`` is the first row marked ★ (a significant winner of its provider), if any;
    ``winners`` every such row, one per provider at most.
    """

    rows: list[Row]
    best: Row | None
    total_results: int
    total_errors: int
    total_cost: float | None
    alpha: float = 0.05
    winners: list[Row] = field(default_factory=list)
    category_names: list[str | None] = field(default_factory=list)  # in case order
    hourly: dict[str, HourlyCost] = field(default_factory=dict)  # provider id → its cost
    # Provider id → replica URL (no userinfo) → the answers it served, for providers given
    # a list of replicas; known for a run just made (the run store does not keep it).
    replicas: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def categories(self) -> list[CategoryRow]:
        """Per category (in the order of their first case), each row's breakdown in row
        order; empty when no case has a category."""
        return [row.categories[name] for name in self.category_names for row in self.rows
                if name in row.categories]

    def all_thresholds_met(self) -> bool:
        """True unless some row has a threshold it does not reach."""
        return all(row.meets_threshold is not False for row in self.rows)

    def metric_names(self) -> list[str]:
        """Every metric name of any row, in first-seen order."""
        return list(dict.fromkeys(name for row in self.rows for name in row.metrics))


@dataclass
class _RowTotals:
    """Running totals of one prompt × provider while results stream by."""

    cases: int = 0
    passed: int = 0
    errors: int = 0
    # Scores, metric values and costs are kept (8 bytes each) and summed with math.fsum
    # at the end: a running float sum depends on the order results arrive in, and the
    # mean score and the cost rank the rows that the ★ and = marks go to.
    scores: array = field(default_factory=lambda: array("d"))
    metric_values: dict[str, array] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    ttfts: list[float] = field(default_factory=list)
    generated_tokens: int = 0
    generation_s: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    costs: array = field(default_factory=lambda: array("d"))
    requests: int = 0
    cached: int = 0
    input_errors: int = 0
    first_input_error: str | None = None
    # per case index: samples, passes, answered samples, answered passes
    counts: tuple[array, array, array, array] = field(
        default_factory=lambda: (array("I"), array("I"), array("I"), array("I")))
    case_scores: array = field(default_factory=lambda: array("d"))  # per case index: sum
    billed_latencies: array = field(default_factory=lambda: array("d"))  # priced by the hour

    def add(self, r: CaseResult) -> None:
        self.cases += 1
        passed = r.passed and r.error is None
        self.passed += passed
        samples, passes, answered, answered_passes = self.counts
        index = r.case_index
        if index >= len(samples):
            grow = max(index + 1 - len(samples), len(samples))
            for column in self.counts:
                column.extend(array("I", bytes(4 * grow)))
            self.case_scores.extend(array("d", bytes(8 * grow)))
        samples[index] += 1
        self.case_scores[index] += r.score
        passes[index] += passed
        if r.error_kind not in OUTAGE_KINDS:
            answered[index] += 1
            answered_passes[index] += passed
        self.errors += r.error is not None
        if r.error_kind in INPUT_KINDS:
            self.input_errors += 1
            self.first_input_error = self.first_input_error or r.error
        self.scores.append(r.score)
        for name, value in r.metrics.items():
            self.metric_values.setdefault(name, array("d")).append(value)
        self.input_tokens += r.input_tokens or 0
        self.output_tokens += r.output_tokens or 0
        if r.cost is not None:
            self.costs.append(r.cost)
        self.requests += r.requests
        self.cached += r.cached
        if r.error is not None or r.latency_s is None:
            return  # a failed call (or an answer cached before latencies were) says nothing
        # A cache hit carries the latency its answer was measured with when first asked.
        self.latencies.append(r.latency_s)
        if r.ttft_s is not None:
            self.ttfts.append(r.ttft_s)
        generation = r.generation_s
        if generation is None and r.requests <= 1 and r.votes is None:  # one request
            generation = r.latency_s - (r.ttft_s or 0.0)
        if r.output_tokens and generation is not None:
            self.generated_tokens += r.output_tokens
            self.generation_s += generation

    def row(self, prompt_id: str, provider_id: str, threshold: float | None) -> Row:
        samples, passes, answered, answered_passes = (np.frombuffer(column, dtype=np.uint32)
                                                      for column in self.counts)
        fractions = np.where(samples > 0, passes / np.maximum(samples, 1), np.nan)
        cases = fractions[samples > 0]
        repeats = int(samples.max())
        pass_rate, low, high = _case_rate(samples, passes)
        flaky = int(np.count_nonzero((answered_passes > 0) & (answered_passes < answered)))
        return Row(
            prompt_id, provider_id, self.cases, self.passed, self.errors, pass_rate, low, high,
            score=math.fsum(self.scores) / self.cases,
            metrics={name: math.fsum(values) / len(values)
                     for name, values in self.metric_values.items()},
            latency_p50=percentile(self.latencies, 50),
            latency_p95=percentile(self.latencies, 95),
            ttft_p50=percentile(self.ttfts, 50),
            tokens_per_s=(self.generated_tokens / self.generation_s
                          if self.generation_s > 0 else None),
            input_tokens=self.input_tokens, output_tokens=self.output_tokens,
            cost=math.fsum(self.costs) if self.costs else None,
            requests=self.requests, cached=self.cached, threshold=threshold,
            # The tolerance keeps 7/10 from failing a 0.7 threshold on float rounding.
            meets_threshold=None if threshold is None else pass_rate >= threshold - 1e-9,
            case_count=len(cases), repeats=repeats, flaky_cases=flaky,
            case_fractions=fractions, input_errors=self.input_errors,
            first_input_error=self.first_input_error,
        )

    def categories(self, row: Row, codes: np.ndarray, names: Sequence[str | None]
                   ) -> dict[str | None, CategoryRow]:
        """``row``'s breakdown by the category of each case (``codes``: an index into
        ``names`` per case index, -1 for a case not seen)."""
        size = min(len(codes), len(self.counts[0]))
        samples, passes = (np.frombuffer(column, dtype=np.uint32)[:size]
                           for column in self.counts[:2])
        scores = np.frombuffer(self.case_scores, dtype=np.float64)[:size]
        codes = np.where(samples > 0, codes[:size], -1)
        breakdown = {}
        for code in np.unique(codes[codes >= 0]):
            chosen = codes == code
            pass_rate, low, high = _case_rate(samples[chosen], passes[chosen])
            name = names[code]
            breakdown[name] = CategoryRow(
                name, row.prompt_id, row.provider_id, int(chosen.sum()), pass_rate, low, high,
                score=float(scores[chosen].sum() / samples[chosen].sum()))
        return breakdown


def _case_rate(samples: np.ndarray, passes: np.ndarray) -> tuple[float, float, float]:
    """The pass rate over cases (each case's pass fraction, averaged) and its 95%
    interval: Wilson's when every case has one sample, else a bootstrap of the cases."""
    present = samples > 0
    fractions = passes[present] / samples[present]
    if int(samples.max()) == 1:
        low, high = wilson_interval(int(passes[present].sum()), len(fractions))
    else:  # repeats of a case are not independent: resample cases, not results
        low, high = case_bootstrap_interval(fractions)
    return float(fractions.mean()), low, high


def _rank(row: Row) -> tuple[float, float, float, str]:
    """Sort key, smallest best: pass rate, then score, then cost; rows equal on all three go
    by prompt id. Each is the same for the same answers however the run went (rates by
    case index, exact sums; cost is tokens × price), so the leader, and with it the ★ and
    = marks, never depend on the order results came in. Latency is left out on purpose:
    it is measured, not answered, and differs between identical runs, so ranking by it
    let noise pick the leader of a tie and with it which variants are tied. A cost by the
    hour is measured time too, so it is left out the same way (every row of a provider
    has the same kind of price, so they still compare alike).
    """
    cost = math.inf if row.cost is None or row.priced_by_hour else row.cost
    return (-row.pass_rate, -row.score, cost, row.prompt_id)


@dataclass
class _Categories:
    """Each case's category while results stream by: a code per case index."""

    codes: dict[str | None, int] = field(default_factory=dict)
    by_case: array = field(default_factory=lambda: array("i"))
    first_case: list[int] = field(default_factory=list)  # per code

    def add(self, r: CaseResult) -> None:
        code = self.codes.setdefault(r.category, len(self.codes))
        if code == len(self.first_case):
            self.first_case.append(r.case_index)
        self.first_case[code] = min(self.first_case[code], r.case_index)
        if r.case_index >= len(self.by_case):
            grow = max(r.case_index + 1 - len(self.by_case), len(self.by_case))
            self.by_case.extend(array("i", [-1]) * grow)
        self.by_case[r.case_index] = code

    def names(self) -> list[str | None]:
        """In the order of their first case; the cases without a category last."""
        return sorted(self.codes, key=lambda name: (name is None,
                                                    self.first_case[self.codes[name]]))


@dataclass
class _Clock:
    """A provider priced by the hour, while results stream by: its requests' intervals."""

    per_hour: float
    starts: array = field(default_factory=lambda: array("d"))
    ends: array = field(default_factory=lambda: array("d"))
    latencies: array = field(default_factory=lambda: array("d"))

    def add(self, r: CaseResult) -> None:
        start, latency = r.started_at or 0.0, r.latency_s or 0.0
        self.starts.append(start)
        self.ends.append(start + latency)
        self.latencies.append(latency)

    def spent(self, provider_id: str) -> HourlyCost:
        busy = busy_seconds(zip(self.starts, self.ends, strict=True))
        return HourlyCost(provider_id, self.per_hour, busy, math.fsum(self.latencies),
                          len(self.latencies))


def summarize(results: Iterable[CaseResult], threshold: float | None = None, *,
              alpha: float = 0.05, hourly: Mapping[str, float] | None = None) -> Summary:
    """Aggregate results into one :class:`Row` per prompt × provider, in one pass.

    Args:
        results: Any iterable, read once (e.g. ``RunStore.results(run_id)``).
        threshold: The pass rate every row must reach, if any.
        alpha: Level of the paired test behind the ★ mark.
        hourly: Provider id → USD per hour, for providers priced by the hour
            (from the run's stored config): their rows' cost is their share
            of the provider's busy time (see :class:`HourlyCost`).

    Returns:
        The rows in prompt order then provider order, as first seen. Per provider, rows
        are ranked by pass rate, then mean score, then lower cost, then prompt id (never
        latency: the marks depend on the answers alone, not on timing or their order;
        so a cost by the hour, which is measured time, does not rank either);
        the leader gets ★ only when it beats every other row of its provider by the
        one-sided paired test on their common cases (exact McNemar, or sign-flip with
        repeats; Holm across the others) at ``alpha``; otherwise the leader and every
        row it does not significantly beat are tied.
    """
    groups: dict[tuple[str, str], _RowTotals] = {}
    prompt_order: dict[str, int] = {}
    provider_order: dict[str, int] = {}
    categories = _Categories()
    clocks = {provider: _Clock(rate) for provider, rate in (hourly or {}).items()}
    for r in results:
        group = groups.get((r.prompt_id, r.provider_id))
        if group is None:
            group = groups[(r.prompt_id, r.provider_id)] = _RowTotals()
            prompt_order.setdefault(r.prompt_id, len(prompt_order))
            provider_order.setdefault(r.provider_id, len(provider_order))
        group.add(r)
        categories.add(r)
        clock = clocks.get(r.provider_id)
        if clock is not None and billed(r):
            clock.add(r)
            group.billed_latencies.append(r.latency_s or 0.0)
    keys = sorted(groups, key=lambda k: (prompt_order[k[0]], provider_order[k[1]]))
    rows = [groups[k].row(k[0], k[1], threshold) for k in keys]
    spent = {p: clock.spent(p) for p, clock in clocks.items() if p in provider_order}
    names = categories.names() if set(categories.codes) - {None} else []
    codes = np.frombuffer(categories.by_case, dtype=np.int32)
    for key, row in zip(keys, rows, strict=True):
        if row.provider_id in spent:
            _add_hourly(row, groups[key], spent[row.provider_id])
        if names:
            row.categories = groups[key].categories(row, codes, names)
    winners = _mark_leaders(rows, alpha)
    costs = [row.cost for row in rows if row.cost is not None]
    return Summary(rows, winners[0] if winners else None,
                   total_results=sum(row.cases for row in rows),
                   total_errors=sum(row.errors for row in rows),
                   total_cost=sum(costs) if costs else None, alpha=alpha, winners=winners,
                   category_names=names, hourly=spent)


def _add_hourly(row: Row, totals: _RowTotals, spent: HourlyCost) -> None:
    """Add to ``row``'s cost its results' share of their provider's cost by the hour."""
    share = (spent.cost * math.fsum(totals.billed_latencies) / spent.latency_s
             if spent.latency_s > 0 else 0.0)
    row.cost = (row.cost or 0.0) + share
    row.priced_by_hour = True


def leader_p(leader: Row, other: Row) -> float:
    """One-sided p that ``leader`` passes more often than ``other`` on their common cases."""
    size = min(len(leader.case_fractions), len(other.case_fractions))
    ours, theirs = leader.case_fractions[:size], other.case_fractions[:size]
    common = ~np.isnan(ours) & ~np.isnan(theirs)
    if not common.any():
        return 1.0
    _, p_better, _ = paired_pass_test(theirs[common].tolist(), ours[common].tolist())
    return p_better


def _mark_leaders(rows: list[Row], alpha: float) -> list[Row]:
    """Set ``best`` / ``tied`` per provider (see :func:`summarize`); the ★ rows.

    The leader is tested against every other variant of its provider (Holm-adjusted,
    since a paired test is not transitive: beating the runner-up does not mean beating a
    third variant that passes other cases). It wins only if it beats them all.
    """
    winners = []
    for provider in dict.fromkeys(row.provider_id for row in rows):
        ranked = sorted((row for row in rows if row.provider_id == provider), key=_rank)
        if len(ranked) < 2:
            continue  # one variant: nothing to win against
        leader, others = ranked[0], ranked[1:]
        adjusted = holm([leader_p(leader, row) for row in others])
        leader.best_p = max(adjusted)
        if leader.best_p <= alpha:
            leader.best = True
            winners.append(leader)
            continue
        leader.tied = True
        for row, p in zip(others, adjusted, strict=True):
            row.tied = p > alpha
    return winners


def order_rows(summary: Summary, prompt_ids: Sequence[str], provider_ids: Sequence[str]
               ) -> None:
    """Put a summary's rows in the spec's order (see :func:`spec_order`)."""
    summary.rows.sort(key=spec_order(prompt_ids, provider_ids))
