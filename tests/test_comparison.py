"""Paired comparison of sides: matching, flips, verdicts, warnings, printing."""

from __future__ import annotations

import io
import random

import pytest
from rich.console import Console

from promptkit.baseline import CaseOutcome, Side, SideRow
from promptkit.comparison import PASS_RATE, compare, flip_lines, print_comparison, verdict_line
from promptkit.stats import mcnemar_exact


def case(case_id: str, passed: bool, score: float | None = None, output: str = "",
         **metrics: float) -> CaseOutcome:
    score = float(passed) if score is None else score
    return CaseOutcome(case_id, passed, float(passed), score, metrics, output or case_id)


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
    assert result.p_value == pytest.approx(mcnemar_exact(8, 1))  # 0.039
    assert result.verdict == "worse" and comparison.regressed
    assert (result.before_passed, result.after_passed, result.cases) == (20, 13, 30)
    lines = flip_lines(comparison)
    assert lines[0] == "pass → FAIL  c00  (a × p)"
    assert lines[1] == "    before: a answer 0" and lines[2] == "    now:    a answer 0"
    assert lines[-3] == "fail → pass  c20  (a × p)"
    pass_rate = next(m for m in result.metrics if m.name == PASS_RATE)
    assert pass_rate.change.mean == pytest.approx(-7 / 30)
    assert pass_rate.change.high < 0
    assert verdict_line(comparison).startswith("verdict: WORSE at alpha 0.05: a × p (8 pass")


def test_noise_is_not_flagged() -> None:
    before = [True] * 15 + [False] * 15
    after = list(before)
    after[0], after[1], after[20] = False, False, True  # 2 regressed, 1 fixed
    comparison = compare(side("base", row("a", before)), side("new", row("a", after)))
    assert comparison.rows[0].verdict == "no significant change"
    assert not comparison.regressed
    assert comparison.rows[0].p_value == 1.0


def test_improvement_is_better_and_does_not_gate() -> None:
    comparison = compare(side("base", row("a", [False] * 10)), side("new", row("a", [True] * 10)))
    assert comparison.rows[0].verdict == "better"
    assert not comparison.regressed
    assert verdict_line(comparison) == "verdict: better (a × p); no significant regression"


def test_holm_adjustment_across_rows() -> None:
    # 6 one-way flips: p = 0.03125 alone, worse at 0.05 for one row; among three rows the
    # Holm-adjusted p is 0.09375, not significant.
    bad = [True] * 6 + [False] * 4
    worse = [False] * 10
    alone = compare(side("b", row("a", bad)), side("n", row("a", worse)))
    assert alone.rows[0].verdict == "worse"
    three = compare(side("b", row("a", bad), row("x", [True] * 10), row("y", [True] * 10)),
                    side("n", row("a", worse), row("x", [True] * 10), row("y", [True] * 10)))
    assert three.rows[0].p_value == pytest.approx(0.03125)
    assert three.rows[0].p_adjusted == pytest.approx(0.09375)
    assert three.rows[0].verdict == "no significant change"
    assert compare(side("b", row("a", bad)), side("n", row("a", worse)),
                   alpha=0.01).rows[0].verdict == "no significant change"


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


def test_print_comparison_shows_table_warnings_flips_and_verdict() -> None:
    before = side("baseline.json", row("a", [True] * 8, model="m1"))
    after = side("run X", row("a", [False] * 8, model="m2"))
    after.rows[0].cases["c00"].output = "[bold]<b>not markup</b>"
    buffer = io.StringIO()
    print_comparison(compare(before, after), Console(file=buffer, width=150), flips=3)
    text = buffer.getvalue()
    assert "run X vs baseline baseline.json" in text
    assert "100.0% → 0.0%" in text and "8/0" in text and "worse" in text
    assert "warning: a × p: model changed (m1 → m2)" in text
    assert "now:    [bold]<b>not markup</b>" in text
    assert "... and 5 more regressed in a × p" in text
    assert text.rstrip().endswith("fail, 0 fail → pass, p=0.00781)")


def test_alpha_must_be_a_probability() -> None:
    with pytest.raises(ValueError, match="alpha"):
        compare(side("b"), side("n"), alpha=0)
    assert verdict_line(compare(side("b"), side("n"))).startswith("verdict: nothing to compare")


def test_cases_the_endpoint_did_not_answer_are_left_out_not_blamed() -> None:
    before = row("a", [True] * 10)
    after = row("a", [True] * 10)
    for cid in ("c00", "c01", "c02", "c03", "c04", "c05"):
        after.cases[cid] = CaseOutcome(cid, False, 0.0, 0.0, error="HTTP 503",
                                       answered=False)
    (result,) = compare(side("b", before), side("n", after)).rows
    assert result.cases == 4 and result.regressed == [] and result.verdict != "worse"
    assert ("6 case(s) the endpoint did not answer (rate limit, server error, timeout, "
            "lost connection) were left out") in result.warnings
    assert result.only_before == result.only_after == 0
