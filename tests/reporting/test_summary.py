"""Tests for promptkit.reporting.summary: the leaderboard's rows, intervals and ★."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

import promptkit
from helpers import handcrafted, result
from promptkit.comparing.stats import case_bootstrap_interval, wilson_interval
from promptkit.reporting.summary import Summary, percentile, summarize
from promptkit.reporting.views import leader_lines
from promptkit.results import CaseResult
from promptkit.testing import FakeEndpoint, Reply


@pytest.mark.parametrize(
    ("passed", "n", "low", "high"),
    [  # reference: statsmodels proportion_confint(method="wilson")
        (0, 10, 0.0, 0.2775),
        (10, 10, 0.7225, 1.0),
        (8, 10, 0.4902, 0.9433),
        (50, 100, 0.4038, 0.5962),
        (1, 1, 0.2065, 1.0),
    ],
)
def test_wilson_interval_matches_reference(passed: int, n: int, low: float, high: float) -> None:
    assert wilson_interval(passed, n) == pytest.approx((low, high), abs=1e-4)


def test_leaderboard_interval_is_wilson_over_cases_with_the_exact_quantile() -> None:
    from statsmodels.stats.proportion import proportion_confint

    (row,) = summarize([result("p", "m", i, passed=i < 17) for i in range(20)]).rows
    assert (row.ci_low, row.ci_high) == pytest.approx(
        proportion_confint(17, 20, alpha=0.05, method="wilson"), abs=1e-12)


def test_repeats_count_each_case_once_in_the_rate_and_its_interval() -> None:
    # 6 cases x 4 repeats; cases 0-2 always pass, 3 passes half the time, 4-5 never.
    results = [result("p", "m", case, repeat=rep, passed=case < 3 or (case == 3 and rep < 2))
               for case in range(6) for rep in range(4)]
    (row,) = summarize(results).rows
    fractions = [1, 1, 1, 0.5, 0, 0]
    assert row.pass_rate == pytest.approx(sum(fractions) / 6)
    assert (row.case_count, row.repeats, row.flaky_cases) == (6, 4, 1)
    # the interval resamples the 6 cases, not 24 "independent" results
    assert (row.ci_low, row.ci_high) == case_bootstrap_interval(fractions)
    assert (row.ci_low, row.ci_high) != pytest.approx(wilson_interval(14, 24))


def test_wilson_interval_of_nothing_is_everything() -> None:
    assert wilson_interval(0, 0) == (0.0, 1.0)


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [  # numpy.percentile(values, q) with the default method="linear"
        ([1, 2, 3, 4], 50, 2.5),
        ([1, 2, 3, 4], 95, 3.85),
        ([1, 2, 3, 4], 0, 1.0),
        ([1, 2, 3, 4], 100, 4.0),
        ([10, 1, 5], 25, 3.0),
        (list(range(1, 11)), 90, 9.1),
        ([7.5], 95, 7.5),
    ],
)
def test_percentile_is_numpy_linear(values: list[float], q: float, expected: float) -> None:
    assert percentile(values, q) == pytest.approx(expected)


def test_percentile_equals_the_interpolation_it_replaced() -> None:
    def by_hand(values: list[float], q: float) -> float:  # the former implementation
        ordered = sorted(values)
        position = (len(ordered) - 1) * q / 100
        below = math.floor(position)
        above = min(below + 1, len(ordered) - 1)
        return ordered[below] + (ordered[above] - ordered[below]) * (position - below)

    rng = random.Random(7)
    for _ in range(200):
        values = [rng.lognormvariate(0, 1) for _ in range(rng.randint(1, 50))]
        q = rng.choice([0, 50, 95, 99, 100, rng.uniform(0, 100)])
        assert percentile(values, q) == pytest.approx(by_hand(values, q), rel=1e-12)


def test_percentile_edges() -> None:
    assert percentile([], 50) is None
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_summarize_handcrafted_exact_numbers() -> None:
    summary = summarize(handcrafted(), threshold=0.75)
    assert [(r.prompt_id, r.provider_id) for r in summary.rows] == [
        ("p1", "b"), ("p1", "a"), ("p2", "b"), ("p2", "a")]
    p1b, p1a, p2b, p2a = summary.rows

    assert (p1a.cases, p1a.passed, p1a.errors) == (4, 2, 1)
    assert p1a.pass_rate == 0.5
    assert (p1a.ci_low, p1a.ci_high) == wilson_interval(2, 4)
    assert p1a.score == pytest.approx(2.5 / 4)
    assert p1a.metrics == pytest.approx({"rouge": 0.6, "judge": 1.0})
    # Only the two fresh, successful calls count for speed: not the error, not the cache hit.
    assert p1a.latency_p50 == pytest.approx(1.5)
    assert p1a.latency_p95 == pytest.approx(1.95)
    assert p1a.ttft_p50 == pytest.approx(0.35)
    assert p1a.tokens_per_s == pytest.approx(50 / 2.3)  # (20 + 30) / ((1 - .2) + (2 - .5))
    assert (p1a.input_tokens, p1a.output_tokens) == (30, 70)
    assert p1a.cost == pytest.approx(0.004)
    assert (p1a.requests, p1a.cached) == (3, 1)
    assert p1a.meets_threshold is False

    assert p1b.pass_rate == 1.0 and p1b.metrics == {}
    assert p1b.ttft_p50 is None
    assert p1b.tokens_per_s == pytest.approx(20 / 1.2)  # no TTFT: all latency generates
    assert p1b.cost is None  # no price, not $0
    assert p1b.meets_threshold is True and not p1b.best  # 2 cases win nothing
    assert p1b.tied and p2b.tied and p1b.best_p == pytest.approx(0.5)

    assert (p2b.cases, p2b.passed, p2b.errors, p2b.pass_rate) == (2, 1, 1, 0.5)
    assert p2b.latency_p50 == p2b.latency_p95 == 1.0
    assert p2b.tokens_per_s is None and p2b.input_tokens == 0
    assert p2a.cost == 0.0 and p2a.pass_rate == 0.0

    assert summary.best is None and summary.winners == []
    assert [r.best for r in summary.rows] == [False, False, False, False]
    assert (summary.total_results, summary.total_errors) == (9, 2)
    assert summary.total_cost == pytest.approx(0.004)
    assert summary.all_thresholds_met() is False


def test_cost_none_only_when_no_result_has_one() -> None:
    free = summarize([result("p", "local", 0, cost=0.0), result("p", "local", 1)])
    assert free.rows[0].cost == 0.0 and free.total_cost == 0.0
    unpriced = summarize([result("p", "local", 0), result("p", "local", 1)])
    assert unpriced.rows[0].cost is None and unpriced.total_cost is None


def test_thresholds() -> None:
    seven_of_ten = [result("p", "m", i, passed=i < 7) for i in range(10)]
    assert summarize(seven_of_ten, 0.7).rows[0].meets_threshold is True  # no float slip
    assert summarize(seven_of_ten, 0.71).all_thresholds_met() is False
    no_threshold = summarize(seven_of_ten)
    assert no_threshold.rows[0].threshold is None
    assert no_threshold.rows[0].meets_threshold is None
    assert no_threshold.all_thresholds_met() is True
    assert summarize([], 0.9) == Summary([], None, 0, 0, None)


def _pair(prompt: str, passed: bool, score: float, **fields) -> CaseResult:
    return result(prompt, "m", 0, passed=passed, score=score, **fields)


@pytest.mark.parametrize(
    ("results", "leader"),
    [
        ([_pair("x", False, 0.9), _pair("y", True, 0.1)], "y"),  # pass rate first
        ([_pair("x", True, 0.8), _pair("y", True, 0.9)], "y"),  # then mean score
        ([_pair("x", True, 1, cost=0.02), _pair("y", True, 1, cost=0.01)], "y"),  # then cost
        ([_pair("x", True, 1), _pair("y", True, 1, cost=0.5)], "y"),  # known cost beats none
        ([_pair("x", True, 1, cost=0.1, latency_s=2.0),
          _pair("y", True, 1, cost=0.1, latency_s=1.0)], "x"),  # never latency: prompt id
        ([_pair("y", True, 1), _pair("x", True, 1)], "x"),  # a full tie: the first prompt id
    ],
)
def test_leader_ranking_and_one_case_wins_nothing(results: list[CaseResult],
                                                  leader: str) -> None:
    summary = summarize(results)
    assert [r.prompt_id for r in summary.rows if r.best_p is not None] == [leader]
    assert summary.best is None and all(r.tied for r in summary.rows)


def test_the_star_goes_only_to_a_significant_winner_per_provider() -> None:
    # On provider m, "few" passes 12 cases "zero" fails (one-sided p = 1/4096): a winner.
    # On provider n, the same scores on both rows: ★ must not pick one of them.
    results = [result("zero", "m", i, passed=i >= 12) for i in range(20)]
    results += [result("few", "m", i, passed=True) for i in range(20)]
    results += [result(p, "n", i, passed=i % 2 == 0, score=0.5) for p in ("zero", "few")
                for i in range(20)]
    summary = summarize(results)
    rows = {(r.prompt_id, r.provider_id): r for r in summary.rows}
    assert rows["few", "m"].best and rows["few", "m"].best_p == pytest.approx(1 / 4096)
    assert not rows["zero", "m"].best and not rows["zero", "m"].tied
    assert not rows["zero", "n"].best and not rows["few", "n"].best
    assert rows["zero", "n"].tied and rows["few", "n"].tied
    assert summary.winners == [rows["few", "m"]] and summary.best is rows["few", "m"]


def test_summarize_streams_100k_results() -> None:
    def synthetic() -> Iterator[CaseResult]:
        for i in range(100_000):
            yield CaseResult(f"p{i % 2}", f"m{i % 3}", f"c{i}", i, passed=i % 5 != 0,
                             score=0.5, metrics={"m": 1.0}, latency_s=0.1 + i % 7 / 10,
                             ttft_s=0.05, output_tokens=20, cost=1e-5)

    summary = summarize(synthetic(), threshold=0.7)
    assert summary.total_results == 100_000
    assert len(summary.rows) == 6
    assert sum(row.passed for row in summary.rows) == 80_000
    assert summary.total_cost == pytest.approx(1.0)
    assert summary.all_thresholds_met()


def test_tokens_per_second_of_parallel_samples_uses_their_summed_generation_time() -> None:
    sampled = CaseResult("sc", "m", "c1", 0, passed=True, latency_s=1.0, ttft_s=0.2,
                         output_tokens=100, requests=5, generation_s=4.0)
    legacy = CaseResult("sc", "m", "c2", 1, passed=True, latency_s=1.0, ttft_s=0.2,
                        output_tokens=100, requests=5)  # stored before generation_s
    (row,) = summarize([sampled, legacy]).rows
    assert row.tokens_per_s == pytest.approx(25.0)  # 100 tokens / 4 s, not 100 / 0.8 s
    assert row.latency_p50 == pytest.approx(1.0)  # a case's latency stays its wall time


def test_the_star_needs_a_win_over_every_other_variant() -> None:
    # 40 cases: A passes c0-19, B c0-14 (A beats B, p = 1/32), C passes c20-33: A is not
    # significantly better than C (the paired test is not transitive).
    results = [result("A", "m", i, passed=i < 20) for i in range(40)]
    results += [result("B", "m", i, passed=i < 15) for i in range(40)]
    results += [result("C", "m", i, passed=20 <= i < 34) for i in range(40)]
    summary = summarize(results)
    a, _, c = summary.rows
    assert not a.best and a.tied and c.tied
    assert a.best_p == pytest.approx(0.19576, abs=1e-5)  # vs C, Holm across B and C
    assert summary.winners == []


def _marks(summary: Summary) -> dict[tuple[str, str], tuple[bool, bool, float | None]]:
    return {(r.prompt_id, r.provider_id): (r.best, r.tied, r.best_p) for r in summary.rows}


def _leader_depends_on_a_tie() -> list[CaseResult]:
    """A and B pass 17 of 40 cases each with the same score (a full tie on every ranking
    key); C passes 10 cases, all of them among A's. A beats C (p = 1/128, 1/64 after
    Holm) but B does not (p ≈ 0.12): whether C is tied depends on who leads."""
    passes = {"A": range(0, 17), "B": range(17, 34), "C": range(0, 10)}
    return [result(prompt, "m", i, passed=i in cases, score=float(i in cases))
            for prompt, cases in passes.items() for i in range(40)]


def _scores_summed_in_another_order() -> list[CaseResult]:
    """X and Y pass the same number of cases with the same scores, in another order: their
    mean scores are equal, though float sums in arrival order differ in the last bit."""
    scores = [0.1, 0.2, 0.3, 0.7, 0.6, 0.9, 0.35, 0.05] * 3
    return [*(result("Y", "m", i, passed=i < 12, score=s) for i, s in enumerate(scores)),
            *(result("X", "m", i, passed=i >= 12, score=s)
              for i, s in enumerate(reversed(scores))),
            *(result("Z", "m", i, passed=i < 2, score=0.0) for i in range(24))]


def _repeats_by_sign_flip() -> list[CaseResult]:
    """Three repeats of 30 cases: "good" and "poor" differ on more than 20, so the paired
    test behind their marks samples sign patterns (with a fixed seed) instead of
    enumerating them."""
    rng = random.Random(3)
    return [result(prompt, "m", i, repeat=rep, passed=rng.random() < rate)
            for prompt, rate in (("good", 0.8), ("fair", 0.6), ("poor", 0.4))
            for i in range(30) for rep in range(3)]


@pytest.mark.parametrize("make", [_leader_depends_on_a_tie, _scores_summed_in_another_order,
                                  _repeats_by_sign_flip])
def test_marks_depend_on_the_results_not_on_when_or_in_which_order(make) -> None:
    results = make()
    marks = _marks(summarize(results))
    assert _marks(summarize(make())) == marks  # the same results again
    assert _marks(summarize(list(reversed(results)))) == marks
    rng = random.Random(11)
    for _ in range(5):
        shuffled = list(results)
        rng.shuffle(shuffled)
        assert _marks(summarize(shuffled)) == marks


def test_a_full_tie_goes_to_the_first_prompt_id_whatever_the_order() -> None:
    results = _leader_depends_on_a_tie()
    for order in (results, list(reversed(results))):
        rows = {r.prompt_id: r for r in summarize(order).rows}
        assert rows["A"].best_p is not None and rows["B"].best_p is None  # A leads
        assert rows["A"].tied and rows["B"].tied and not rows["C"].tied
        assert not any(row.best for row in rows.values())
    assert summarize(_scores_summed_in_another_order()).rows[0].score == \
        summarize(_scores_summed_in_another_order()).rows[1].score


def _testers_case(latencies: random.Random) -> list[CaseResult]:
    """26 cases: A passes 1–20, B 7–26, C 1–12 (A and B tie on pass rate and score), each
    answer with a latency drawn from ``latencies``. A beats C (8 one-way flips, p = 1/256)
    but B does not (14 to 6, p ≈ 0.058): C is tied or not depending on who leads."""
    passes = {"A": range(1, 21), "B": range(7, 27), "C": range(1, 13)}
    return [result(prompt, "m", n, passed=n in cases, score=float(n in cases),
                   latency_s=latencies.uniform(0.05, 2.0), input_tokens=9, output_tokens=1,
                   cost=1e-5)
            for prompt, cases in passes.items() for n in range(1, 27)]


def test_latency_never_picks_the_leader_so_identical_answers_get_identical_marks() -> None:
    rng = random.Random(5)
    first = summarize(_testers_case(rng))
    marks, leaders = _marks(first), leader_lines(first)
    rows = {r.prompt_id: r for r in first.rows}
    assert rows["A"].best_p == pytest.approx(0.6128, abs=1e-4)  # the leader, by prompt id
    assert rows["A"].tied and rows["B"].tied and not rows["C"].tied
    assert leaders == ["= tied on m: A, B — the leader A (76.9%) does not significantly beat "
                       "them (p=0.613 > 0.05); compare two with `promptkit ab`"]
    seen_latency_leaders = set()
    for _ in range(20):  # the same answers, other latencies: p50s rank A and B both ways
        again = summarize(_testers_case(rng))
        by_id = {r.prompt_id: r for r in again.rows}
        seen_latency_leaders.add(min("AB", key=lambda p: by_id[p].latency_p50))
        assert _marks(again) == marks and leader_lines(again) == leaders
    assert seen_latency_leaders == {"A", "B"}


TIE_TEMPLATE = "{{ variant }}: case {{ n }}\n"
TIE_SPEC = """\
templates: templates
prompts:
  - {id: A, template: tie@1, vars: {variant: A}}
  - {id: B, template: tie@1, vars: {variant: B}}
  - {id: C, template: tie@1, vars: {variant: C}}
providers:
  - id: fake
    base_url: BASE_URL
    model: m
    retries: 0
    concurrency: 8
    price: {input_per_mtok: 1.0, output_per_mtok: 2.0}
dataset: data.jsonl
assert:
  - type: contains
    value: "yes"
"""


def test_real_runs_with_random_latencies_give_the_same_marks_and_leader(
        tmp_path: Path, endpoint: FakeEndpoint) -> None:
    # The tester's case against the test endpoint: the same answers on every run, each
    # after a small random latency, and on alternate runs A or B much the slower of the two.
    (tmp_path / "templates" / "tie").mkdir(parents=True)
    (tmp_path / "templates" / "tie" / "v1.jinja").write_text(TIE_TEMPLATE)
    (tmp_path / "data.jsonl").write_text("".join(f'{{"id": "c{n}", "n": {n}}}\n'
                                                 for n in range(1, 27)))
    spec = tmp_path / "eval.yaml"
    spec.write_text(TIE_SPEC.replace("BASE_URL", endpoint.base_url))
    passes = {"A": range(1, 21), "B": range(7, 27), "C": range(1, 13)}
    rng = random.Random(7)
    outcomes = []
    for run in range(4):
        slow = "AB"[run % 2]

        def respond(request, slow=slow):
            variant, case = request.prompt_text.split(": case ")
            delay = rng.uniform(0, 0.01) + (0.03 if variant == slow else 0)
            return Reply.text("yes" if int(case) in passes[variant] else "no", latency=delay)

        endpoint.respond_with(respond)
        summary = promptkit.evaluate(spec, use_cache=False).summary
        rows = {r.prompt_id: r for r in summary.rows}
        assert rows[slow].latency_p50 > rows["AB".replace(slow, "")].latency_p50
        outcomes.append((_marks(summary), leader_lines(summary)))
    assert all(outcome == outcomes[0] for outcome in outcomes)
    marks, leaders = outcomes[0]
    assert [marks[p, "fake"][:2] for p in "ABC"] == [(False, True), (False, True),
                                                    (False, False)]
    assert leaders[0].startswith("= tied on fake: A, B — the leader A (76.9%)")
