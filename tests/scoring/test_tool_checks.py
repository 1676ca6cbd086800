"""tool-call and tool-call-f1: the function calls of an answer against what a case expects."""

from __future__ import annotations

import re

import pydantic
import pytest

from promptkit.errors import ConfigError
from promptkit.running.plan import plan_eval
from promptkit.running.spec import load_spec
from promptkit.scoring.assertion import Assertion
from promptkit.scoring.context import Output
from promptkit.scoring.engine import score

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"},
                           "units": {"enum": ["celsius", "fahrenheit"]},
                           "days": {"type": "integer"}},
            "required": ["city"],
        },
    },
}
SEARCH = {"type": "function", "function": {"name": "search", "parameters": {
    "type": "object", "properties": {"query": {"type": "string"}}}}}


def call(name: str, arguments: object = None, raw: str | None = None) -> dict:
    made = {"id": f"call_{name}", "name": name, "arguments": arguments}
    if raw is not None:
        made["raw_arguments"] = raw
    return made


def calls(*made: dict) -> Output:
    return Output(text="", tool_calls=list(made), finish_reason="tool_calls")


@pytest.fixture
def ctx(make_ctx):
    context = make_ctx(city="Berlin", days=3, tool="get_weather")
    context.tools = [WEATHER, SEARCH]
    return context


async def test_a_call_with_the_expected_arguments_passes(run_one, ctx):
    output = calls(call("search", {"query": "x"}),
                   call("get_weather", {"city": "Berlin", "units": "celsius"}))
    result = await run_one(output, ctx, type="tool-call", name="get_weather",
                           arguments={"city": "{{ city }}"})
    assert (result.passed, result.score, result.error) == (True, 1.0, None)
    assert result.reason == 'called get_weather({"city": "Berlin", "units": "celsius"})'


@pytest.mark.parametrize(
    ("made", "fields", "reason"),
    [
        ([call("get_weather", {"city": "Paris"})], {"arguments": {"city": "{{ city }}"}},
         "argument 'city' is 'Paris', expected 'Berlin'"),
        ([call("get_weather", {"units": "celsius"})], {"arguments": {"city": "Berlin"},
                                                       "schema": False},
         "argument 'city' is missing"),
        ([call("search", {"query": "x"})], {}, "no call of get_weather — calls made: [search]"),
        ([], {}, "no call of get_weather — calls made: none"),
        ([call("get_weather", None, raw='{"city": Berl')], {},
         "arguments not JSON: '{\"city\": Berl'"),
        ([call("get_weather", None, raw='{"city": Berl')], {"schema": False},
         "arguments not JSON: '{\"city\": Berl'"),  # with no check asked, still unusable
        ([call("get_weather", None, raw="null")], {"schema": False},
         "arguments are not a JSON object: null"),
        ([call("get_weather", None, raw=" [1, 2]")], {}, "arguments are not a JSON object: [1, 2]"),
        ([call("get_weather", None, raw='{"n": NaN}')], {}, "arguments not JSON: '{\"n\": NaN}'"),
        ([call("get_weather", None)], {}, "arguments are not a JSON object: null"),  # older runs
        ([call("get_weather", [1, 2])], {}, "arguments are not a JSON object: [1, 2]"),
        ([call("get_weather", {"city": "Paris", "units": "kelvin"})], {},
         "arguments break the tool schema at $.units: 'kelvin' is not one of "
         "['celsius', 'fahrenheit']"),
        ([call("get_weather", {"city": "Paris"})], {"arguments": {"city": "Paris"},
                                                    "schema": {"required": ["days"]}},
         "arguments break the tool schema at $: 'days' is a required property"),
        ([call("get_weather", {"city": "Berlin", "days": 2})],
         {"arguments": {"city": "Berlin"}, "match": "exact"}, "argument 'days' is not expected"),
        ([call("get_weather", {"city": "Paris"}), call("get_weather", {"town": "Berlin"})],
         {"arguments": {"city": "Berlin"}, "schema": False},
         "none of the 2 calls of get_weather fits (call 1: argument 'city' is 'Paris', "
         "expected 'Berlin'; call 2: argument 'city' is missing)"),
    ],
)
async def test_a_failing_call_says_what_was_wrong(run_one, ctx, made, fields, reason):
    result = await run_one(calls(*made), ctx, type="tool-call", name="get_weather", **fields)
    assert (result.passed, result.score, result.error) == (False, 0.0, None)
    assert result.reason == reason
    negated = await run_one(calls(*made), ctx, type="not-tool-call", name="get_weather",
                            **fields)
    assert (negated.passed, negated.score, negated.reason) == (True, 1.0, reason)


@pytest.mark.parametrize(
    ("expected", "actual", "passed"),
    [
        ({"stop": {"city": "Berlin"}}, {"stop": {"city": "Berlin", "country": "DE"}}, True),
        ({"stops": [{"city": "Berlin"}]}, {"stops": [{"city": "Berlin", "days": 2}]}, True),
        ({"stops": ["Berlin"]}, {"stops": ["Berlin", "Paris"]}, False),  # lists: every item
        ({"days": 3}, {"days": 3.0}, True),  # numbers compare numerically
        ({"days": 1}, {"days": True}, False),  # a boolean is not a number
        ({"days": "3"}, {"days": 3}, False),  # a literal text is a text
        ({"days": "{{ days }}"}, {"days": 3}, True),  # a templated one may be a number
        ({"days": "{{ days }}"}, {"days": "3"}, True),
        ({"city": "berlin"}, {"city": "Berlin"}, False),  # texts compare exactly
    ],
)
async def test_arguments_match_as_json_values(run_one, ctx, expected, actual, passed):
    result = await run_one(calls(call("plan_trip", actual)), ctx, type="tool-call",
                           name="plan_trip", arguments=expected)
    assert (result.passed, result.error) == (passed, None), result.reason


async def test_exact_match_compares_nested_keys_too(run_one, ctx):
    made = calls(call("plan_trip", {"stop": {"city": "Berlin", "country": "DE"}}))
    result = await run_one(made, ctx, type="tool-call", name="plan_trip", match="exact",
                           arguments={"stop": {"city": "Berlin"}})
    assert result.reason == "argument 'stop.country' is not expected"


async def test_the_tools_schema_patterns_cannot_stall_the_run(run_one, ctx, monkeypatch):
    import promptkit.scoring.reading as reading

    monkeypatch.setattr(reading, "REGEX_TIMEOUT_S", 0.05)
    ctx.tools = [{"type": "function", "function": {"name": "lookup", "parameters": {
        "type": "object", "properties": {"code": {"type": "string", "pattern": "(a|aa)+$"}}}}}]
    made = calls(call("lookup", {"code": "a" * 40 + "b"}))
    result = await run_one(made, ctx, type="tool-call", name="lookup")
    assert not result.passed
    assert result.error.startswith("pattern '(a|aa)+$' took too long on 'aaaa")


async def test_a_ref_of_a_schema_that_leads_nowhere(run_one, ctx):
    with pytest.raises(pydantic.ValidationError,
                       match=re.escape("schema: $ref 'http://127.0.0.1:9/s' is not in the schema")):
        Assertion(type="tool-call", name="get_weather", schema={"$ref": "http://127.0.0.1:9/s"})
    # a tool's parameters are only met at scoring: the case gets the message
    ctx.tools = [{"type": "function", "function": {"name": "lookup", "parameters": {
        "type": "object", "properties": {"code": {"$ref": "#/definitions/code"}}}}}]
    result = await run_one(calls(call("lookup", {"code": "x"})), ctx, type="tool-call",
                           name="lookup")
    assert result.error == "$ref '#/definitions/code' points to nothing in the schema"


async def test_the_tools_own_schema_is_checked_unless_turned_off(run_one, ctx):
    made = calls(call("get_weather", {"city": 42}))
    checked = await run_one(made, ctx, type="tool-call", name="get_weather")
    assert checked.reason == "arguments break the tool schema at $.city: 42 is not of type 'string'"
    unchecked = await run_one(made, ctx, type="tool-call", name="get_weather", schema=False)
    assert unchecked.passed and unchecked.reason == 'called get_weather({"city": 42})'
    # a tool the template does not offer has no schema to check by default ...
    other = await run_one(calls(call("translate", {"x": 1})), ctx, type="tool-call",
                          name="translate")
    assert other.passed
    # ... but asking for it says so
    asked = await run_one(calls(call("translate", {"x": 1})), ctx, type="tool-call",
                          name="translate", schema=True)
    assert not asked.passed
    assert asked.error == ("schema: true, but the template offers no tool 'translate' "
                           "(tools: get_weather, search)")


async def test_count_and_order(run_one, ctx):
    made = calls(call("search", {"query": "weather"}), call("get_weather", {"city": "Berlin"}),
                 call("get_weather", {"city": "Paris"}))
    twice = await run_one(made, ctx, type="tool-call", name="get_weather", count=2,
                          order=["search", "get_weather"])
    assert twice.passed
    assert twice.reason == ('called get_weather({"city": "Berlin"}); get_weather called 2 '
                            'times, calls in the order [search, get_weather]')
    once = await run_one(made, ctx, type="tool-call", name="get_weather", count=1)
    assert once.reason == "get_weather called 2 times, expected 1"
    reversed_order = await run_one(made, ctx, type="tool-call", name="search",
                                   order=["get_weather", "search"])
    assert reversed_order.reason == ("calls [search, get_weather, get_weather] are not in the "
                                     "order [get_weather, search]")
    # the second call of get_weather is the one that fits
    paris = await run_one(made, ctx, type="tool-call", name="get_weather",
                          arguments={"city": "Paris"})
    assert paris.passed and paris.reason == 'called get_weather({"city": "Paris"})'


async def test_count_0_means_never_called(run_one, ctx):
    never = await run_one(calls(call("search", {})), ctx, type="tool-call", name="get_weather",
                          count=0)
    assert never.passed and never.reason == "get_weather not called; calls made: [search]"
    called = await run_one(calls(call("get_weather", {"city": "Berlin"})), ctx,
                           type="tool-call", name="get_weather", count=0)
    assert not called.passed and called.reason == "get_weather called once, expected 0"


async def test_the_name_is_rendered_with_the_case(run_one, ctx):
    result = await run_one(calls(call("get_weather", {"city": "Berlin"})), ctx,
                           type="tool-call", name="{{ tool }}")
    assert result.passed


async def test_not_and_weight_apply_as_to_any_type(ctx):
    output = calls(call("search", {"query": "x"}))
    assertions = [
        Assertion(type="not-tool-call", name="delete_file"),  # passes: never called
        Assertion(type="tool-call", name="get_weather", weight=0),  # informational
        Assertion(type="tool-call", name="search", weight=3),
    ]
    case = await score(output, assertions, ctx)
    assert [r.passed for r in case.results] == [True, False, True]
    assert case.passed and case.score == 1.0
    assert case.metrics == {"not-tool-call": 1.0, "tool-call": 1.0}  # weight 0 weighs nothing
    assertions[1] = Assertion(type="tool-call", name="get_weather", weight=1)
    case = await score(output, assertions, ctx)
    assert not case.passed and case.score == pytest.approx(4 / 5)


# --- tool-call-f1 ------------------------------------------------------------------------------

EXPECTED = [{"name": "get_weather", "arguments": {"city": "{{ city }}"}}, {"name": "search"}]


async def test_f1_of_the_calls_made_against_the_expected(run_one, ctx):
    both = calls(call("search", {"query": "x"}), call("get_weather", {"city": "Berlin"}))
    perfect = await run_one(both, ctx, type="tool-call-f1", value=EXPECTED)
    assert (perfect.passed, perfect.score) == (True, 1.0)
    assert perfect.reason == ("tool-call F1 1.000 >= 1.0; precision 1.000 (2 of 2 calls made "
                              "were expected); recall 1.000 (2 of 2 expected calls made)")
    extra = calls(call("get_weather", {"city": "Paris"}), call("search", {"query": "x"}),
                  call("get_weather", {"city": "Berlin"}))
    result = await run_one(extra, ctx, type="tool-call-f1", value=EXPECTED)
    assert (result.passed, result.score) == (False, pytest.approx(0.8))
    assert result.reason == ("tool-call F1 0.800 < 1.0; precision 0.667 (2 of 3 calls made "
                             "were expected); recall 1.000 (2 of 2 expected calls made); not "
                             'expected: get_weather({"city": "Paris"})')
    lenient = await run_one(extra, ctx, type="tool-call-f1", value=EXPECTED, threshold=0.75)
    assert lenient.passed and lenient.reason.startswith("tool-call F1 0.800 >= 0.75;")
    missing = await run_one(calls(call("get_weather", {"city": "Paris"})), ctx,
                            type="tool-call-f1", value=EXPECTED)
    assert missing.score == 0.0
    assert missing.reason.endswith('not made: get_weather({"city": "Berlin"}), search; not '
                                   'expected: get_weather({"city": "Paris"})')


async def test_f1_never_matches_a_call_whose_arguments_are_not_an_object(run_one, ctx):
    # even against an expected call that gives no arguments: an app could not run it
    made = calls(call("get_weather", None, raw='{"city": Berl'), call("search", None, raw="null"))
    result = await run_one(made, ctx, type="tool-call-f1",
                           value=[{"name": "get_weather"}, {"name": "search"}])
    assert (result.passed, result.score) == (False, 0.0)
    assert result.reason.endswith('not made: get_weather, search; not expected: '
                                  'get_weather(invalid JSON: {"city": Berl), '
                                  'search(not an object: null)')


async def test_f1_matches_each_call_once_and_as_many_as_can_match(run_one, ctx):
    # a greedy match would give the Berlin call to the looser expectation listed first
    expected = [{"name": "get_weather"}, {"name": "get_weather", "arguments": {"city": "Berlin"}}]
    made = calls(call("get_weather", {"city": "Berlin"}), call("get_weather", {"city": "Oslo"}))
    assert (await run_one(made, ctx, type="tool-call-f1", value=expected)).score == 1.0
    twice = [{"name": "search"}, {"name": "search"}]
    once = await run_one(calls(call("search", {})), ctx, type="tool-call-f1", value=twice)
    assert once.score == pytest.approx(2 / 3)  # precision 1, recall 1/2
    exact = await run_one(made, ctx, type="tool-call-f1", match="exact",
                          value=[{"name": "get_weather", "arguments": {"city": "Oslo"}}])
    assert exact.score == pytest.approx(2 / 3)  # precision 1/2, recall 1


async def test_f1_with_no_calls_expected(run_one, ctx):
    none = await run_one(calls(), ctx, type="tool-call-f1", value=[])
    assert (none.passed, none.score) == (True, 1.0)
    some = await run_one(calls(call("search", {})), ctx, type="tool-call-f1", value=[])
    assert (some.passed, some.score) == (False, 0.0)
    negated = await run_one(calls(call("search", {})), ctx, type="not-tool-call-f1", value=[])
    assert (negated.passed, negated.score) == (True, 1.0)


async def test_f1_is_the_metric_of_the_case(ctx):
    made = calls(call("search", {"query": "x"}))
    case = await score(made, [Assertion(type="tool-call-f1", value=EXPECTED, threshold=0.5,
                                        metric="tools")], ctx)
    assert case.passed and case.metrics == {"tools": pytest.approx(2 / 3)}


# --- spec-time checks ---------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"type": "tool-call"}, "name: tool-call needs the name of the function"),
        ({"type": "tool-call", "name": "f", "value": "f"}, "value: tool-call takes name"),
        ({"type": "tool-call", "name": "f", "arguments": ["x"]}, "arguments: tool-call takes a "
         "mapping"),
        ({"type": "tool-call", "name": "f", "match": "exact"}, "match: says how arguments "
         "compare; give arguments too"),
        ({"type": "tool-call", "name": "f", "match": "fuzzy", "arguments": {}}, "match"),
        ({"type": "tool-call", "name": "f", "order": []}, "order: give the function names"),
        ({"type": "tool-call", "name": "f", "order": "f"}, "order"),
        ({"type": "tool-call", "name": "f", "count": -1}, "greater than or equal to 0"),
        ({"type": "tool-call", "name": "f", "schema": {"type": "nonsense"}},
         "schema: invalid JSON schema: 'nonsense' is not valid"),
        ({"type": "tool-call", "name": "f", "path": "$.a"},
         "path: only json-path takes path, not tool-call"),
        ({"type": "tool-call", "name": "f", "threshold": 0.5}, "takes no threshold"),
        ({"type": "tool-call-f1"}, "value: tool-call-f1 needs the list of expected calls"),
        ({"type": "tool-call-f1", "value": [{"arguments": {}}]}, "value[0]: an expected call "
         "is a mapping with a name"),
        ({"type": "tool-call-f1", "value": [{"name": "f", "args": {}}]},
         "value[0]: 'args' is not a key of an expected call"),
        ({"type": "tool-call-f1", "value": [{"name": "f", "arguments": "x"}]},
         "value[0].arguments: a mapping"),
        ({"type": "tool-call-f1", "value": [], "name": "f"},
         "name: only tool-call takes name, not tool-call-f1"),
    ],
)
def test_invalid_tool_assertions(fields, message):
    with pytest.raises(pydantic.ValidationError, match=message.replace("[", r"\[")):
        Assertion(**fields)


@pytest.mark.parametrize(
    ("assertion", "expected"),
    [
        ("  - type: tool-call\n    arguments: {city: Berlin}\n",
         ":12: assert[1]: name: tool-call needs the name of the function that must be called"),
        ("  - type: tool-call\n    name: get_weather\n    order: search\n",
         ":14: assert[1].order: Input should be a valid list"),
        ("  - type: tool-call\n    name: get_weather\n    schema: {type: 12}\n",
         ":12: assert[1]: schema: invalid JSON schema: 12 is not valid"),
        ("  - type: tool-call-f1\n    value: {name: get_weather}\n",
         ":12: assert[1]: value: tool-call-f1 needs the list of expected calls"),
    ],
)
def test_spec_errors_name_file_line_and_key(spec_error, assertion: str, expected: str):
    assert spec_error(assertion).startswith(expected)


ASSISTANT_SPEC = """\
templates: templates
prompts: [assistant@2]
providers:
  - {id: fake, base_url: 'http://127.0.0.1:9/v1', model: m}
cases:
  - {request: 'Weather in Berlin?', city: Berlin}
assert:
  - type: tool-call
    name: get_weather
    arguments: {city: '{{ town }}'}
"""


def test_a_field_the_cases_lack_is_found_before_any_request(tmp_path, project_templates):
    path = tmp_path / "eval.yaml"  # the project's assistant template declares get_weather
    path.write_text(ASSISTANT_SPEC)
    with pytest.raises(ConfigError) as info:
        plan_eval(load_spec(path))
    assert "assert[0].arguments: '{{ town }}': " in str(info.value)
    assert "'town' is undefined" in str(info.value)
