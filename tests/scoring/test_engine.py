"""Tests for promptkit.scoring: every assertion type, negation, weights and static checks."""

from __future__ import annotations

import importlib.util
import json

import jinja2
import pydantic
import pytest

from promptkit.errors import ConfigError
from promptkit.scoring import metrics
from promptkit.scoring.engine import (
    ASSERTION_TYPES,
    DEFAULT_THRESHOLDS,
    JUDGE_SYSTEM_PROMPT,
    Assertion,
    GradingResult,
    Output,
    ScoringContext,
    check_assertions,
    score,
)

HAS_JSONSCHEMA = importlib.util.find_spec("jsonschema") is not None

# --- helpers referenced by `python` assertions as f"{__name__}:name" ----------------------
# __name__ is whatever pytest imported this module as, and it is in sys.modules, so the
# reference resolves however pytest is configured (rootdir-relative or importlib mode).


def says_hello(output, context):
    return "hello" in output


def quarter(output, context):
    return 0.25


def verdict_dict(output, context):
    return {"pass": context["vars"]["ok"], "score": 0.9, "reason": "looked at vars"}


def grading_result(output, context):
    return GradingResult(passed=False, reason="not good enough")


async def async_check(output, context):
    return context["output"].output_tokens == 3


def explodes(output, context):
    raise RuntimeError("boom")


def returns_text(output, context):
    return "yes"


def returns_too_much(output, context):
    return 1.5


NOT_CALLABLE = 42


def ref(name: str) -> str:
    return f"{__name__}:{name}"


# --- fixtures ---------------------------------------------------------------------------


def jinja_render(text, variables):
    return jinja2.Template(text, undefined=jinja2.StrictUndefined).render(**variables)


def make_ctx(judge=None, embed=None, **variables) -> ScoringContext:
    return ScoringContext(vars=variables, render=jinja_render, judge=judge, embed=embed)


async def run_one(output: str | Output, ctx: ScoringContext | None = None, **fields):
    """Score one assertion built from ``fields`` and return its result."""
    if isinstance(output, str):
        output = Output(text=output)
    case = await score(output, [Assertion(**fields)], ctx or make_ctx())
    assert len(case.results) == 1
    return case.results[0]


class FakeJudge:
    """An async judge that records its calls and answers with a fixed text."""

    def __init__(self, answer: str):
        self.answer = answer
        self.calls: list[tuple[str, list[dict]]] = []

    async def __call__(self, provider_id: str, messages: list[dict]) -> str:
        self.calls.append((provider_id, messages))
        return self.answer


class FakeEmbedder:
    """Embeds each text as a fixed vector looked up by text."""

    def __init__(self, vectors: dict[str, list[float]]):
        self.vectors = vectors
        self.calls: list[tuple[str, list[str]]] = []

    async def __call__(self, provider_id: str, texts: list[str]) -> list[list[float]]:
        self.calls.append((provider_id, texts))
        return [self.vectors[text] for text in texts]


# --- binary text types ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "value", "output", "passed"),
    [
        ("equals", "Paris", "Paris\n", True),  # surrounding whitespace ignored
        ("equals", "Paris", "paris", False),
        ("equals", 42, "42", True),  # a YAML number means its text
        ("contains", "北京", "今天北京天气晴朗", True),
        ("contains", "上海", "今天北京天气晴朗", False),
        ("icontains", "PARIS", "I love paris.", True),
        ("icontains", "london", "I love paris.", False),
        ("starts-with", "Answer:", "  Answer: 4", True),
        ("starts-with", "Answer:", "The Answer: 4", False),
        ("regex", r"\d{4}年", "GPT-4o在2024年发布", True),
        ("regex", r"^\d+$", "12a", False),
        ("contains-any", ["cat", "狗"], "我的狗", True),
        ("contains-any", ["cat", "dog"], "a bird", False),
        ("contains-all", ["北京", "晴"], "北京天气晴朗", True),
        ("contains-all", ["北京", "雨"], "北京天气晴朗", False),
    ],
)
async def test_binary_text_types(kind, value, output, passed):
    result = await run_one(output, type=kind, value=value)
    assert (result.passed, result.score, result.error) == (passed, float(passed), None)
    negated = await run_one(output, type=f"not-{kind}", value=value)
    assert (negated.passed, negated.score) == (not passed, float(not passed))
    assert negated.type == f"not-{kind}"


async def test_values_are_rendered_with_case_vars():
    ctx = make_ctx(city="北京", items=["x"])
    assert (await run_one("今天北京晴", ctx, type="contains", value="{{ city }}")).passed
    result = await run_one("北京 and 上海", ctx, type="contains-all", value=["{{ city }}", "上海"])
    assert result.passed


async def test_reason_describes_the_check():
    result = await run_one("a bird", type="contains-any", value=["cat", "bird"])
    assert result.reason == "output contains ['bird'], not ['cat']"
    result = await run_one("a bird", type="not-contains", value="cat")
    assert (result.passed, result.reason) == (True, "output contains 'cat': no")
    result = await run_one("Paris", type="regex", value="^Par")
    assert result.reason == "output matches /^Par/: yes"


async def test_templated_regex_that_renders_invalid_is_an_error():
    result = await run_one("x", make_ctx(p="("), type="regex", value="{{ p }}")
    assert not result.passed
    assert "invalid regex" in result.error


async def test_render_failure_is_an_error_not_a_crash():
    result = await run_one("x", make_ctx(), type="contains", value="{{ missing }}")
    assert not result.passed
    assert result.error.startswith("UndefinedError")


async def test_a_catastrophic_regex_fails_its_case_instead_of_stalling(monkeypatch):
    import promptkit.scoring.engine as scoring

    monkeypatch.setattr(scoring, "REGEX_TIMEOUT_S", 0.05)
    # (a|aa)+$ on "aaaa...b" tries every split of the a's: Fibonacci(40) ways.
    result = await run_one("a" * 40 + "b", type="regex", value="(a|aa)+$")
    assert not result.passed and "took longer than 0.05s" in result.error


# --- is-json ------------------------------------------------------------------------------


async def test_is_json_bounds_what_it_parses():
    deep = await run_one("[" * 100_000 + "]" * 100_000, type="is-json")
    assert not deep.passed and "nested too deeply" in deep.reason and deep.error is None
    huge = await run_one('"' + "x" * 1_000_001 + '"', type="is-json")
    assert not huge.passed and "more than the 1,000,000 parsed as JSON" in huge.reason


async def test_a_judge_answer_of_braces_is_read_in_bounded_time():
    judge = FakeJudge("{" * 1_000_000 + '{"pass": true, "score": 1, "reason": "late"}')
    result = await run_one("x", make_ctx(judge=judge), type="llm-judge", value="ok?",
                           provider="j")
    assert not result.passed and "not a JSON verdict" in result.error


@pytest.mark.parametrize(
    ("output", "passed"),
    [('{"a": 1}', True), ("[1, 2]", True), ("  42 ", True), ("{'a': 1}", False), ("", False)],
)
async def test_is_json(output, passed):
    result = await run_one(output, type="is-json")
    assert (result.passed, result.error) == (passed, None)
    assert (await run_one(output, type="not-is-json")).passed is not passed


@pytest.mark.skipif(HAS_JSONSCHEMA, reason="jsonschema is installed")
async def test_is_json_schema_without_jsonschema_is_a_clear_error():
    result = await run_one('{"a": 1}', type="is-json", value={"type": "object"})
    assert not result.passed
    assert "pip install jsonschema" in result.error


@pytest.mark.skipif(not HAS_JSONSCHEMA, reason="needs jsonschema")
async def test_is_json_schema_with_jsonschema():
    schema = {"type": "object", "required": ["a"]}
    assert (await run_one('{"a": 1}', type="is-json", value=schema)).passed
    result = await run_one('{"b": 1}', type="is-json", value=schema)
    assert not result.passed
    assert result.error is None


# --- python -------------------------------------------------------------------------------


async def test_python_bool():
    assert (await run_one("hello there", type="python", value=ref("says_hello"))).passed
    result = await run_one("bye", type="python", value=ref("says_hello"))
    assert (result.passed, result.score) == (False, 0.0)


async def test_python_float_against_threshold():
    # 0.25 < default 0.5 -> fail; with threshold 0.2 -> pass; the score is kept either way.
    result = await run_one("x", type="python", value=ref("quarter"))
    assert (result.passed, result.score) == (False, 0.25)
    assert DEFAULT_THRESHOLDS["python"] == 0.5
    result = await run_one("x", type="python", value=ref("quarter"), threshold=0.2)
    assert (result.passed, result.score) == (True, 0.25)


async def test_python_dict_and_grading_result():
    ctx = make_ctx(ok=True)
    result = await run_one("x", ctx, type="python", value=ref("verdict_dict"))
    assert (result.passed, result.score, result.reason) == (True, 0.9, "looked at vars")
    result = await run_one("x", type="python", value=ref("grading_result"))
    assert (result.passed, result.score, result.reason) == (False, 0.0, "not good enough")


async def test_python_async_function_gets_the_output_object():
    output = Output(text="abc", output_tokens=3)
    assert (await run_one(output, type="python", value=ref("async_check"))).passed


@pytest.mark.parametrize(
    ("function", "message"),
    [
        ("explodes", "RuntimeError: boom"),
        ("returns_text", "function returned str"),
        ("returns_too_much", "function gave score 1.5"),
    ],
)
async def test_python_failures_are_errors(function, message):
    result = await run_one("x", type="python", value=ref(function))
    assert (result.passed, result.score) == (False, 0.0)
    assert message in result.error


# --- reference metrics ----------------------------------------------------------------------

ZH_REFERENCE = "今天北京天气晴朗"
ZH_OUTPUT = "北京今天天气很好"


async def test_rouge_and_bleu_score_chinese_from_case_vars():
    ctx = make_ctx(summary=ZH_REFERENCE)
    fields = {"expected": "{{ summary }}"}
    # Hand values from tests/test_metrics.py: ROUGE-1 0.75, ROUGE-2 3/7, ROUGE-L 0.5.
    result = await run_one(ZH_OUTPUT, ctx, type="rouge-n", **fields)
    assert (result.passed, result.score) == (True, pytest.approx(0.75))
    result = await run_one(ZH_OUTPUT, ctx, type="rouge-n", n=2, **fields)
    assert (result.passed, result.score) == (False, pytest.approx(3 / 7))
    assert result.reason == "rouge-2 0.429 < 0.5"
    result = await run_one(ZH_OUTPUT, ctx, type="rouge-l", **fields)
    assert (result.passed, result.score) == (True, pytest.approx(0.5))  # 0.5 >= 0.5
    result = await run_one(ZH_OUTPUT, ctx, type="bleu", threshold=0.1, **fields)
    assert result.score == pytest.approx(metrics.bleu(ZH_OUTPUT, ZH_REFERENCE))
    assert result.passed  # 0.1017 >= 0.1


async def test_reference_falls_back_to_value():
    result = await run_one("the cat sat", type="rouge-l", value="the cat sat")
    assert (result.passed, result.score) == (True, 1.0)


async def test_levenshtein_ratio_against_threshold():
    # distance("kitten", "sitting") = 3 -> ratio 1 - 3/7 ≈ 0.571 < default 0.8
    result = await run_one("kitten", type="levenshtein", expected="sitting")
    assert (result.passed, result.score) == (False, pytest.approx(4 / 7))
    result = await run_one("kitten", type="levenshtein", expected="sitting", threshold=0.5)
    assert result.passed
    # Chinese: 很 -> 不 is one edit of six characters -> 5/6 >= 0.8
    assert (await run_one("今天天气很好\n", type="levenshtein", expected="今天天气不好")).passed


async def test_not_on_a_scored_type_inverts_pass_and_score():
    result = await run_one(ZH_OUTPUT, type="not-rouge-n", expected=ZH_REFERENCE)
    assert (result.passed, result.score) == (False, pytest.approx(0.25))  # 1 - 0.75
    assert result.metric == "not-rouge-n"
    result = await run_one("hello", type="not-rouge-l", expected="goodbye world")
    assert (result.passed, result.score) == (True, 1.0)


# --- similar --------------------------------------------------------------------------------


async def test_similar_uses_the_named_embedder():
    embed = FakeEmbedder({"猫": [1.0, 0.0], "cat": [0.8, 0.6], "dog": [0.0, 1.0]})
    ctx = make_ctx(embed=embed, word="cat")
    result = await run_one("猫", ctx, type="similar", expected="{{ word }}", provider="emb")
    assert (result.passed, result.score) == (True, pytest.approx(0.8))  # 0.8 >= 0.75
    assert embed.calls == [("emb", ["猫", "cat"])]
    result = await run_one("猫", ctx, type="similar", expected="dog", provider="emb")
    assert (result.passed, result.score) == (False, 0.0)  # orthogonal
    result = await run_one("猫", ctx, type="not-similar", expected="dog", provider="emb")
    assert (result.passed, result.score) == (True, 1.0)


async def test_similar_without_embedder_or_with_bad_answer_is_an_error():
    result = await run_one("a", make_ctx(), type="similar", expected="b", provider="emb")
    assert "needs an embedding provider" in result.error

    async def one_vector(provider_id, texts):
        return [[1.0]]

    result = await run_one("a", make_ctx(embed=one_vector), type="similar", value="b", provider="e")
    assert result.error == "embedder returned 1 vectors for 2 texts"


# --- llm-judge ------------------------------------------------------------------------------

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
async def test_llm_judge_parses_verdicts(answer):
    judge = FakeJudge(answer)
    ctx = make_ctx(judge=judge, topic="天气")
    result = await run_one(
        "北京今天晴", ctx, type="llm-judge", value="Is it about {{ topic }}?", provider="gpt"
    )
    assert (result.passed, result.score, result.reason) == (True, 0.8, "accurate and brief")
    assert result.error is None
    [(provider_id, messages)] = judge.calls
    assert provider_id == "gpt"
    assert messages[0] == {"role": "system", "content": JUDGE_SYSTEM_PROMPT}
    assert "Is it about 天气?" in messages[1]["content"]
    assert "北京今天晴" in messages[1]["content"]


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
async def test_llm_judge_bad_answers_are_errors(answer, message):
    ctx = make_ctx(judge=FakeJudge(answer))
    for kind in ("llm-judge", "not-llm-judge"):  # an error is never inverted into a pass
        result = await run_one("x", ctx, type=kind, value="rubric", provider="gpt")
        assert (result.passed, result.score) == (False, 0.0)
        assert message in result.error


async def test_llm_judge_score_defaults_from_pass_and_threshold_overrides_pass():
    ctx = make_ctx(judge=FakeJudge('{"pass": false}'))
    result = await run_one("x", ctx, type="llm-judge", value="r", provider="j")
    assert (result.passed, result.score, result.reason) == (False, 0.0, "")
    ctx = make_ctx(judge=FakeJudge('{"pass": false, "score": 0.6, "reason": "meh"}'))
    result = await run_one("x", ctx, type="llm-judge", value="r", provider="j", threshold=0.5)
    assert (result.passed, result.score) == (True, 0.6)
    result = await run_one("x", ctx, type="not-llm-judge", value="r", provider="j")
    assert (result.passed, result.score) == (True, pytest.approx(0.4))


async def test_llm_judge_without_judge_or_failing_judge_is_an_error():
    result = await run_one("x", make_ctx(), type="llm-judge", value="r", provider="j")
    assert "needs a judge provider" in result.error

    async def unreachable(provider_id, messages):
        raise ConnectionError("judge endpoint down")

    result = await run_one(
        "x", make_ctx(judge=unreachable), type="llm-judge", value="r", provider="j"
    )
    assert result.error == "ConnectionError: judge endpoint down"


# --- limits -------------------------------------------------------------------------------

MEASURED = Output(text="今天 weather 很好", latency_s=1.2, output_tokens=30, cost=0.002)


@pytest.mark.parametrize(
    ("kind", "value", "passed"),
    [
        ("latency", 1500, True),  # 1200 ms
        ("latency", 1000, False),
        ("cost", 0.002, True),  # the maximum itself passes
        ("cost", 0.001, False),
        ("max-tokens", 30, True),
        ("max-tokens", 29, False),
        ("max-words", 5, True),  # 今 天 weather 很 好 = 5 words
        ("max-words", 4, False),
    ],
)
async def test_limits(kind, value, passed):
    result = await run_one(MEASURED, type=kind, value=value)
    assert (result.passed, result.score, result.error) == (passed, float(passed), None)
    assert (await run_one(MEASURED, type=f"not-{kind}", value=value)).passed is not passed


async def test_limit_reason():
    result = await run_one(MEASURED, type="latency", value=1000)
    assert result.reason == "latency 1200 ms > 1000 ms"


@pytest.mark.parametrize("kind", ["latency", "cost", "max-tokens"])
async def test_missing_measurement_is_an_error(kind):
    result = await run_one("text only", type=kind, value=1)
    assert not result.passed
    assert result.error.startswith("no ")


# --- the case score -------------------------------------------------------------------------


async def test_weighted_score_metrics_and_case_pass():
    assertions = [
        Assertion(type="contains", value="北京", weight=2),  # pass, 1.0
        Assertion(type="rouge-l", expected=ZH_REFERENCE, metric="quality"),  # 0.5, passes
        Assertion(type="rouge-n", expected=ZH_REFERENCE, metric="quality", weight=3),  # 0.75
        Assertion(type="max-words", value=3, weight=0),  # 8 words: fails, weight 0
    ]
    case = await score(Output(text=ZH_OUTPUT), assertions, make_ctx())
    assert [r.passed for r in case.results] == [True, True, True, False]
    assert not case.passed  # a weight-0 assertion still has to pass
    # (2 * 1 + 1 * 0.5 + 3 * 0.75 + 0 * 0) / (2 + 1 + 3 + 0) = 4.75 / 6
    assert case.score == pytest.approx(4.75 / 6)
    # quality = (1 * 0.5 + 3 * 0.75) / 4 = 0.6875
    assert case.metrics == {
        "contains": 1.0,
        "quality": pytest.approx(0.6875),
        "max-words": 0.0,
    }


async def test_all_passing_case():
    assertions = [Assertion(type="icontains", value="HELLO"), Assertion(type="is-json")]
    case = await score(Output(text='"hello"'), assertions, make_ctx())
    assert (case.passed, case.score) == (True, 1.0)


async def test_errored_assertion_fails_the_case_and_is_left_out_of_metrics():
    assertions = [
        Assertion(type="contains", value="x"),
        Assertion(type="latency", value=100),  # no latency measured -> error
    ]
    case = await score(Output(text="x"), assertions, make_ctx())
    assert not case.passed
    assert case.score == 0.5  # the error counts as 0
    assert case.metrics == {"contains": 1.0}


async def test_no_assertions_and_all_zero_weights():
    case = await score(Output(text="x"), [], make_ctx())
    assert (case.passed, case.score, case.results, case.metrics) == (True, 1.0, [], {})
    assertions = [
        Assertion(type="contains", value="x", weight=0),
        Assertion(type="equals", value="y", weight=0),
    ]
    case = await score(Output(text="x"), assertions, make_ctx())
    assert case.score == 0.5  # with no weight at all, each counts equally


async def test_results_keep_order_when_judges_answer_out_of_order():
    import asyncio

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


# --- Assertion validation -------------------------------------------------------------------


def test_unknown_type_lists_the_valid_types():
    with pytest.raises(pydantic.ValidationError) as info:
        Assertion(type="rouge")
    message = str(info.value)
    assert "unknown assertion type 'rouge'" in message
    assert all(kind in message for kind in ASSERTION_TYPES)
    assert "not-" in message


def test_all_types_and_their_negations_are_accepted():
    examples = {
        "equals": {"value": "a"},
        "contains": {"value": "a"},
        "icontains": {"value": "a"},
        "starts-with": {"value": "a"},
        "regex": {"value": "a+"},
        "contains-any": {"value": ["a"]},
        "contains-all": {"value": ["a"]},
        "is-json": {},
        "python": {"value": "m:f"},
        "rouge-n": {"expected": "a", "n": 2},
        "rouge-l": {"expected": "a"},
        "bleu": {"expected": "a"},
        "levenshtein": {"expected": "a"},
        "similar": {"expected": "a", "provider": "e"},
        "llm-judge": {"value": "rubric", "provider": "j"},
        "latency": {"value": 100},
        "cost": {"value": 0.5},
        "max-tokens": {"value": 10},
        "max-words": {"value": 10},
    }
    assert set(examples) == set(ASSERTION_TYPES)
    for kind, fields in examples.items():
        assert Assertion(type=kind, **fields).base_type == kind
        assert Assertion(type=f"not-{kind}", **fields).negated


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"type": "contains", "value": "a", "colour": "red"}, "Extra inputs are not permitted"),
        ({"type": "contains"}, "value: contains needs a text value"),
        ({"type": "equals", "value": True}, "value: equals needs a text value"),
        ({"type": "contains-any", "value": "a"}, "needs a non-empty list of texts"),
        ({"type": "contains-all", "value": []}, "needs a non-empty list of texts"),
        ({"type": "rouge-l"}, "expected: rouge-l needs the reference text"),
        ({"type": "bleu", "expected": "a", "value": "b"}, "not both"),
        ({"type": "contains", "value": "a", "expected": "a"}, "expected: contains takes its text"),
        ({"type": "latency", "value": "fast"}, "needs a number >= 0"),
        ({"type": "max-words", "value": -1}, "needs a number >= 0"),
        ({"type": "is-json", "value": "object"}, "optional JSON schema"),
        ({"type": "python", "value": "module_only"}, "python needs 'module:function'"),
        ({"type": "llm-judge", "value": " ", "provider": "j"}, "needs a rubric"),
        ({"type": "contains", "value": "a", "threshold": 0.5}, "takes no threshold"),
        ({"type": "bleu", "expected": "a", "threshold": 2}, "less than or equal to 1"),
        ({"type": "rouge-l", "expected": "a", "n": 2}, "only rouge-n takes n"),
        ({"type": "contains", "value": "a", "provider": "j"}, "only llm-judge and similar"),
        ({"type": "contains", "value": "a", "weight": -1}, "greater than or equal to 0"),
    ],
)
def test_invalid_assertions(fields, message):
    with pytest.raises(pydantic.ValidationError, match=message):
        Assertion(**fields)


def test_default_thresholds_and_metric_names():
    assert DEFAULT_THRESHOLDS == {
        "rouge-n": 0.5,
        "rouge-l": 0.5,
        "bleu": 0.5,
        "levenshtein": 0.8,
        "similar": 0.75,
        "python": 0.5,
    }
    assert Assertion(type="not-bleu", expected="a").pass_mark == 0.5
    assert Assertion(type="bleu", expected="a", threshold=0.2).pass_mark == 0.2
    assert Assertion(type="llm-judge", value="r").pass_mark is None
    assert Assertion(type="not-bleu", expected="a").metric_name == "not-bleu"
    assert Assertion(type="bleu", expected="a", metric="fluency").metric_name == "fluency"


# --- check_assertions -----------------------------------------------------------------------


def test_check_assertions_accepts_a_valid_list():
    check_assertions(
        [
            Assertion(type="contains", value="a"),
            Assertion(type="regex", value=r"^\d+$"),
            Assertion(type="regex", value="{{ pattern }}"),  # checked per case instead
            Assertion(type="python", value=ref("says_hello")),
            Assertion(type="python", value="os.path:join"),
            Assertion(type="llm-judge", value="rubric", provider="judge"),
            Assertion(type="not-similar", expected="a", provider="emb"),
        ],
        providers={"judge", "emb", "local"},
    )


@pytest.mark.parametrize(
    ("assertion", "message"),
    [
        (
            Assertion(type="llm-judge", value="r"),
            "assert[2].provider: llm-judge needs an explicit judge provider "
            "(no default judge is used)",
        ),
        (
            Assertion(type="not-similar", expected="a"),
            "assert[2].provider: similar needs an explicit embedding provider "
            "(no default embedding is used)",
        ),
        (
            Assertion(type="llm-judge", value="r", provider="gpt-5"),
            "assert[2].provider: unknown provider 'gpt-5' (known: judge, local)",
        ),
        (
            Assertion(type="python", value="no_such_module_xyz:check"),
            "assert[2].value: cannot load python assertion 'no_such_module_xyz:check': "
            "ModuleNotFoundError",
        ),
        (
            Assertion(type="python", value=ref("no_such_function")),
            "assert[2].value: cannot load python assertion",
        ),
        (
            Assertion(type="python", value=ref("NOT_CALLABLE")),
            "TypeError: 'NOT_CALLABLE' is not callable",
        ),
        (Assertion(type="regex", value="(unclosed"), "assert[2].value: invalid regex '(unclosed'"),
    ],
)
def test_check_assertions_errors_name_the_index(assertion, message):
    assertions = [Assertion(type="contains", value="a"), Assertion(type="is-json"), assertion]
    with pytest.raises(ConfigError) as info:
        check_assertions(assertions, providers={"judge", "local"})
    assert message in str(info.value)
    assert str(info.value).startswith(f"{info.value.key_path}: ")
    assert info.value.key_path.startswith("assert[2].")


@pytest.mark.skipif(HAS_JSONSCHEMA, reason="jsonschema is installed")
def test_check_assertions_schema_needs_jsonschema():
    with pytest.raises(ConfigError, match=r"assert\[0\]\.value: .*pip install jsonschema"):
        check_assertions([Assertion(type="is-json", value={"type": "object"})], set())


@pytest.mark.skipif(not HAS_JSONSCHEMA, reason="needs jsonschema")
def test_check_assertions_rejects_an_invalid_schema():
    with pytest.raises(ConfigError, match="invalid JSON schema"):
        check_assertions([Assertion(type="is-json", value={"type": "nonsense"})], set())
