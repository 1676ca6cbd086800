"""score(): handlers looked up by type, negation, weights, metrics, and failures recorded."""

from __future__ import annotations

import asyncio

import pytest

from promptkit.errors import GraderOutage, TemplateRenderError
from promptkit.scoring.assertion import Assertion
from promptkit.scoring.context import Output, ScoringContext
from promptkit.scoring.engine import score
from promptkit.scoring.registry import register_assertion
from promptkit.scoring.verdicts import GradingResult

ZH_REFERENCE = "今天北京天气晴朗"
ZH_OUTPUT = "北京今天天气很好"


async def test_weighted_score_metrics_and_case_pass(make_ctx):
    assertions = [
        Assertion(type="contains", value="北京", weight=2),  # pass, 1.0
        Assertion(type="rouge-l", expected=ZH_REFERENCE, metric="quality"),  # 0.5, passes
        Assertion(type="rouge-n", expected=ZH_REFERENCE, metric="quality", weight=3),  # 0.75
        Assertion(type="max-words", value=3, weight=0),  # 8 words: fails, weight 0
    ]
    case = await score(Output(text=ZH_OUTPUT), assertions, make_ctx())
    assert [r.passed for r in case.results] == [True, True, True, False]
    assert case.passed  # a weight-0 assertion is informational: reported, never failing
    # (2 * 1 + 1 * 0.5 + 3 * 0.75 + 0 * 0) / (2 + 1 + 3 + 0) = 4.75 / 6
    assert case.score == pytest.approx(4.75 / 6)
    # quality = (1 * 0.5 + 3 * 0.75) / 4 = 0.6875
    assert case.metrics == {
        "contains": 1.0,
        "quality": pytest.approx(0.6875),
        "max-words": 0.0,
    }


@pytest.mark.usefixtures("restore_registry")
async def test_weight_zero_is_informational_even_when_it_errors(make_ctx):
    @register_assertion("always-raises")
    def always_raises(assertion, output, ctx):
        raise RuntimeError("no verdict")

    assertions = [Assertion(type="contains", value="a", weight=0, metric="info"),
                  Assertion(type="always-raises", weight=0),
                  Assertion(type="contains", value="b")]
    case = await score(Output(text="b"), assertions, make_ctx())
    assert [r.passed for r in case.results] == [False, False, True]
    assert case.results[1].error == "RuntimeError: no verdict"
    assert case.passed and case.score == 1.0  # weight 0 neither fails it nor scores
    assert case.metrics == {"info": 0.0, "contains": 1.0}  # but its metric is reported
    failing = await score(Output(text="a"), assertions, make_ctx())
    assert not failing.passed  # a weighted assertion still decides
    assert failing.metrics == {"info": 1.0, "contains": 0.0}


async def test_all_passing_case(make_ctx):
    assertions = [Assertion(type="icontains", value="HELLO"), Assertion(type="is-json")]
    case = await score(Output(text='"hello"'), assertions, make_ctx())
    assert (case.passed, case.score) == (True, 1.0)


async def test_errored_assertion_fails_the_case_and_is_left_out_of_metrics(make_ctx):
    assertions = [
        Assertion(type="contains", value="x"),
        Assertion(type="latency", value=100),  # no latency measured -> error
    ]
    case = await score(Output(text="x"), assertions, make_ctx())
    assert not case.passed
    assert case.score == 0.5  # the error counts as 0
    assert case.metrics == {"contains": 1.0}


async def test_no_assertions_and_all_zero_weights(make_ctx):
    case = await score(Output(text="x"), [], make_ctx())
    assert (case.passed, case.score, case.results, case.metrics) == (True, 1.0, [], {})
    assertions = [
        Assertion(type="contains", value="x", weight=0),
        Assertion(type="equals", value="y", weight=0),
    ]
    case = await score(Output(text="x"), assertions, make_ctx())
    assert (case.passed, case.score) == (True, 1.0)  # informational only: as none
    assert case.metrics == {"contains": 1.0, "equals": 0.0}  # each still reported


async def test_results_keep_order_when_judges_answer_out_of_order(make_ctx):
    async def slow_judge(provider_id, messages):
        await asyncio.sleep(0.05)
        return '{"pass": true, "score": 1, "reason": "slow"}'

    assertions = [
        Assertion(type="llm-judge", value="r", provider="j"),
        Assertion(type="contains", value="x"),
    ]
    case = await score(Output(text="x"), assertions, make_ctx(judge=slow_judge))
    assert [r.type for r in case.results] == ["llm-judge", "contains"]
    assert case.passed


async def test_a_grader_outage_and_a_template_error_are_not_verdicts():
    async def down(provider_id, messages):
        raise GraderOutage("judge j failed: 503")

    judged = [Assertion(type="llm-judge", value="r", provider="j")]
    with pytest.raises(GraderOutage):
        await score(Output(text="x"), judged, ScoringContext(vars={}, judge=down))

    def render(text, variables):
        raise TemplateRenderError("'lable' is undefined")

    with pytest.raises(TemplateRenderError):
        await score(Output(text="x"), [Assertion(type="contains", value="{{ lable }}")],
                    ScoringContext(vars={}, render=render))


@pytest.mark.usefixtures("restore_registry")
async def test_what_a_handler_returns_is_checked(make_ctx):
    @register_assertion("gives-text")
    def gives_text(assertion, output, ctx):
        return "yes"

    @register_assertion("gives-big-score", takes="text", threshold=0.5)
    def gives_big_score(assertion, output, ctx):
        return GradingResult(passed=True, score=1.5)

    @register_assertion("gives-no-score")
    async def gives_no_score(assertion, output, ctx):
        return GradingResult(passed=False, reason="async, no score")

    assertions = [Assertion(type="gives-text"), Assertion(type="gives-big-score", value="v"),
                  Assertion(type="not-gives-no-score")]
    case = await score(Output(text="x"), assertions, make_ctx())
    first, second, third = case.results
    assert first.error == "the gives-text handler returned str, not a GradingResult"
    assert second.error == "the gives-big-score handler gave score 1.5, not a number in [0, 1]"
    assert (third.passed, third.score, third.reason) == (True, 1.0, "async, no score")
