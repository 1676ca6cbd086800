"""Tool calls, JSON answers and conversations through the fake endpoint and the real openai SDK.

Reply.tool_calls and Reply.json (promptkit.testing.reply), the message and its stream
(promptkit.testing.payloads), and the conversation a responder reads (RecordedRequest in
promptkit.testing.fake). The ``--script`` form of tool calls is in test_cli.
"""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from promptkit.testing import FakeEndpoint, RecordedRequest, Reply

WEATHER = {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}
CALENDAR = {"name": "add_event", "arguments": {"title": "会议", "day": "周一"}}
USER = [{"role": "user", "content": "Weather in Paris, and book Monday's meeting"}]


def ask(client: openai.OpenAI, messages: list[dict[str, Any]] | None = None, **kwargs):
    return client.chat.completions.create(model="gpt-test", messages=messages or USER, **kwargs)


def accumulate(chunks) -> tuple[str | None, dict[int, dict[str, Any]], list[str]]:
    """What an app assembles from a stream: the text, the calls by index, the finish reasons."""
    text, calls, finishes = None, {}, []
    for chunk in chunks:
        for choice in chunk.choices:
            delta = choice.delta
            if delta.content is not None:
                text = (text or "") + delta.content
            for part in delta.tool_calls or ():
                call = calls.setdefault(part.index, {"id": None, "name": None, "fragments": []})
                call["id"] = part.id or call["id"]
                call["name"] = (part.function and part.function.name) or call["name"]
                if part.function and part.function.arguments:
                    call["fragments"].append(part.function.arguments)
            if choice.finish_reason:
                finishes.append(choice.finish_reason)
    return text, calls, finishes


def test_tool_calls_parse_with_the_sdk(endpoint: FakeEndpoint, client: openai.OpenAI) -> None:
    endpoint.script(Reply.tool_calls([WEATHER, CALENDAR]))
    choice = ask(client).choices[0]
    assert (choice.finish_reason, choice.message.content) == ("tool_calls", None)
    calls = choice.message.tool_calls
    assert [(call.id, call.type, call.function.name) for call in calls] == [
        ("call_1", "function", "get_weather"), ("call_2", "function", "add_event")]
    assert [json.loads(call.function.arguments) for call in calls] == [
        WEATHER["arguments"], CALENDAR["arguments"]]
    assert '"会议"' in calls[1].function.arguments  # as a model writes it, not \\u escapes


def test_streamed_tool_calls_arrive_as_openai_sends_them(
    endpoint: FakeEndpoint, client: openai.OpenAI
) -> None:
    endpoint.script(Reply.tool_calls([WEATHER, CALENDAR]))
    chunks = list(ask(client, stream=True, stream_options={"include_usage": True}))
    first = chunks[0].choices[0].delta  # the role, null content and the first call's header
    assert (first.role, first.content) == ("assistant", None)
    header = first.tool_calls[0]
    assert (header.index, header.id, header.type, header.function.name,
            header.function.arguments) == (0, "call_1", "function", "get_weather", "")
    text, calls, finishes = accumulate(chunks)
    assert text is None and finishes == ["tool_calls"]
    assert [(call["id"], call["name"]) for call in calls.values()] == [
        ("call_1", "get_weather"), ("call_2", "add_event")]
    for call, given in zip(calls.values(), (WEATHER, CALENDAR), strict=True):
        assert len(call["fragments"]) > 3  # the arguments come in several chunks
        assert json.loads("".join(call["fragments"])) == given["arguments"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0

    endpoint.script(Reply.tool_calls([WEATHER, CALENDAR]))
    with client.chat.completions.stream(model="m", messages=USER) as stream:
        final = stream.get_final_completion()  # the SDK's own accumulator agrees
    assert [call.function.name for call in final.choices[0].message.tool_calls] == [
        "get_weather", "add_event"]
    assert final.choices[0].message.tool_calls[1].function.parsed_arguments is None


def test_the_stream_ends_with_the_finish_reason_the_usage_and_done(
    endpoint: FakeEndpoint,
) -> None:
    import httpx2 as httpx

    endpoint.script(Reply.tool_calls([WEATHER]))
    body = {"model": "m", "messages": USER, "stream": True,
            "stream_options": {"include_usage": True}}
    sent = httpx.post(endpoint.base_url + "/chat/completions", json=body).text
    events = [line.removeprefix("data: ") for line in sent.splitlines() if line]
    assert events[-1] == "[DONE]"
    finish, usage = json.loads(events[-3]), json.loads(events[-2])
    assert finish["choices"][0] == {"index": 0, "delta": {}, "logprobs": None,
                                    "finish_reason": "tool_calls"}
    assert usage["choices"] == [] and usage["usage"]["total_tokens"] > 0
    fragments = [json.loads(event)["choices"][0]["delta"]["tool_calls"] for event in events[1:-3]]
    assert all(part == [{"index": 0, "function": {"arguments": part[0]["function"][
        "arguments"]}}] for part in fragments)  # fragments carry only the index and text


@pytest.mark.parametrize("stream", [False, True])
def test_arguments_given_as_text_are_sent_as_is(
    endpoint: FakeEndpoint, client: openai.OpenAI, stream: bool
) -> None:
    broken = '{"city": "Paris", '  # what a model cut off by max_tokens sends
    endpoint.script(Reply.tool_calls([{"name": "get_weather", "arguments": broken},
                                      {"name": "now", "arguments": ""}],
                                     finish_reason="length"))
    if stream:
        _, calls, finishes = accumulate(ask(client, stream=True))
        arguments = ["".join(call["fragments"]) for call in calls.values()]
    else:
        choice = ask(client).choices[0]
        arguments = [call.function.arguments for call in choice.message.tool_calls]
        finishes = [choice.finish_reason]
    assert arguments == [broken, ""] and finishes == ["length"]


@pytest.mark.parametrize("stream", [False, True])
def test_text_beside_the_calls_comes_first(
    endpoint: FakeEndpoint, client: openai.OpenAI, stream: bool
) -> None:
    endpoint.script(Reply.tool_calls([WEATHER], text="Let me check.", reasoning_content="hm",
                                     finish_reason="stop"))  # as Ollama ends a tool call
    if stream:
        chunks = list(ask(client, stream=True))
        kinds = ["content" if c.choices[0].delta.content else "call"
                 for c in chunks if c.choices[0].delta.content or c.choices[0].delta.tool_calls]
        assert kinds[0] == "content" and "content" not in kinds[kinds.index("call"):]
        text, calls, finishes = accumulate(chunks)
        assert (text, calls[0]["name"], finishes) == ("Let me check.", "get_weather", ["stop"])
    else:
        choice = ask(client).choices[0]
        assert (choice.message.content, choice.finish_reason) == ("Let me check.", "stop")
        assert choice.message.tool_calls[0].id == "call_1"


def test_every_choice_of_n_gets_the_calls(endpoint: FakeEndpoint, client: openai.OpenAI) -> None:
    endpoint.script(Reply.tool_calls([WEATHER]))
    choices = ask(client, n=2).choices
    assert [choice.message.tool_calls[0].function.name for choice in choices] == [
        "get_weather", "get_weather"]


def test_the_usage_estimate_counts_the_calls(endpoint: FakeEndpoint, client: openai.OpenAI) -> None:
    endpoint.script(Reply.tool_calls([{"name": "f", "arguments": "one two three"}]),
                    Reply.tool_calls([WEATHER], usage={"completion_tokens": 9}))
    assert ask(client).usage.completion_tokens == 4  # the name and three words
    assert ask(client).usage.completion_tokens == 9


def test_a_legacy_completion_cannot_call_tools(endpoint: FakeEndpoint,
                                               client: openai.OpenAI) -> None:
    endpoint.script(Reply.tool_calls([WEATHER]))
    with pytest.raises(openai.BadRequestError, match="chat completions only"):
        client.completions.create(model="m", prompt="hi")


@pytest.mark.parametrize("stream", [False, True])
def test_a_json_reply_answers_json_text(
    endpoint: FakeEndpoint, client: openai.OpenAI, stream: bool
) -> None:
    value = {"city": "北京", "temperature": 21.5, "tags": ["sunny"], "alert": None}
    endpoint.script(Reply.json(value))
    if stream:
        text, _, _ = accumulate(ask(client, stream=True))
    else:
        text = ask(client).choices[0].message.content
    assert text == json.dumps(value, ensure_ascii=False) and json.loads(text) == value


# --- conversations: a responder answering by the turn and the tool results so far ---------

TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "parameters": {"type": "object", "properties": {
        "city": {"type": "string"}}}}}]


def weather_agent(request: RecordedRequest) -> dict[str, Any] | Reply | str:
    """Turn 1: call get_weather (as a dict, or as a Reply when streaming); then answer."""
    if request.turn == 1:
        city = request.last_user_message.split()[-1].rstrip("?")
        calls = [{"name": "get_weather", "arguments": {"city": city}}]
        return Reply.tool_calls(calls) if request.body.get("stream") else {"tool_calls": calls}
    return f"It is {request.tool_results['get_weather']} in Paris."


def converse(client: openai.OpenAI, stream: bool) -> tuple[list[dict[str, Any]], str]:
    """The app's loop: ask, run the tool it calls, ask again; returns the messages sent and
    the final answer."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": "Be brief."},
                                      {"role": "user", "content": "Weather in Paris?"}]
    for _ in range(3):
        if stream:
            text, calls, _ = accumulate(ask(client, messages, tools=TOOLS, stream=True))
            made = [{"id": call["id"], "type": "function", "function": {
                "name": call["name"], "arguments": "".join(call["fragments"])}}
                for call in calls.values()]
        else:
            message = ask(client, messages, tools=TOOLS).choices[0].message
            text = message.content
            made = [call.model_dump(include={"id", "type", "function"})
                    for call in message.tool_calls or ()]
        if not made:
            return messages, text or ""
        messages.append({"role": "assistant", "content": text, "tool_calls": made})
        for call in made:
            city = json.loads(call["function"]["arguments"])["city"]
            messages.append({"role": "tool", "tool_call_id": call["id"],
                             "content": "sunny" if city == "Paris" else "unknown"})
    raise AssertionError("the conversation did not end")


@pytest.mark.parametrize("stream", [False, True])
def test_a_responder_calls_a_tool_at_turn_1_and_answers_from_its_result_at_turn_2(
    endpoint: FakeEndpoint, client: openai.OpenAI, stream: bool
) -> None:
    endpoint.respond_with(weather_agent)
    messages, answer = converse(client, stream)
    assert answer == "It is sunny in Paris."
    first, second = endpoint.requests
    assert (first.turn, second.turn) == (1, 2)
    assert first.last_user_message == second.last_user_message == "Weather in Paris?"
    assert first.tool_results == {} and second.tool_results == {
        "call_1": "sunny", "get_weather": "sunny"}
    assert second.messages == messages and len(first.messages) == 2
    assert second.body["tools"] == TOOLS


def test_generated_ids_stay_unique_across_turns(
    endpoint: FakeEndpoint, client: openai.OpenAI
) -> None:
    endpoint.script(Reply.tool_calls([WEATHER, WEATHER]),
                    Reply.tool_calls([WEATHER, {**WEATHER, "id": "mine"}]))
    first = ask(client).choices[0].message
    history = [*USER, first.model_dump(include={"role", "content", "tool_calls"}),
               {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
               {"role": "tool", "tool_call_id": "call_2", "content": "sunny"}]
    second = ask(client, history).choices[0].message
    assert [call.id for call in first.tool_calls + second.tool_calls] == [
        "call_1", "call_2", "call_3", "mine"]


def test_a_tool_calls_dict_with_a_mistake_is_a_500_saying_why(
    endpoint: FakeEndpoint, client: openai.OpenAI
) -> None:
    endpoint.respond_with(lambda request: {"tool_calls": [{"arguments": {}}]})
    with pytest.raises(openai.InternalServerError) as caught:
        ask(client)
    assert caught.value.body["message"] == (
        "the responder's answer cannot be sent: tool_calls[0]: missing 'name'")


def test_the_conversation_of_a_request_without_messages_is_empty() -> None:
    request = RecordedRequest("POST", "/v1/completions", {}, {"prompt": "hi"}, "hi", 0.0)
    assert (request.messages, request.last_user_message, request.tool_results,
            request.turn) == ([], None, {}, 1)
    odd = RecordedRequest("POST", "/v1/chat/completions", {}, {"messages": [
        "junk", {"role": "assistant"}, {"role": "user", "content": [
            {"type": "text", "text": "a"}, {"type": "image_url"}, {"type": "text", "text": "b"}]},
    ]}, "", 0.0)
    assert (len(odd.messages), odd.last_user_message, odd.turn) == (2, "a\nb", 2)
