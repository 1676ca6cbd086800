"""Conversation cases against the test endpoint: later turns, tool results and handlers,
``max_turns``, per-turn assertions, and the bad input that stops a run before it starts."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from helpers import promptkit as promptkit_cli
from promptkit.errors import ConfigError
from promptkit.running.plan import plan_eval
from promptkit.running.runner import RunOptions, run_eval
from promptkit.running.spec import load_spec
from promptkit.testing import FakeEndpoint, RecordedRequest

SPEC = """\
templates: templates
prompts:
  - id: helper
    template: helper@1
providers:
  - id: fake
    base_url: {base_url}
    model: m
    stream: false
    price: {{input_per_mtok: 1, output_per_mtok: 2}}
dataset: data.jsonl
"""


def make_eval(tmp_path: Path, endpoint: FakeEndpoint, cases: list[dict], extra: str = "",
              tools: str = "") -> Path:
    folder = tmp_path / "templates" / "helper"
    folder.mkdir(parents=True, exist_ok=True)
    front = f"---\n{tools}---\n" if tools else ""
    (folder / "v1.jinja").write_text(front + "{{ question }}\n")
    with (tmp_path / "data.jsonl").open("w") as handle:
        for case in cases:
            handle.write(json.dumps(case) + "\n")
    path = tmp_path / "eval.yaml"
    path.write_text(SPEC.format(base_url=endpoint.base_url) + extra)
    return path


def run(path: Path):
    outcome = asyncio.run(run_eval(plan_eval(load_spec(path)), RunOptions(use_cache=False)))
    return list(outcome.results())


def tool_call_body(name: str, arguments: dict, call_id: str = "call_1") -> dict:
    return {"id": "x", "object": "chat.completion", "model": "m", "choices": [{
        "index": 0, "finish_reason": "tool_calls",
        "message": {"role": "assistant", "content": None, "tool_calls": [{
            "id": call_id, "type": "function",
            "function": {"name": name, "arguments": json.dumps(arguments)}}]}}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}


def test_a_three_turn_case_sends_one_three_and_five_messages(
        tmp_path: Path, endpoint: FakeEndpoint) -> None:
    endpoint.respond_with(lambda request: f"answer {len(request.body['messages'])}")
    path = make_eval(tmp_path, endpoint, [
        {"id": "chat", "question": "Hi", "turns": ["And then?", {"content": "{{ question }}",
                                                                  "assert": [{
                                                                      "type": "equals",
                                                                      "value": "answer 5"}]}]}],
        extra="assert:\n  - {type: contains, value: answer}\n")
    (result,) = run(path)
    sent = [request.body["messages"] for request in endpoint.requests]
    assert [len(messages) for messages in sent] == [1, 3, 5]
    assert sent[2][1] == {"role": "assistant", "content": "answer 1"}
    assert sent[2][4] == {"role": "user", "content": "{{ question }}"}  # literal, not rendered
    assert result.output == "answer 5" and result.passed and result.requests == 3
    assert [m["role"] for m in result.conversation] == ["assistant", "user", "assistant",
                                                        "user", "assistant"]
    assert result.input_tokens and result.cost == pytest.approx(
        (result.input_tokens + 2 * result.output_tokens) / 1e6)
    assert [a.get("turn") for a in result.assertions] == [None, 3]


def test_a_turns_own_assertion_fails_the_case_and_says_which_turn(
        tmp_path: Path, endpoint: FakeEndpoint) -> None:
    endpoint.respond_with(lambda request: "no")
    path = make_eval(tmp_path, endpoint, [{"question": "Hi", "turns": [
        {"content": "Sure?", "assert": [{"type": "equals", "value": "yes"}]}]}])
    (result,) = run(path)
    assert not result.passed and result.score == 0.0
    (check,) = result.assertions
    assert check["turn"] == 2 and not check["passed"]


WEATHER = """tools:
  - type: function
    function:
      name: get_weather
      description: The weather in a city
      parameters:
        type: object
        properties: {city: {type: string}}
        required: [city]
"""


def test_a_tool_call_answered_from_tool_results_ends_in_a_final_answer(
        tmp_path: Path, endpoint: FakeEndpoint) -> None:
    def respond(request: RecordedRequest):
        messages = request.body["messages"]
        if messages[-1]["role"] == "tool":
            return f"It is {json.loads(messages[-1]['content'])['sky']} in Paris."
        return tool_call_body("get_weather", {"city": "Paris"})

    endpoint.respond_with(respond)
    path = make_eval(tmp_path, endpoint, [
        {"question": "Weather in Paris?", "tool_results": {"get_weather": {"sky": "sunny"}}}],
        extra="assert:\n  - {type: contains, value: sunny}\n", tools=WEATHER)
    (result,) = run(path)
    assert result.passed and result.output == "It is sunny in Paris."
    assert endpoint.count == 2 and result.requests == 2
    second = endpoint.requests[1].body["messages"]
    assert second[1]["tool_calls"][0]["function"] == {"name": "get_weather",
                                                      "arguments": '{"city": "Paris"}'}
    assert second[2] == {"role": "tool", "tool_call_id": "call_1",
                         "content": '{"sky": "sunny"}'}
    assert result.tool_calls == [{"id": "call_1", "name": "get_weather",
                                  "arguments": {"city": "Paris"}}]
    assert result.finish_reason is None or result.finish_reason == "stop"


def test_max_turns_stops_a_loop_and_fails_the_case(tmp_path: Path,
                                                   endpoint: FakeEndpoint) -> None:
    endpoint.respond_with(lambda request: tool_call_body("get_weather", {"city": "Paris"}))
    path = make_eval(tmp_path, endpoint, [
        {"question": "Weather?", "tool_results": {"get_weather": "rain"}}],
        extra="max_turns: 3\n", tools=WEATHER)
    (result,) = run(path)
    assert endpoint.count == 3 and result.requests == 3 and not result.passed
    assert result.assertions[-1]["type"] == "max-turns"
    assert result.assertions[-1]["reason"] == ("max_turns (3) reached before a final answer: "
                                               "the model was still calling tools")
    assert len(result.tool_calls) == 3
    assert result.score == 0.0 and result.metrics["max-turns"] == 0.0  # scored as a failure


def test_a_tool_handler_answers_the_calls(tmp_path: Path, endpoint: FakeEndpoint) -> None:
    (tmp_path / "weather_tools.py").write_text(
        "def answer(call, variables):\n"
        "    return {'city': call['arguments']['city'], 'for': variables['question']}\n")

    def respond(request: RecordedRequest):
        messages = request.body["messages"]
        if messages[-1]["role"] == "tool":
            return messages[-1]["content"]
        return tool_call_body("get_weather", {"city": "Oslo"})

    endpoint.respond_with(respond)
    path = make_eval(tmp_path, endpoint, [
        {"question": "Oslo?", "tool_handler": "weather_tools:answer"}], tools=WEATHER)
    (result,) = run(path)
    assert json.loads(result.output) == {"city": "Oslo", "for": "Oslo?"}


@pytest.mark.parametrize(("case", "extra", "expected"), [
    ({"question": "Hi", "turns": ["more"]}, "    api: completions\n",
     "turns: a case with turns is a conversation, which needs the chat API; provider "
     "'fake' uses completions"),
    ({"question": "Hi", "tool_results": {"get_time": 1}}, "",
     "tool_results.get_time: tool_results names 'get_time', a tool no prompt declares "
     "(declared: get_weather)"),
    ({"question": "Hi", "turns": [{"content": "x", "assert": [{"type": "nope"}]}]}, "",
     "turns[0].assert[0].type: unknown assertion type 'nope'"),
    ({"question": "Hi", "turns": [{"text": "x"}]}, "",
     "turns[0]: a turn is a text, or a mapping with a text content"),
    ({"question": "Hi", "tool_handler": "no_such_module:f"}, "",
     "tool_handler: cannot load tool_handler 'no_such_module:f'"),
])
def test_bad_conversation_input_is_exit_2_at_the_case(
        tmp_path: Path, endpoint: FakeEndpoint, case: dict, extra: str, expected: str) -> None:
    path = make_eval(tmp_path, endpoint, [{"question": "fine"}, case], tools=WEATHER)
    path.write_text(path.read_text().replace("    stream: false\n", "    stream: false\n"
                                             + extra))
    with pytest.raises(ConfigError) as info:
        plan_eval(load_spec(path))
    assert f"data.jsonl:2: {expected}" in str(info.value)
    proc = promptkit_cli("eval", str(path), cwd=tmp_path)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert endpoint.count == 0


def test_json_schema_without_a_value_needs_the_templates_output(
        tmp_path: Path, endpoint: FakeEndpoint) -> None:
    path = make_eval(tmp_path, endpoint, [{"question": "Hi"}],
                     extra="assert:\n  - type: json-schema\n")
    with pytest.raises(ConfigError) as info:
        plan_eval(load_spec(path))
    assert str(info.value).endswith(
        "eval.yaml:13: assert[0]: json-schema without a value checks the template's output: "
        "schema, and helper@1 (prompt 'helper') has none; give the schema as value")
    (tmp_path / "templates" / "helper" / "v1.jinja").write_text(
        "---\noutput: {type: object, required: [a]}\n---\n{{ question }}\n")
    endpoint.respond_with(lambda request: '{"a": 1}')
    (result,) = run(path)
    assert result.passed and "response_format" in endpoint.requests[0].body


@pytest.mark.parametrize("stream", [False, True])
def test_tool_calls_are_parsed_and_scored_streamed_or_not(
        tmp_path: Path, endpoint: FakeEndpoint, stream: bool) -> None:
    from promptkit.testing import Reply

    endpoint.respond_with(lambda request: Reply.tool_calls(
        [{"name": "get_weather", "arguments": {"city": "Paris", "day": "today"}},
         {"name": "get_weather", "arguments": '{"city": "Ber'}]))  # cut off: not JSON
    path = make_eval(tmp_path, endpoint, [{"question": "Paris and Berlin?"}], tools=WEATHER,
                     extra="assert:\n  - {type: tool-call, name: get_weather, "
                           "arguments: {city: Paris}}\n  - {type: tool-call, "
                           "name: get_weather, count: 1}\n")
    if stream:
        path.write_text(path.read_text().replace("stream: false", "stream: true"))
    (result,) = run(path)
    assert endpoint.requests[0].body.get("stream", False) is stream
    assert result.finish_reason == "tool_calls" and result.output == ""
    assert result.tool_calls == [
        {"id": "call_1", "name": "get_weather", "arguments": {"city": "Paris", "day": "today"}},
        {"id": "call_2", "name": "get_weather", "arguments": None,
         "raw_arguments": '{"city": "Ber'}]
    first, second = result.assertions
    assert first["passed"] and not second["passed"] and not result.passed
    assert "2 calls" in second["reason"] or "called 2" in second["reason"], second["reason"]


def test_results_carry_their_category_and_when_they_were_asked(
        tmp_path: Path, endpoint: FakeEndpoint) -> None:
    import time

    endpoint.respond_with(lambda request: "ok")
    path = make_eval(tmp_path, endpoint, [{"question": "a", "category": "天气"},
                                          {"question": "b", "category": 7}, {"question": "c"}])
    before = time.time()
    results = sorted(run(path), key=lambda r: r.case_index)
    assert [r.category for r in results] == ["天气", "7", None]
    assert all(before <= r.started_at <= time.time() for r in results)
    by_field = make_eval(tmp_path, endpoint, [{"question": "a", "topic": "news"}],
                         extra="category_field: topic\n")
    assert [r.category for r in run(by_field)] == ["news"]
    bad = make_eval(tmp_path, endpoint, [{"question": "a", "category": ["x"]}])
    with pytest.raises(ConfigError) as info:
        plan_eval(load_spec(bad))
    assert str(info.value).endswith(
        "data.jsonl:1: category: a category must be a text or a number, not list")


def test_tool_calls_before_a_later_turn_are_answered_first(
        tmp_path: Path, endpoint: FakeEndpoint) -> None:
    from promptkit.testing import Reply

    endpoint.script(Reply.tool_calls([{"name": "get_weather", "arguments": {"city": "Oslo"}}]),
                    Reply.text("You're welcome."))
    path = make_eval(tmp_path, endpoint, [{"question": "Oslo?", "turns": ["Thanks!"]}],
                     tools=WEATHER)
    (result,) = run(path)
    roles = [m["role"] for m in endpoint.requests[1].body["messages"]]
    assert roles == ["user", "assistant", "tool", "user"]  # as a chat API requires
    assert "no result for tool 'get_weather'" in endpoint.requests[1].body["messages"][2][
        "content"]
    assert result.output == "You're welcome." and result.error is None


def test_a_slow_tool_handler_holds_up_only_its_own_case(
        tmp_path: Path, endpoint: FakeEndpoint) -> None:
    (tmp_path / "slow_tools.py").write_text(
        "import threading\n"
        "other_case_asked = threading.Event()\n"
        "def wait(call, variables):\n"
        "    return 'other case asked' if other_case_asked.wait(20) else 'alone'\n")
    import sys
    sys.path.insert(0, str(tmp_path))
    try:
        import slow_tools

        def respond(request: RecordedRequest):
            messages = request.body["messages"]
            if messages[0]["content"] == "second":
                slow_tools.other_case_asked.set()  # asked while the handler waits
                return "done"
            if messages[-1]["role"] == "tool":
                return messages[-1]["content"]
            return tool_call_body("get_weather", {"city": "Oslo"})

        endpoint.respond_with(respond)
        path = make_eval(tmp_path, endpoint, [
            {"question": "first", "tool_handler": "slow_tools:wait"}, {"question": "second"}],
            tools=WEATHER)
        first, _ = sorted(run(path), key=lambda r: r.case_index)
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("slow_tools", None)
    assert first.output == "other case asked"  # on the event loop, it would wait alone


def test_a_tool_handler_that_raises_is_redacted_and_warned_about(
        tmp_path: Path, endpoint: FakeEndpoint, monkeypatch: pytest.MonkeyPatch) -> None:
    import promptkit

    secret = "sk-canary-1234567890abcdef"
    monkeypatch.setenv("CANARY_KEY", secret)
    (tmp_path / "bad_tools.py").write_text(
        f"def boom(call, variables):\n    raise RuntimeError('exploded {secret}')\n")

    def respond(request: RecordedRequest):
        messages = request.body["messages"]
        if messages[-1]["role"] == "tool":
            return "sorry"
        return tool_call_body("get_weather", {"city": "Oslo"})

    endpoint.respond_with(respond)
    path = make_eval(tmp_path, endpoint, [{"question": "Oslo?", "tool_handler": "bad_tools:boom"}],
                     tools=WEATHER)
    path.write_text(path.read_text().replace("    model: m\n",
                                             "    model: m\n    api_key_env: CANARY_KEY\n"))
    with promptkit.evaluate(path, use_cache=False) as report:
        (result,) = report.results()
    sent = endpoint.requests[1].body["messages"][-1]["content"]
    assert secret not in sent and "RuntimeError: exploded [redacted]" in sent
    assert secret not in json.dumps(result.to_dict())
    assert any(w.startswith("tool_handler bad_tools:boom raised RuntimeError: exploded "
                            "[redacted]") for w in report.warnings)


def test_tool_call_answers_are_cached_under_an_output_schema(
        tmp_path: Path, endpoint: FakeEndpoint) -> None:
    endpoint.respond_with(lambda request: tool_call_body("get_weather", {"city": "Oslo"}))
    path = make_eval(tmp_path, endpoint, [{"question": "Oslo?"}],
                     tools=WEATHER + "output: {type: object}\n")
    for _ in range(2):
        outcome = asyncio.run(run_eval(plan_eval(load_spec(path)), RunOptions()))
        (result,) = outcome.results()
    assert endpoint.count == 1 and result.cached


@pytest.mark.parametrize(("case", "extra", "expected"), [
    ({"question": "Hi", "turns": [{"content": "x", "assert": [
        {"type": "contains", "value": "{{ missing }}"}]}]}, "",
     "turns[0].assert[0].value: '{{ missing }}': "),
    ({"question": "Hi", "turns": ["a", "b"]}, "max_turns: 2\n",
     "turns: this case has 2 later turns, so it needs at least 3 requests; max_turns of "
     "prompt 'helper' is 2"),
])
def test_a_conversation_that_cannot_finish_is_refused_at_its_case(
        tmp_path: Path, endpoint: FakeEndpoint, case: dict, extra: str, expected: str) -> None:
    path = make_eval(tmp_path, endpoint, [case], extra=extra, tools=WEATHER)
    with pytest.raises(ConfigError) as info:
        plan_eval(load_spec(path))
    assert f"data.jsonl:1: {expected}" in str(info.value)


def test_a_tool_assertion_naming_an_undeclared_tool_is_refused(
        tmp_path: Path, endpoint: FakeEndpoint) -> None:
    path = make_eval(tmp_path, endpoint, [{"question": "Hi"}], tools=WEATHER,
                     extra="assert:\n  - {type: not-tool-call, name: get_wether}\n")
    with pytest.raises(ConfigError) as info:
        plan_eval(load_spec(path))
    assert str(info.value).endswith(
        "assert[0].name: not-tool-call names 'get_wether', a tool helper@1 (prompt 'helper') "
        "does not declare (declared: get_weather)")


def test_empty_csv_cells_of_reserved_columns_set_nothing(tmp_path: Path,
                                                        endpoint: FakeEndpoint) -> None:
    path = make_eval(tmp_path, endpoint, [], tools=WEATHER)
    (tmp_path / "data.csv").write_text(
        'id,question,turns,tool_results,tool_handler,category\na,Hi,"[""more""]",,,\nb,Yo,,,,\n')
    path.write_text(path.read_text().replace("dataset: data.jsonl", "dataset: data.csv"))
    endpoint.respond_with(lambda request: "ok")
    results = sorted(run(path), key=lambda r: r.case_index)
    assert [r.requests for r in results] == [2, 1] and all(r.error is None for r in results)
    assert [r.category for r in results] == [None, None]


@pytest.mark.parametrize(("arguments", "raw"), [("null", "null"), ("[1]", "[1]"),
                                                 ('{"n": NaN}', '{"n": NaN}')])
def test_arguments_that_are_not_a_json_object_keep_their_text(
        tmp_path: Path, endpoint: FakeEndpoint, arguments: str, raw: str) -> None:
    body = tool_call_body("get_weather", {})
    body["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] = arguments
    endpoint.respond_with(lambda request: body)
    path = make_eval(tmp_path, endpoint, [{"question": "Hi"}], tools=WEATHER)
    (result,) = run(path)
    assert result.tool_calls[0]["arguments"] is None
    assert result.tool_calls[0]["raw_arguments"] == raw


def test_a_dry_run_counts_a_conversation_at_its_fewest_requests(
        tmp_path: Path, endpoint: FakeEndpoint) -> None:
    from promptkit.api import estimate

    path = make_eval(tmp_path, endpoint, [
        {"question": "a", "turns": ["b", "c"]},
        {"question": "d", "tool_results": {"get_weather": "sun"}}, {"question": "e"}],
        tools=WEATHER)
    counted = estimate(path)
    assert counted.requests == 3 + 2 + 1 and endpoint.count == 0
    assert any("counted at its fewest requests" in w for w in counted.warnings)


def test_categories_are_trimmed_capped_and_a_missing_field_is_warned_about(
        tmp_path: Path, endpoint: FakeEndpoint) -> None:
    import promptkit

    endpoint.respond_with(lambda request: "ok")
    blank = make_eval(tmp_path, endpoint, [{"question": "a", "category": "   "},
                                           {"question": "b", "category": " 天气 "}])
    assert [r.category for r in sorted(run(blank), key=lambda r: r.case_index)] == [None, "天气"]
    long = make_eval(tmp_path, endpoint, [{"question": "a", "category": "x" * 101}])
    with pytest.raises(ConfigError, match="a category of 101 characters is more than the 100"):
        plan_eval(load_spec(long))
    typo = make_eval(tmp_path, endpoint, [{"question": "a", "topic": "x"}],
                     extra="category_field: topc\n")
    with promptkit.evaluate(typo, use_cache=False) as report:
        assert any("category_field 'topc': no case has this field" in w
                   for w in report.warnings)
    inline = tmp_path / "inline.yaml"
    inline.write_text(typo.read_text().replace("dataset: data.jsonl\n", "").replace(
        "category_field: topc\n", "cases:\n  - {question: a, category: [x]}\n"))
    with pytest.raises(ConfigError) as info:
        load_spec(inline)
    assert "cases[0].category: a category must be a text or a number, not list" in str(
        info.value)
