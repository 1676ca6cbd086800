"""llm-judge: the messages and response format a judge gets, and reading its verdict."""

from __future__ import annotations

import json

import pytest

from promptkit.scoring.judge import (
    JUDGE_SYSTEM_PROMPT,
    VERDICT_RESPONSE_FORMAT,
    VERDICT_SCHEMA,
    parse_verdict,
)


class FakeJudge:
    """An async judge that records its calls and answers with a fixed text."""

    def __init__(self, answer: str):
        self.answer = answer
        self.calls: list[tuple[str, list[dict], dict | None]] = []

    async def __call__(self, provider_id: str, messages: list[dict], *,
                       response_format: dict | None = None) -> str:
        self.calls.append((provider_id, messages, response_format))
        return self.answer


VERDICT = {"pass": True, "score": 0.8, "reason": "accurate and brief"}


@pytest.mark.parametrize(
    "answer",
    [
        json.dumps(VERDICT),
        f"```json\n{json.dumps(VERDICT, indent=2)}\n```",
        f"Here is my verdict:\n```\n{json.dumps(VERDICT)}\n```\nHope it helps.",
        f"Sure! {json.dumps(VERDICT)} That is all.",
        f"<think>The {{rubric}} asks for brevity.</think>\n{json.dumps(VERDICT)}",
        f'The output was {{"temp": 20}}, so: {json.dumps(VERDICT)}',
    ],
    ids=["plain", "fenced", "fence-with-prose", "inline-prose", "think-block", "quoted-json"],
)
async def test_llm_judge_parses_verdicts(run_one, make_ctx, answer):
    judge = FakeJudge(answer)
    ctx = make_ctx(judge=judge, topic="天气")
    result = await run_one(
        "北京今天晴", ctx, type="llm-judge", value="Is it about {{ topic }}?", provider="gpt"
    )
    assert (result.passed, result.score, result.reason) == (True, 0.8, "accurate and brief")
    assert result.error is None
    [(provider_id, messages, _)] = judge.calls
    assert provider_id == "gpt"
    assert messages[0] == {"role": "system", "content": JUDGE_SYSTEM_PROMPT}
    assert "Is it about 天气?" in messages[1]["content"]
    assert "北京今天晴" in messages[1]["content"]


async def test_the_judge_is_asked_for_a_verdict_by_json_schema(run_one, make_ctx):
    judge = FakeJudge(json.dumps(VERDICT))
    await run_one("x", make_ctx(judge=judge), type="llm-judge", value="r", provider="j")
    [(_, _, response_format)] = judge.calls
    assert response_format == {
        "type": "json_schema",
        "json_schema": {"name": "verdict", "schema": VERDICT_SCHEMA, "strict": True},
    }
    assert response_format == VERDICT_RESPONSE_FORMAT
    # What a strict schema needs: every property required, no others allowed.
    assert set(VERDICT_SCHEMA["required"]) == set(VERDICT_SCHEMA["properties"])
    assert VERDICT_SCHEMA["additionalProperties"] is False


async def test_a_judge_without_the_response_format_keyword_is_still_called(run_one, make_ctx):
    calls = []

    async def plain_judge(provider_id, messages):
        calls.append(provider_id)
        return json.dumps(VERDICT)

    async def judge_with_kwargs(provider_id, messages, **options):
        calls.append(options)
        return json.dumps(VERDICT)

    for judge in (plain_judge, judge_with_kwargs):
        result = await run_one("x", make_ctx(judge=judge), type="llm-judge", value="r",
                               provider="j")
        assert (result.passed, result.error) == (True, None)
    assert calls == ["j", {"response_format": VERDICT_RESPONSE_FORMAT}]


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ("I think it passes.", "judge answer is not a JSON verdict"),
        ("```json\n{pass: true}\n```", "judge answer is not a JSON verdict"),
        ("", "judge answer is not a JSON verdict"),
        ('{"score": 0.9}', "judge gave no boolean 'pass'"),
        ('{"pass": "yes"}', "judge gave no boolean 'pass'"),
        ('{"pass": true, "score": 8}', "judge gave score 8"),
    ],
)
async def test_llm_judge_bad_answers_are_errors(run_one, make_ctx, answer, message):
    ctx = make_ctx(judge=FakeJudge(answer))
    for kind in ("llm-judge", "not-llm-judge"):  # an error is never inverted into a pass
        result = await run_one("x", ctx, type=kind, value="rubric", provider="gpt")
        assert (result.passed, result.score) == (False, 0.0)
        assert message in result.error


async def test_a_judge_answer_of_braces_is_read_in_bounded_time(run_one, make_ctx):
    judge = FakeJudge("{" * 1_000_000 + '{"pass": true, "score": 1, "reason": "late"}')
    result = await run_one("x", make_ctx(judge=judge), type="llm-judge", value="ok?",
                           provider="j")
    assert not result.passed and "not a JSON verdict" in result.error


def test_a_verdict_is_read_after_the_judges_reasoning():
    final = '{"pass": true, "score": 1, "reason": "final"}'
    guess = '{"pass": false, "score": 0, "reason": "guess"}'
    # The same stripping as chain-of-thought answers: <thinking> blocks, any case, and a
    # closing tag whose opener was in the prompt.
    assert parse_verdict(f"<THINKING>{guess}</THINKING>{final}").reason == "final"
    assert parse_verdict(f"Maybe {guess}</think>\n{final}").reason == "final"


async def test_llm_judge_score_defaults_from_pass_and_threshold_overrides_pass(run_one,
                                                                               make_ctx):
    ctx = make_ctx(judge=FakeJudge('{"pass": false}'))
    result = await run_one("x", ctx, type="llm-judge", value="r", provider="j")
    assert (result.passed, result.score, result.reason) == (False, 0.0, "")
    ctx = make_ctx(judge=FakeJudge('{"pass": false, "score": 0.6, "reason": "meh"}'))
    result = await run_one("x", ctx, type="llm-judge", value="r", provider="j", threshold=0.5)
    assert (result.passed, result.score) == (True, 0.6)
    result = await run_one("x", ctx, type="not-llm-judge", value="r", provider="j")
    assert (result.passed, result.score) == (True, pytest.approx(0.4))


async def test_llm_judge_without_judge_or_failing_judge_is_an_error(run_one, make_ctx):
    result = await run_one("x", make_ctx(), type="llm-judge", value="r", provider="j")
    assert "needs a judge provider" in result.error

    async def unreachable(provider_id, messages):
        raise ConnectionError("judge endpoint down")

    result = await run_one(
        "x", make_ctx(judge=unreachable), type="llm-judge", value="r", provider="j"
    )
    assert result.error == "ConnectionError: judge endpoint down"
