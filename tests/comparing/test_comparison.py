"""Paired comparison of sides: matching, flips, verdicts, warnings (shown by
promptkit.reporting: tests/reporting/test_views.py and test_console.py)."""

from __future__ import annotations

import random

import pytest

from promptkit.comparing.baseline import Side, SideCase, SideRow
from promptkit.comparing.comparison import PASS_RATE, compare, gate_failures
from promptkit.comparing.stats import mcnemar_one_sided


def case(case_id: str, passed: bool | list[bool | None], score: float | None = None,
         output: str = "", **metrics: float) -> SideCase:
    passes = passed if isinstance(passed, list) else [passed]
    answered = [p for p in passes if p is not None]
    if score is None:
        score = sum(answered) / len(answered) if answered else 0.0
    return SideCase(case_id, passes, score, metrics, output or case_id)


def row(prompt: str, outcomes: list[bool], provider: str = "p", *, scores=None,
        model: str = "m", sha: str = "aaa", params=None, template: str = "t@1") -> SideRow:
    scores = scores or [None] * len(outcomes)
    cases = {f"c{i:02d}": case(f"c{i:02d}", ok, s, f"{prompt} answer {i}")
             for i, (ok, s) in enumerate(zip(outcomes, scores, strict=True))}
    return SideRow(prompt, provider, model, template, [sha], params or {}, cases)


def side(label: str, *rows: SideRow) -> Side:
    return Side(label, list(rows))


def test_injected_regression_is_worse_and_lists_flips_pass_to_fail_first() -> None:
    before = [True] * 20 + [False] * 10
    after = [False] * 8 + [True] * 12 + [True] * 1 + [False] * 9  # 8 regressed, 1 fixed
    comparison = compare(side("base", row("a", before)), side("new", row("a", after)))
    (result,) = comparison.rows
    assert (len(result.regressed), len(result.fixed)) == (8, 1)
    assert result.p_worse == pytest.approx(mcnemar_one_sided(8, 1))  # 0.0195, one-sided
    assert result.test == "mcnemar"
    assert result.verdict == "worse" and comparison.regressed
    assert (result.before_rate, result.after_rate, result.cases) == (20 / 30, 13 / 30, 30)
    assert [f.case_id for f in result.regressed] == [f"c{i:02d}" for i in range(8)]
    assert [f.case_id for f in result.fixed] == ["c20"]
    pass_rate = next(m for m in result.metrics if m.name == PASS_RATE)
    assert pass_rate.change.mean == pytest.approx(-7 / 30)
    assert pass_rate.change.high < 0


def test_noise_is_not_flagged() -> None:
    before = [True] * 15 + [False] * 15
    after = list(before)
    after[0], after[1], after[20] = False, False, True  # 2 regressed, 1 fixed
    comparison = compare(side("base", row("a", before)), side("new", row("a", after)))
    assert comparison.rows[0].verdict == "no significant change"
    assert not comparison.regressed
    assert comparison.rows[0].p_worse == pytest.approx(0.5)  # P(X >= 2), X ~ B(3, 1/2)


def test_improvement_is_better_and_does_not_gate() -> None:
    comparison = compare(side("base", row("a", [False] * 10)), side("new", row("a", [True] * 10)))
    assert comparison.rows[0].verdict == "better"
    assert not comparison.regressed


def test_holm_adjustment_across_rows() -> None:
    # 6 one-way flips: p = 0.03125 alone, worse at 0.05 for one row; among three rows the
    # Holm-adjusted p is 0.09375, not significant.
    bad = [True] * 6 + [False] * 4
    worse = [False] * 10
    alone = compare(side("b", row("a", bad)), side("n", row("a", worse)))
    assert alone.rows[0].verdict == "worse"
    three = compare(side("b", row("a", bad), row("x", [True] * 10), row("y", [True] * 10)),
                    side("n", row("a", worse), row("x", [True] * 10), row("y", [True] * 10)))
    assert three.rows[0].p_worse == pytest.approx(0.015625)  # one-sided: 1/2**6
    assert three.rows[0].p_adjusted == pytest.approx(0.046875)
    assert three.rows[0].verdict == "worse"  # 0.0469 <= 0.05
    four = compare(side("b", row("a", bad), *(row(x, [True] * 10) for x in "xyz")),
                   side("n", row("a", worse), *(row(x, [True] * 10) for x in "xyz")))
    assert four.rows[0].p_adjusted == pytest.approx(0.0625)
    assert four.rows[0].verdict == "no significant change"
    assert compare(side("b", row("a", bad)), side("n", row("a", worse)),
                   alpha=0.01).rows[0].verdict == "no significant change"


def test_the_gate_tests_the_direction_it_gates() -> None:
    # 9 pass -> fail and 2 fail -> pass among 30 cases: the one-sided p is 67/2048 = 0.033;
    # a two-sided test (p = 0.065) would miss this drop.
    before = [True] * 9 + [False] * 2 + [True] * 10 + [False] * 9
    after = [False] * 9 + [True] * 2 + [True] * 10 + [False] * 9
    (result,) = compare(side("b", row("a", before)), side("n", row("a", after))).rows
    assert result.p_worse == pytest.approx(67 / 2048)
    assert result.verdict == "worse"


def test_gate_selects_rows_and_leaves_exploratory_ones_out_of_holm() -> None:
    bad = [True] * 6 + [False] * 4
    worse = [False] * 10
    rows_before = [row("a", bad), row("x", bad), row("y", [True] * 10)]
    rows_after = [row("a", worse), row("x", worse), row("y", [True] * 10)]
    everything = compare(side("b", *rows_before), side("n", *rows_after))
    assert [r.verdict for r in everything.rows] == ["worse", "worse", "no significant change"]
    gated = compare(side("b", *rows_before), side("n", *rows_after), gate={"prompts": ["a"]})
    a, x, y = gated.rows
    assert (a.gated, x.gated, y.gated) == (True, False, False)
    assert a.p_adjusted == pytest.approx(a.p_worse)  # alone in the Holm family
    assert [r.label for r in gated.worse] == ["a × p"]  # x is worse but does not gate
    assert "not gated (gate: in the spec): x × p, y × p" in gated.warnings
    exploratory = compare(side("b", *rows_before), side("n", *rows_after),
                          gate={"prompts": ["y"]})
    assert not exploratory.regressed


def test_max_drop_is_a_plain_guard_on_gated_rows() -> None:
    before = [True] * 4
    after = [True] * 3 + [False]  # 25 points down: far too few cases to test
    comparison = compare(side("b", row("a", before)), side("n", row("a", after)),
                         max_drop=10)
    (result,) = comparison.rows
    assert result.verdict == "no significant change" and result.drop == pytest.approx(25)
    assert result.max_drop_exceeded and comparison.dropped == [result]
    assert not compare(side("b", row("a", before)), side("n", row("a", after)),
                       max_drop=30).dropped
    assert not compare(side("b", row("a", before)), side("n", row("a", after)), max_drop=10,
                       gate={"prompts": ["other"]}).dropped


def test_min_detectable_drop_depends_on_cases_and_gated_rows() -> None:
    one = compare(side("b", row("a", [True] * 200)), side("n", row("a", [True] * 200)))
    assert one.rows[0].min_detectable_drop == pytest.approx(3.34, abs=0.01)
    tiny = compare(side("b", row("a", [True] * 4)), side("n", row("a", [True] * 4)))
    assert tiny.rows[0].min_detectable_drop is None  # 4 flips can never reach p <= 0.05
    two = compare(side("b", row("a", [True] * 200), row("x", [True] * 200)),
                  side("n", row("a", [True] * 200), row("x", [True] * 200)))
    assert two.rows[0].min_detectable_drop > one.rows[0].min_detectable_drop  # alpha / 2


def test_repeats_are_tested_on_per_case_pass_fractions() -> None:
    # Each case 2 samples; the candidate loses one sample on 12 cases. A majority fold
    # would call 1/2 a fail and report 12 flips pass -> fail with nothing flaky.
    before = SideRow("a", "p", cases={f"c{i}": case(f"c{i}", [True, True]) for i in range(20)})
    after = SideRow("a", "p", cases={
        f"c{i}": case(f"c{i}", [True, False] if i < 12 else [True, True]) for i in range(20)})
    (result,) = compare(side("b", before), side("n", after)).rows
    assert result.test == "sign-flip"
    assert result.before_rate == 1.0 and result.after_rate == pytest.approx(0.7)
    assert result.p_worse == pytest.approx(1 / 2**12)
    assert result.verdict == "worse" and len(result.regressed) == 12
    assert all(flip.flaky for flip in result.regressed)
    assert (result.regressed[0].before.pass_rate, result.regressed[0].after.pass_rate) == (1, 0.5)


def test_outage_samples_are_left_out_of_a_case_not_counted_as_failures() -> None:
    before = SideRow("a", "p", cases={f"c{i}": case(f"c{i}", [True, True]) for i in range(8)})
    after = SideRow("a", "p", cases={f"c{i}": case(f"c{i}", [True, None]) for i in range(8)})
    (result,) = compare(side("b", before), side("n", after)).rows
    assert result.after_rate == 1.0 and result.regressed == []
    assert "8 case(s) lost some samples to an outage; their answered samples were " \
        "compared" in result.warnings


def test_rows_match_by_prompt_and_provider_and_report_the_rest() -> None:
    before = side("base", row("a", [True] * 3, "p1"), row("b", [True] * 3, "p1"),
                  row("a", [True] * 3, "p2"))
    after = side("new", row("a", [True] * 3, "p1"), row("c", [True] * 3, "p1"))
    comparison = compare(before, after)
    assert [r.label for r in comparison.rows] == ["a × p1"]
    assert comparison.only_before == ["b × p1", "a × p2"]
    assert comparison.only_after == ["c × p1"]


def test_one_provider_each_side_under_different_ids_is_matched_with_a_note() -> None:
    comparison = compare(side("base", row("a", [True] * 3, "local", model="gemma")),
                         side("new", row("a", [True] * 3, "gpt", model="gpt-4o")))
    assert [r.label for r in comparison.rows] == ["a × gpt"]
    assert comparison.rows[0].before_provider_id == "local"
    assert comparison.warnings == ["provider 'gpt' compared with the baseline's provider "
                                   "'local'"]
    assert "model changed (gemma → gpt-4o)" in comparison.rows[0].warnings


def test_settings_changes_are_named() -> None:
    before = row("a", [True] * 3, sha="1" * 64, params={"temperature": 0, "max_tokens": 50})
    after = row("a", [True] * 3, sha="2" * 64, params={"temperature": 0.7}, template="t@2")
    (result,) = compare(side("b", before), side("n", after)).rows
    assert result.warnings == [
        "template changed (t@1 → t@2; sha256 111111111111 → 222222222222)",
        "params changed (max_tokens 50 → '—'; temperature 0 → 0.7)",
    ]
    same = compare(side("b", row("a", [True])), side("n", row("a", [True]))).rows[0]
    assert same.warnings == []


def test_cases_are_paired_by_id_and_unpaired_ones_left_out() -> None:
    before = row("a", [True, True, True, False])
    after = row("a", [True, True])
    after.cases["new"] = case("new", False)
    (result,) = compare(side("b", before), side("n", after)).rows
    assert result.cases == 2 and result.only_before == 2 and result.only_after == 1
    assert "2 case(s) only in the baseline and 1 only now were left out" in result.warnings
    disjoint = SideRow("a", "p", cases={"zzz": case("zzz", True)})
    (empty,) = compare(side("b", before), side("n", disjoint)).rows
    assert empty.cases == 0 and empty.metrics == []
    assert "no cases in common: nothing to compare" in empty.warnings


def test_metric_intervals_pair_cases_and_are_seeded() -> None:
    rng = random.Random(3)
    scores = [rng.random() for _ in range(40)]
    before = row("a", [True] * 40, scores=scores)
    after = row("a", [True] * 40, scores=[s - 0.2 for s in scores])
    for c in before.cases.values():
        c.metrics = {"rouge-l": c.score}
    for c in after.cases.values():
        c.metrics = {"rouge-l": c.score}
    first = compare(side("b", before), side("n", after), seed=4).rows[0]
    again = compare(side("b", before), side("n", after), seed=4).rows[0]
    assert first.metrics == again.metrics
    names = [m.name for m in first.metrics]
    assert names == [PASS_RATE, "score", "rouge-l"]
    rouge = first.metrics[2]
    assert rouge.change.mean == pytest.approx(-0.2)
    assert rouge.change.low == pytest.approx(-0.2) == pytest.approx(rouge.change.high)
    assert first.verdict == "no significant change"  # metrics are shown, not gated


def test_alpha_must_be_a_probability() -> None:
    with pytest.raises(ValueError, match="alpha"):
        compare(side("b"), side("n"), alpha=0)
    assert compare(side("b"), side("n")).rows == []


def test_cases_the_endpoint_did_not_answer_are_left_out_not_blamed() -> None:
    before = row("a", [True] * 10)
    after = row("a", [True] * 10)
    for cid in ("c00", "c01", "c02", "c03", "c04", "c05"):
        after.cases[cid] = SideCase(cid, [None], 0.0, error="HTTP 503")
    (result,) = compare(side("b", before), side("n", after)).rows
    assert result.cases == 4 and result.regressed == [] and result.verdict != "worse"
    assert ("6 case(s) the endpoint or a grader did not answer (rate limit, server error, "
            "timeout, lost connection) were left out") in result.warnings
    assert result.only_before == result.only_after == 0


def test_a_gate_cannot_vouch_for_cases_it_did_not_compare() -> None:
    before = row("a", [True] * 30)
    renamed = SideRow("a", "p", cases={f"new-{i}": case(f"new-{i}", False) for i in range(30)})
    nothing = compare(side("b", before), side("n", renamed))
    assert nothing.rows[0].cases == 0
    assert nothing.uncompared() == ["only 0 of 30 baseline cases of a × p could be compared "
                                    "(0 lost to outages, 30 not in this run: did case ids "
                                    "change?)"]
    outages = row("a", [False] * 30)
    for cid in list(outages.cases)[1:]:
        outages.cases[cid] = SideCase(cid, [None], 0.0, error="HTTP 500")
    lost = compare(side("b", before), side("n", outages))
    assert lost.rows[0].cases == 1 and "29 lost to outages" in lost.uncompared()[0]
    assert compare(side("b", before), side("n", row("x", [True]))).uncompared() == [
        "no prompt × provider of the baseline is in this run"]
    assert compare(side("b", before), side("n", row("a", [True] * 30))).uncompared() == []


def test_a_gate_cannot_vouch_for_a_row_too_small_to_detect_any_drop() -> None:
    """Four paired cases can never make a drop significant: a --fail-on-regression gate
    on them would pass whatever happened, so it fails instead; --max-drop guards them."""
    tiny = compare(side("b", row("a", [True] * 4)), side("n", row("a", [True] * 4)))
    assert [r.label for r in tiny.blind] == ["a × p"] and tiny.uncompared() == []
    reason = ("too few paired cases to detect a drop: with 4 cases of a × p no drop can be "
              "significant at one-sided alpha 0.05 (add cases, or gate with --max-drop)")
    assert tiny.cannot_vouch() == [reason]
    assert gate_failures(tiny, fail_on_regression=True, max_drop=None) == [
        f"comparison: {reason}; the gate cannot vouch for it"]
    assert gate_failures(tiny, fail_on_regression=False, max_drop=None) == []  # no gate
    guarded = compare(side("b", row("a", [True] * 4)), side("n", row("a", [True] * 4)),
                      max_drop=10)
    assert guarded.blind and guarded.cannot_vouch() == []
    assert gate_failures(guarded, fail_on_regression=True, max_drop=10) == []
    # with three gated rows each is tested at alpha/3: 5 cases are no longer enough
    five = [row(name, [True] * 5) for name in "abc"]
    three = compare(side("b", *five), side("n", *five))
    assert len(three.blind) == 3 and three.level == "one-sided alpha 0.05/3"
    assert compare(side("b", row("a", [True] * 5)), side("n", row("a", [True] * 5))).blind == []
    # a row lost to outages is not compared at all: said once, as such
    lost = row("a", [True] * 30)
    for cid in list(lost.cases)[3:]:
        lost.cases[cid] = SideCase(cid, [None], 0.0, error="HTTP 500")
    outages = compare(side("b", row("a", [True] * 30)), side("n", lost))
    assert outages.blind == [] and len(outages.cannot_vouch()) == 1
    assert "27 lost to outages" in outages.cannot_vouch()[0]


def test_each_category_gets_its_change_with_its_flips() -> None:
    categories = ["天气", "math", None, "天气", "math", "天气"]
    before = row("a", [True, False, True, True, False, True])
    after = row("a", [False, True, True, False, False, True])
    for cases in (before.cases, after.cases):
        for case_obj, category in zip(cases.values(), categories, strict=True):
            case_obj.category = category
    (compared,) = compare(side("base", before), side("new", after)).rows
    changes = {change.category: change for change in compared.categories}
    assert list(changes) == ["天气", "math", None]  # in case order, no category last
    weather = changes["天气"]
    assert (weather.cases, weather.before_rate, weather.after_rate) == (3, 1.0, 1 / 3)
    assert (weather.regressed, weather.fixed) == (2, 0)
    assert weather.change.mean == pytest.approx(-2 / 3)
    assert (changes["math"].regressed, changes["math"].fixed) == (0, 1)
    # the same cases without categories: nothing per category
    (plain,) = compare(side("base", row("a", [True, False])),
                       side("new", row("a", [False, False]))).rows
    assert plain.categories == []
